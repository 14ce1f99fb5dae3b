"""Setup, capture, lifecycle and durability of the integration against real InfluxDB."""

from datetime import timedelta
from pathlib import Path

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    label_registry as lr,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.ha_ingestor.const import (
    CONF_CONTEXT_ENTITIES,
    CONF_EVENT_TYPES,
    CONF_EXCLUDE_ENTITIES,
    CONF_INCLUDE_AREAS,
    CONF_INCLUDE_DEVICES,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_LABELS,
    CONF_SSL_CA_CERT,
    CONF_URL,
    DOMAIN,
)
from custom_components.ha_ingestor.factory import spool_path
from tests.common import (
    PREFIX,
    current,
    delivered,
    diagnostics,
    settle,
    setup_entry,
    shut_down,
    unload_entry,
    v1_entry,
)
from tests.servers import InfluxV1Server, free_port


async def count(server: InfluxV1Server, db: str, measurement: str) -> int:
    """Points stored in ``measurement``."""
    rows = await server.aquery(f'SELECT count(*) FROM "{measurement}"', db)
    return (
        max((int(v) for k, v in rows[0].items() if k.startswith("count")), default=0) if rows else 0
    )


async def test_ships_state_changes(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    init_integration: MockConfigEntry,
) -> None:
    """State changes land in InfluxDB with the built-in integration's schema."""
    entry = init_integration
    assert entry.state is ConfigEntryState.LOADED

    for i in range(10):
        hass.states.async_set("sensor.outside", str(10 + i), {"unit_of_measurement": "°C"})
        freezer.tick(timedelta(milliseconds=10))
    hass.states.async_set("switch.pump", "on")
    await settle(
        hass,
        freezer,
        lambda: delivered(entry) and current(entry).events_sent >= 11,
    )
    rows = await influxdb_v1.aquery('SELECT "value", entity_id, domain FROM "°C"', influx_db)
    assert [r["value"] for r in rows] == [float(10 + i) for i in range(10)]
    assert {r["entity_id"] for r in rows} == {"outside"}
    switch = await influxdb_v1.aquery('SELECT "value" FROM "switch.pump"', influx_db)
    assert [r["value"] for r in switch] == [1.0]
    assert hass.states.get(f"binary_sensor.{PREFIX}_connected").state == "on"
    assert hass.states.get(f"sensor.{PREFIX}_health").state == "healthy"

    await unload_entry(hass, entry)
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_unreachable_at_setup_captures_and_delivers_later(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Setup never waits for the database; events from the first second are kept."""
    influxdb_v1.stop()
    entry = v1_entry(influxdb_v1.url, influx_db)
    entry.add_to_hass(hass)
    try:
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        for i in range(20):
            hass.states.async_set("sensor.early", str(i), {"unit_of_measurement": "W"})
            freezer.tick(timedelta(milliseconds=5))
        await settle(hass, freezer, lambda: current(entry).consecutive_failures >= 3)
        assert current(entry).pending == 20
    finally:
        influxdb_v1.start()
    await settle(hass, freezer, lambda: delivered(entry), step=5.0)
    assert await count(influxdb_v1, influx_db, "W") == 20
    await unload_entry(hass, entry)


async def test_restart_mid_outage_loses_nothing(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """A graceful HA stop during an outage: memory batch written on STOP, spool closed at
    FINAL_WRITE; the next start (a reload here, same spool file) drains it by itself.
    """
    closed = f"http://127.0.0.1:{free_port()}"
    entry = v1_entry(closed, influx_db)
    await setup_entry(hass, entry)
    for i in range(15):
        hass.states.async_set("sensor.restart", str(i), {"unit_of_measurement": "kWh"})
        freezer.tick(timedelta(milliseconds=5))
    # No flush tick has run: these events are only in memory when HA stops.
    assert (await diagnostics(hass, entry))["buffered"] == 15
    await shut_down(hass)
    # The spool is closed: later changes and flush ticks must not touch it.
    hass.states.async_set("sensor.restart", "late", {"unit_of_measurement": "kWh"})
    freezer.tick(timedelta(seconds=5))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    # Diagnostics still answer after FINAL_WRITE: the memory batch is on disk,
    # and the closed spool is not read.
    after = await diagnostics(hass, entry)
    assert (after["buffered"], after["dead_letters"]) == (0, [])
    assert "spool is not open" not in caplog.text
    await unload_entry(hass, entry)
    assert spool_path(hass, entry.entry_id).exists()

    # "Next start": the database is reachable again.
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_URL: influxdb_v1.url})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await settle(hass, freezer, lambda: delivered(entry))
    assert await count(influxdb_v1, influx_db, "kWh") == 15
    # Removing the entry removes its spool too.
    assert (await hass.config_entries.async_remove(entry.entry_id))["require_restart"] is False
    await hass.async_block_till_done()
    assert not spool_path(hass, entry.entry_id).exists()


async def test_filters_and_extra_events(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Only included domains are shipped, exclusions win, our own entities never ship,
    and extra event types become their own measurement.
    """
    entry = v1_entry(
        influxdb_v1.url,
        influx_db,
        **{
            CONF_INCLUDE_DOMAINS: ["sensor"],
            CONF_EXCLUDE_ENTITIES: ["sensor.secret"],
            CONF_EVENT_TYPES: ["my_custom_event"],
        },
    )
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.kept", "1", {"unit_of_measurement": "lx"})
    hass.states.async_set("sensor.secret", "2", {"unit_of_measurement": "lx"})
    hass.states.async_set("light.kitchen", "on")
    hass.bus.async_fire("my_custom_event", {"value": 3.5, "who": "test"})
    await settle(hass, freezer, lambda: current(entry).events_sent >= 2)
    lux = await influxdb_v1.aquery('SELECT "value", entity_id FROM "lx"', influx_db)
    assert [(r["entity_id"], r["value"]) for r in lux] == [("kept", 1.0)]
    events = await influxdb_v1.aquery('SELECT * FROM "my_custom_event"', influx_db)
    assert len(events) == 1
    assert events[0]["value"] == 3.5
    assert not await influxdb_v1.aquery('SELECT * FROM "light.kitchen"', influx_db)
    await unload_entry(hass, entry)


async def test_context_enrichment(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Chosen context entities' state and key attributes ride along on every point."""
    hass.states.async_set("weather.home", "sunny", {"temperature": 21.5, "humidity": 40})
    entry = v1_entry(influxdb_v1.url, influx_db, **{CONF_CONTEXT_ENTITIES: ["weather.home"]})
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.power", "100", {"unit_of_measurement": "W"})
    freezer.tick(timedelta(seconds=1))
    hass.states.async_set("weather.home", "rainy", {"temperature": 18.0, "humidity": 90})
    hass.states.async_set("sensor.power", "200", {"unit_of_measurement": "W"})
    await settle(hass, freezer, lambda: current(entry).events_sent >= 3)
    rows = await influxdb_v1.aquery(
        'SELECT "value", ctx_home, ctx_home_temperature, ctx_home_humidity FROM "W"', influx_db
    )
    assert [(r["value"], r["ctx_home"], r["ctx_home_temperature"]) for r in rows] == [
        (100.0, "sunny", 21.5),
        (200.0, "rainy", 18.0),
    ]
    await unload_entry(hass, entry)


async def test_device_area_label_filters_follow_the_registries(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Areas, devices and labels resolve to entities, and stay current as registries change."""
    area = ar.async_get(hass).async_create("Garage")
    label = lr.async_get(hass).async_create("Energy")
    other = MockConfigEntry(domain="demo")
    other.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("demo", "meter")}, name="Meter"
    )
    ent_reg = er.async_get(hass)
    ent_reg.async_get_or_create("sensor", "demo", "in_area", suggested_object_id="in_area")
    ent_reg.async_update_entity("sensor.in_area", area_id=area.id)
    ent_reg.async_get_or_create(
        "sensor", "demo", "on_device", suggested_object_id="on_device", device_id=device.id
    )
    ent_reg.async_get_or_create("sensor", "demo", "labelled", suggested_object_id="labelled")
    ent_reg.async_update_entity("sensor.labelled", labels={label.label_id})
    ent_reg.async_get_or_create("sensor", "demo", "later", suggested_object_id="later")
    entry = v1_entry(
        influxdb_v1.url,
        influx_db,
        **{
            CONF_INCLUDE_AREAS: [area.id],
            CONF_INCLUDE_DEVICES: [device.id],
            CONF_INCLUDE_LABELS: [label.label_id],
        },
    )
    await setup_entry(hass, entry)
    for entity_id in ("sensor.in_area", "sensor.on_device", "sensor.labelled", "sensor.later"):
        hass.states.async_set(entity_id, "1", {"unit_of_measurement": "A"})
    # Moving an entity into the area makes it shipped from then on.
    ent_reg.async_update_entity("sensor.later", area_id=area.id)
    await hass.async_block_till_done()
    freezer.tick(timedelta(seconds=1))
    hass.states.async_set("sensor.later", "2", {"unit_of_measurement": "A"})
    await settle(hass, freezer, lambda: current(entry).events_sent >= 4)
    rows = await influxdb_v1.aquery('SELECT "value", entity_id FROM "A"', influx_db)
    assert sorted((r["entity_id"], r["value"]) for r in rows) == [
        ("in_area", 1.0),
        ("labelled", 1.0),
        ("later", 2.0),
        ("on_device", 1.0),
    ]
    await unload_entry(hass, entry)


async def test_include_resolving_to_nothing_ships_nothing(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """An area include with no entities in it means "nothing", not "everything"."""
    area = ar.async_get(hass).async_create("Empty")
    entry = v1_entry(influxdb_v1.url, influx_db, **{CONF_INCLUDE_AREAS: [area.id]})
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.anything", "1")
    await settle(hass, freezer, lambda: current(entry).spool is not None)
    await hass.services.async_call(
        DOMAIN, "flush", {"config_entry_id": entry.entry_id}, blocking=True
    )
    counters = (await diagnostics(hass, entry))["resilience"]["metrics"]["counters"]
    assert counters["events_received"] == 0
    await unload_entry(hass, entry)


async def test_broken_ca_file_is_a_config_error(hass: HomeAssistant, tmp_path: Path) -> None:
    """A CA file that cannot be loaded fails setup as a configuration error (no retry loop)."""
    ca = tmp_path / "ca.pem"
    await hass.async_add_executor_job(ca.write_text, "not a certificate")
    entry = v1_entry("https://127.0.0.1:1", "db")
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_SSL_CA_CERT: str(ca)})
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.reason is not None
