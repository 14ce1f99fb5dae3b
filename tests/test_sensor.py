"""Sensors of ha_ingestor: snapshot of every entity, and their states through an outage."""

from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNKNOWN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.ha_ingestor.const import DOMAIN
from custom_components.ha_ingestor.coordinator import ROUTINE_UPDATE_INTERVAL
from tests.common import (
    ENTRY_ID,
    PREFIX,
    answered,
    current,
    settle,
    setup_entry,
    tick,
    unload_entry,
    v1_entry,
)
from tests.proxy import FaultProxy, Mode
from tests.servers import InfluxV1Server, free_port

# Later than any real clock running these tests: time only moves forward.
NOW = "2030-01-01T12:00:00+00:00"


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_sensors(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    snapshot: SnapshotAssertion,
    *,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Every sensor, its registry entry and its state right after setup."""
    freezer.move_to(NOW)
    entry = v1_entry(influxdb_v1.url, influx_db)
    with patch("custom_components.ha_ingestor.PLATFORMS", [Platform.SENSOR]):
        await setup_entry(hass, entry)
    # Before any event: every value is deterministic.
    await tick(hass, freezer)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)
    devices = dr.async_entries_for_config_entry(device_registry, entry.entry_id)
    assert len(devices) == 1
    assert (DOMAIN, ENTRY_ID) in devices[0].identifiers
    assert devices[0] == snapshot(name="device")

    hass.states.async_set("sensor.outside", "21.5", {"unit_of_measurement": "°C"})
    await hass.services.async_call(
        DOMAIN, "flush", {"config_entry_id": entry.entry_id}, blocking=True
    )
    # Sent, and deleted from the spool by the uploader's next read right after.
    await answered(hass)
    assert current(entry).events_sent == 1
    assert current(entry).pending == 0
    await tick(hass, freezer)  # the throttled entity update
    assert hass.states.get(f"sensor.{PREFIX}_health").state == "healthy"
    assert hass.states.get(f"sensor.{PREFIX}_connection_state").state == "active"
    assert hass.states.get(f"sensor.{PREFIX}_backlog").state == "0"
    assert int(hass.states.get(f"sensor.{PREFIX}_events_sent").state) >= 1
    assert hass.states.get(f"sensor.{PREFIX}_last_success").state.startswith("2030-01-01T12:00")
    assert hass.states.get(f"sensor.{PREFIX}_next_retry").state == STATE_UNKNOWN
    await unload_entry(hass, entry)


async def test_less_used_sensors_are_disabled_by_default(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Diagnostic details a dashboard rarely needs start disabled (no states, no recorder rows)."""
    entry = v1_entry(influxdb_v1.url, influx_db)
    await setup_entry(hass, entry)
    disabled = {
        entity.unique_id.removeprefix(f"{ENTRY_ID}_")
        for entity in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
        if entity.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    }
    assert disabled == {
        "retry_stage",
        "oldest_pending_age",
        "quarantine_dropped",
        "last_success",
        "next_retry",
        "consecutive_failures",
        "last_error_category",
    }
    await unload_entry(hass, entry)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_sensors_during_outage(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    socket_enabled: None,
) -> None:
    """A refused connection shows as waiting with a backlog, a stage and a next retry."""
    freezer.move_to(NOW)
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    # Before the first attempt finishes, health is HA's unknown, not a problem.
    assert hass.states.get(f"sensor.{PREFIX}_health").state == STATE_UNKNOWN
    hass.states.async_set("sensor.outside", "1", {"unit_of_measurement": "°C"})
    await settle(hass, freezer, lambda: current(entry).consecutive_failures >= 1)

    health = hass.states.get(f"sensor.{PREFIX}_health")
    assert health.state == "waiting"
    assert "Cannot reach the destination" in health.attributes["reason"]
    assert health.attributes["recommendations"]
    assert hass.states.get(f"sensor.{PREFIX}_connection_state").state == "retrying_rapid"
    assert hass.states.get(f"sensor.{PREFIX}_retry_stage").state == "rapid"
    # Not overdue yet: a point in its first seconds is not a backlog.
    assert hass.states.get(f"sensor.{PREFIX}_backlog").state == "0"
    assert hass.states.get(f"sensor.{PREFIX}_oldest_pending_age").state == "0"
    assert hass.states.get(f"sensor.{PREFIX}_last_error_category").state == "network"
    assert hass.states.get(f"sensor.{PREFIX}_consecutive_failures").state == "1"
    assert hass.states.get(f"sensor.{PREFIX}_last_success").state == STATE_UNKNOWN
    # Never a past time: a retry that is due shows as none, and the reason says so.
    next_retry = hass.states.get(f"sensor.{PREFIX}_next_retry").state
    if next_retry == STATE_UNKNOWN:
        assert "Attempting now" in health.attributes["reason"]
    else:
        assert dt_util.parse_datetime(next_retry) >= dt_util.utcnow()
        assert "Next attempt in" in health.attributes["reason"]
    # Overdue once it waited longer than 3 flush intervals (at least 10 s).
    await settle(
        hass,
        freezer,
        lambda: hass.states.get(f"sensor.{PREFIX}_backlog").state == "1",
        step=5.0,
    )
    assert int(hass.states.get(f"sensor.{PREFIX}_oldest_pending_age").state) > 10
    await unload_entry(hass, entry)


async def test_routine_updates_are_throttled(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Counters change on every write but reach the state machine at most once a minute,
    so the recorder does not store a row per sensor per second; status changes are immediate.
    """
    entry = v1_entry(influxdb_v1.url, influx_db)
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.busy", "1", {"unit_of_measurement": "W"})
    await settle(hass, freezer, lambda: current(entry).events_sent >= 1)
    sent = f"sensor.{PREFIX}_events_sent"
    # Let the first (status change) push land, then write more while already healthy.
    await tick(hass, freezer, ROUTINE_UPDATE_INTERVAL)
    assert hass.states.get(sent).state == "1"
    hass.states.async_set("sensor.busy", "2", {"unit_of_measurement": "W"})
    for _ in range(5):
        await tick(hass, freezer, 1.0)
    await answered(hass)
    assert current(entry).events_sent == 2
    await tick(hass, freezer, 1.0)
    assert hass.states.get(sent).state == "1"  # not yet: routine update pending
    await tick(hass, freezer, ROUTINE_UPDATE_INTERVAL)
    assert hass.states.get(sent).state == "2"
    await unload_entry(hass, entry)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_hung_destination_shows_and_recovery_clears(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """A destination that accepts connections but never answers is a problem within 12 s
    (10 s overdue threshold + 1 s push + 1 s step), not after its 30 s timeout; once
    delivery resumes the backlog, oldest pending age and last error category read 0/none.
    """
    health_id = f"sensor.{PREFIX}_health"

    def state(key: str, platform: str = "sensor") -> str:
        return hass.states.get(f"{platform}.{PREFIX}_{key}").state

    async with FaultProxy(influxdb_v1.port) as proxy:
        entry = v1_entry(proxy.url, influx_db)
        await setup_entry(hass, entry)
        hass.states.async_set("sensor.busy", "start", {"unit_of_measurement": "W"})
        await settle(hass, freezer, lambda: state("health") == "healthy")
        assert state("backlog") == "0"
        assert state("oldest_pending_age") == "0"

        proxy.set_mode(Mode.BLACKHOLE)
        for second in range(1, 30):
            hass.states.async_set("sensor.busy", str(second), {"unit_of_measurement": "W"})
            await tick(hass, freezer, 1.0)
            if state("health") != "healthy":
                break
        assert second <= 12
        assert state("health") == "degraded"
        assert "No write has been confirmed" in hass.states.get(health_id).attributes["reason"]
        assert state("problem", "binary_sensor") == "on"
        assert int(state("backlog")) > 0
        assert int(state("oldest_pending_age")) > 10
        # Nothing has failed yet: no error category, no retry time.
        assert state("last_error_category") == "none"
        assert state("next_retry") == STATE_UNKNOWN

        # Back: the hung connection is cut (a network error), then the retry succeeds.
        proxy.set_mode(Mode.PASS)
        # The re-sent points land over real sockets: wait for them, not for a fixed time.
        await settle(
            hass, freezer, lambda: state("health") == "healthy" and state("backlog") == "0"
        )
        await tick(hass, freezer, 1.0)
        assert state("last_error_category") == "none"
        assert state("backlog") == "0"
        assert state("oldest_pending_age") == "0"
        assert state("next_retry") == STATE_UNKNOWN
        assert state("problem", "binary_sensor") == "off"
        await unload_entry(hass, entry)


async def test_update_entity_takes_a_fresh_snapshot(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    init_integration: MockConfigEntry,
) -> None:
    """homeassistant.update_entity shows the counters now, not at the next routine push."""
    assert await async_setup_component(hass, "homeassistant", {})
    entry = init_integration
    sent = f"sensor.{PREFIX}_events_sent"
    hass.states.async_set("sensor.busy", "1", {"unit_of_measurement": "W"})
    await settle(hass, freezer, lambda: current(entry).events_sent >= 1)
    await tick(hass, freezer, ROUTINE_UPDATE_INTERVAL)
    hass.states.async_set("sensor.busy", "2", {"unit_of_measurement": "W"})
    await settle(hass, freezer, lambda: current(entry).events_sent >= 2)
    assert hass.states.get(sent).state == "1"  # the routine push is still pending
    await hass.services.async_call(
        "homeassistant", "update_entity", {"entity_id": sent}, blocking=True
    )
    assert hass.states.get(sent).state == "2"
