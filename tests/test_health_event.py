"""ha_ingestor_health_changed fires once per transition, across a real outage and recovery."""

from itertools import pairwise
import logging

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.ha_ingestor.const import EVENT_HEALTH_CHANGED
from tests.common import PREFIX, current, delivered, settle, setup_entry, unload_entry, v1_entry
from tests.servers import InfluxV1Server


async def test_outage_and_recovery(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Server down: waiting, problem on, not connected; server back: healthy again.

    The log holds exactly 2 lines about it, both INFO: unavailable, then resumed.
    """
    caplog.set_level(logging.INFO, logger="custom_components.ha_ingestor")
    events = async_capture_events(hass, EVENT_HEALTH_CHANGED)
    entry = v1_entry(influxdb_v1.url, influx_db)
    influxdb_v1.stop()
    try:
        await setup_entry(hass, entry)
        hass.states.async_set("sensor.outage", "1", {"unit_of_measurement": "W"})
        await settle(hass, freezer, lambda: current(entry).consecutive_failures >= 2)
        assert hass.states.get(f"sensor.{PREFIX}_health").state == "waiting"
        assert hass.states.get(f"binary_sensor.{PREFIX}_problem").state == "on"
        assert hass.states.get(f"binary_sensor.{PREFIX}_connected").state == "off"
    finally:
        influxdb_v1.start()
    await settle(hass, freezer, lambda: delivered(entry), step=5.0)
    assert hass.states.get(f"sensor.{PREFIX}_health").state == "healthy"
    assert hass.states.get(f"binary_sensor.{PREFIX}_problem").state == "off"
    assert hass.states.get(f"binary_sensor.{PREFIX}_connected").state == "on"

    ours = [r for r in caplog.records if r.name.startswith("custom_components.ha_ingestor")]
    assert [r for r in ours if r.levelno >= logging.WARNING] == []
    outage = [r.getMessage() for r in ours if "unavailable" in r.getMessage()]
    back = [r.getMessage() for r in ours if "resumed" in r.getMessage()]
    assert len(outage) == 1, outage
    assert len(back) == 1, back

    transitions = [(e.data["old_status"], e.data["new_status"]) for e in events]
    assert transitions[0] == ("unknown", "waiting")
    assert transitions[-1][1] == "healthy"
    # Exactly one event per transition: no repeats, and each starts where the last ended.
    for (old, new), (next_old, _) in pairwise(transitions):
        assert old != new
        assert new == next_old
    assert all(e.data["entry_id"] == entry.entry_id for e in events)
    await unload_entry(hass, entry)
