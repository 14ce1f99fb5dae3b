"""The data-api destination end to end: events, registry sync and backfill.

The reference receiver (scripts/data_api_receiver.py) runs as a real server.
"""

from collections.abc import Mapping, Sequence
from datetime import timedelta
import logging
import threading
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.ha_ingestor.const import (
    CONF_KIND,
    CONF_REGISTRY_SYNC,
    CONF_TOKEN,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
    DestinationKind,
)
from custom_components.ha_ingestor.core.sinks import DataApiSink
from custom_components.ha_ingestor.registry_sync import DEVICES_PATH, all_devices
from tests.common import current, diagnostics, settle, setup_entry, unload_entry
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
    await setup_entry(hass, entry)
    for i in range(5):
        hass.states.async_set("sensor.flow", str(i), {"unit_of_measurement": "l/min"})
        freezer.tick(timedelta(milliseconds=3))
    await settle(hass, freezer, lambda: len(data_api_receiver.events("sensor.flow")) == 5)
    await hass.async_add_executor_job(data_api_receiver.stop)
    for i in range(5, 12):
        hass.states.async_set("sensor.flow", str(i), {"unit_of_measurement": "l/min"})
        freezer.tick(timedelta(milliseconds=3))
    await settle(hass, freezer, lambda: current(entry).consecutive_failures >= 2)
    await hass.async_add_executor_job(data_api_receiver.start)
    await settle(
        hass, freezer, lambda: len(data_api_receiver.events("sensor.flow")) == 12, step=5.0
    )
    events = data_api_receiver.events("sensor.flow")
    assert [e["state"] for e in events] == [str(i) for i in range(12)]
    assert len({e["idempotency_key"] for e in events}) == 12
    await unload_entry(hass, entry)


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

    async def removed() -> bool:
        return data_api_receiver.devices()[device.id]["deleted"] and await synced(hass, entry)

    # Removing the device also updates its entity (device_id cleared): wait for both.
    await settle(hass, freezer, removed)
    water = data_api_receiver.entities()["sensor.boiler_water"]
    assert water["deleted"] or water["device_id"] is None
    await unload_entry(hass, entry)


def demo_devices(hass: HomeAssistant, count: int) -> list[dr.DeviceEntry]:
    """``count`` devices of another integration's entry, with one entity each."""
    other = MockConfigEntry(domain="demo")
    other.add_to_hass(hass)
    dev_reg = dr.async_get(hass)
    ent_reg = er.async_get(hass)
    devices = []
    for i in range(count):
        device = dev_reg.async_get_or_create(
            config_entry_id=other.entry_id, identifiers={("demo", f"d{i}")}, name=f"Demo {i}"
        )
        ent_reg.async_get_or_create(
            "sensor", "demo", f"t{i}", device_id=device.id, suggested_object_id=f"demo_{i}"
        )
        devices.append(device)
    return devices


async def start_sync(hass: HomeAssistant, receiver: DataApiReceiver) -> MockConfigEntry:
    """Set up an entry with registry sync on."""
    entry = data_api_entry(receiver, **{CONF_REGISTRY_SYNC: True})
    await setup_entry(hass, entry)
    return entry


async def sync_state(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """The registry sync as diagnostics show it (pending, rejected, last error)."""
    state: dict[str, Any] = (await diagnostics(hass, entry))["registry_sync"]
    return state


async def synced(hass: HomeAssistant, entry: MockConfigEntry) -> bool:
    """Whether no registry change waits to be pushed."""
    return (await sync_state(hass, entry))["pending"] == 0


async def test_registry_sync_keeps_changes_while_the_data_api_fails(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    freezer: FrozenDateTimeFactory,
    data_api_receiver: DataApiReceiver,
) -> None:
    """Refused pushes (503) keep every change pending; all arrive once the data-api answers.

    Figure: 0 registry changes lost across three refused pushes.
    """
    devices = demo_devices(hass, 2)
    await data_api_receiver.inject_fault(503, count=3, path=DEVICES_PATH)
    entry = await start_sync(hass, data_api_receiver)

    async def failed() -> bool:
        return (await sync_state(hass, entry))["last_error"] is not None

    await settle(hass, freezer, failed)
    downloaded = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    # The devices and their entities.
    assert downloaded["registry_sync"]["pending"] >= 2 * len(devices)
    assert data_api_receiver.devices() == {}

    await settle(hass, freezer, lambda: synced(hass, entry), step=5.0)
    assert (await sync_state(hass, entry))["last_error"] is None
    assert {d.id for d in devices} <= set(data_api_receiver.devices())
    assert {"sensor.demo_0", "sensor.demo_1"} <= set(data_api_receiver.entities())
    refused = [r for r in await data_api_receiver.requests() if r["fault"]]
    assert len(refused) == 3
    await unload_entry(hass, entry)


async def test_registry_sync_splits_a_batch_and_drops_only_the_rejected_item(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    freezer: FrozenDateTimeFactory,
    data_api_receiver: DataApiReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """413 halves the batch; 400 bisects the first half down to one item, dropped alone.

    The receiver's fault queue answers the first device push with 413, then the
    next two with 400: with three or four devices (this integration's own
    service device may be one), exactly the first item ends up alone and is
    dropped, counted and logged; every other device arrives.
    """
    demo_devices(hass, 3)
    await data_api_receiver.inject_fault(413, count=1, path=DEVICES_PATH)
    await data_api_receiver.inject_fault(400, count=2, path=DEVICES_PATH)
    caplog.set_level(logging.WARNING)
    entry = await start_sync(hass, data_api_receiver)

    await settle(hass, freezer, lambda: synced(hass, entry))
    registry = {d.id for d in all_devices(dr.async_get(hass))}
    assert len(registry) in (3, 4)
    received = set(data_api_receiver.devices())
    assert len(registry - received) == 1
    assert received <= registry
    assert (await sync_state(hass, entry))["last_error"] is None
    assert caplog.text.count("rejected by the data-api") == 1
    statuses = [r["status"] for r in await data_api_receiver.requests() if r["fault"]]
    assert statuses == [413, 400, 400]
    downloaded = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert downloaded["registry_sync"]["rejected"] == 1
    await unload_entry(hass, entry)


async def test_registry_sync_marks_a_removed_entity_deleted(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, data_api_receiver: DataApiReceiver
) -> None:
    """Removing an entity from the registry upserts it as deleted."""
    demo_devices(hass, 1)
    entry = await start_sync(hass, data_api_receiver)
    await settle(hass, freezer, lambda: "sensor.demo_0" in data_api_receiver.entities())
    assert data_api_receiver.entities()["sensor.demo_0"]["deleted"] is False

    er.async_get(hass).async_remove("sensor.demo_0")

    async def removed() -> bool:
        return data_api_receiver.entities()["sensor.demo_0"]["deleted"] and await synced(
            hass, entry
        )

    await settle(hass, freezer, removed)
    await unload_entry(hass, entry)


async def test_batch_and_registry_encoding_run_off_the_event_loop(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    data_api_receiver: DataApiReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """gzip + SHA-256 of event batches and gzip of registry items run in executor threads.

    Real reference receiver; the encoders are wrapped only to note their thread.
    Figure: every encode call (events and registry) ran off the loop thread, and
    all 5 events arrived.
    """
    loop_thread = threading.get_ident()
    threads: list[int] = []
    encode, pack = DataApiSink.encode, DataApiSink.pack

    def spy_encode(payloads: Sequence[bytes]) -> tuple[bytes, str]:
        threads.append(threading.get_ident())
        return encode(payloads)

    def spy_pack(items: Sequence[Mapping[str, object]]) -> bytes:
        threads.append(threading.get_ident())
        return pack(items)

    monkeypatch.setattr(DataApiSink, "encode", staticmethod(spy_encode))
    monkeypatch.setattr(DataApiSink, "pack", staticmethod(spy_pack))
    entry = data_api_entry(data_api_receiver, **{CONF_REGISTRY_SYNC: True})
    entry.add_to_hass(hass)
    er.async_get(hass).async_get_or_create("sensor", "demo", "offload", suggested_object_id="x")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    for i in range(5):
        hass.states.async_set("sensor.offload", str(i), {"unit_of_measurement": "W"})
        freezer.tick(timedelta(milliseconds=3))
    await settle(
        hass,
        freezer,
        lambda: (
            len(data_api_receiver.events("sensor.offload")) == 5
            and "sensor.x" in data_api_receiver.entities()
        ),
    )
    assert len(threads) >= 2
    assert loop_thread not in threads
    await unload_entry(hass, entry)


async def test_registry_sync_rejections_log_one_line(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    data_api_receiver: DataApiReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A receiver rejecting every device item (400): each is dropped and counted, but the
    log gets one line for the cause, not one per item.

    Figures: every device rejected and counted; 1 WARNING line.
    """
    demo_devices(hass, 3)
    await data_api_receiver.inject_fault(400, count=50, path=DEVICES_PATH)
    caplog.set_level(logging.WARNING)
    entry = await start_sync(hass, data_api_receiver)
    await settle(hass, freezer, lambda: synced(hass, entry))
    registry = {d.id for d in all_devices(dr.async_get(hass))}
    assert (await sync_state(hass, entry))["rejected"] == len(registry) >= 3
    assert caplog.text.count("rejected by the data-api") == 1
    await unload_entry(hass, entry)
