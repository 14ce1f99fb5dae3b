"""The data-api destination end to end: events, registry sync and backfill.

The reference receiver (scripts/data_api_receiver.py) runs as a real server.
"""

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_KIND,
    CONF_REGISTRY_SYNC,
    CONF_TOKEN,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
    DestinationKind,
)
from tests.common import settle
from tests.data_api import DataApiReceiver


def data_api_entry(receiver: DataApiReceiver, **options: Any) -> MockConfigEntry:
    """An entry shipping to the reference receiver."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="data-api",
        unique_id=f"data_api:{receiver.url}/",
        data={
            CONF_KIND: DestinationKind.DATA_API,
            CONF_URL: receiver.url,
            CONF_TOKEN: receiver.token,
            CONF_VERIFY_SSL: True,
        },
        options=options,
    )


async def test_events_delivered_once_across_outage(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, data_api_receiver: DataApiReceiver
) -> None:
    """Every event arrives exactly once, also when the receiver restarts mid-stream."""
    entry = data_api_entry(data_api_receiver)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    for i in range(5):
        hass.states.async_set("sensor.flow", str(i), {"unit_of_measurement": "l/min"})
        freezer.tick(timedelta(milliseconds=3))
    await settle(hass, freezer, lambda: len(data_api_receiver.events("sensor.flow")) == 5)
    await hass.async_add_executor_job(data_api_receiver.stop)
    for i in range(5, 12):
        hass.states.async_set("sensor.flow", str(i), {"unit_of_measurement": "l/min"})
        freezer.tick(timedelta(milliseconds=3))
    runtime = entry.runtime_data
    await settle(hass, freezer, lambda: runtime.pipeline.resilience.consecutive_failures >= 2)
    await hass.async_add_executor_job(data_api_receiver.start)
    await settle(
        hass, freezer, lambda: len(data_api_receiver.events("sensor.flow")) == 12, step=5.0
    )
    events = data_api_receiver.events("sensor.flow")
    assert [e["state"] for e in events] == [str(i) for i in range(12)]
    assert len({e["idempotency_key"] for e in events}) == 12
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_registry_sync(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, data_api_receiver: DataApiReceiver
) -> None:
    """Devices and entities are pushed on connect; create, rename and remove follow."""
    entry = data_api_entry(data_api_receiver, **{CONF_REGISTRY_SYNC: True})
    entry.add_to_hass(hass)
    other = MockConfigEntry(domain="demo")
    other.add_to_hass(hass)
    dev_reg = dr.async_get(hass)
    ent_reg = er.async_get(hass)
    device = dev_reg.async_get_or_create(
        config_entry_id=other.entry_id,
        identifiers={("demo", "boiler")},
        manufacturer="Acme",
        model="B-1",
        name="Boiler",
    )
    ent_reg.async_get_or_create(
        "sensor", "demo", "boiler_temp", device_id=device.id, suggested_object_id="boiler_temp"
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await settle(
        hass,
        freezer,
        lambda: (
            device.id in data_api_receiver.devices()
            and "sensor.boiler_temp" in data_api_receiver.entities()
        ),
    )
    stored = data_api_receiver.devices()[device.id]
    assert (stored["manufacturer"], stored["model"], stored["name"]) == ("Acme", "B-1", "Boiler")

    ent_reg.async_update_entity("sensor.boiler_temp", new_entity_id="sensor.boiler_water")
    await settle(hass, freezer, lambda: "sensor.boiler_water" in data_api_receiver.entities())
    entities = data_api_receiver.entities()
    assert entities["sensor.boiler_temp"]["deleted"] is True
    assert entities["sensor.boiler_water"]["device_id"] == device.id

    dev_reg.async_remove_device(device.id)
    sync = entry.runtime_data.registry_sync
    assert sync is not None
    # Removing the device also updates its entity (device_id cleared): wait for both.
    await settle(
        hass,
        freezer,
        lambda: data_api_receiver.devices()[device.id]["deleted"] and sync.pending == 0,
    )
    water = data_api_receiver.entities()["sensor.boiler_water"]
    assert water["deleted"] or water["device_id"] is None
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
