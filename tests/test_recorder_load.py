"""What HA Ingestor's own entities cost Home Assistant's recorder and logbook, per hour.

Measured against HA's real recorder (SQLite) with an hour of time travel and a
state change every 10 s; the logbook's own rule decides which rows it shows
(a changed state of an entity that is not a continuous sensor).
"""

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.logbook.helpers import is_sensor_continuous
from homeassistant.components.recorder import Recorder, history
from homeassistant.core import Event, HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.ha_ingestor.const import EVENT_HEALTH_CHANGED
from tests.common import PREFIX, setup_entry, tick, unload_entry, v1_entry
from tests.servers import InfluxV1Server, free_port

HOUR = 3600
STEP = 10


@pytest.fixture
def mock_recorder_before_hass(async_setup_recorder_instance: Any) -> None:
    """Set up the recorder's database before Home Assistant starts (as core's tests)."""


async def _run_hour(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> tuple[datetime, datetime]:
    """An hour with a state change every STEP seconds; return the measured window.

    Each ``tick`` waits for the write it triggered to be answered, so a healthy
    destination's answer lands before time moves on, as it would in milliseconds.
    """
    start = dt_util.utcnow()
    for i in range(HOUR // STEP):
        hass.states.async_set("sensor.busy", str(i), {"unit_of_measurement": "W"})
        await tick(hass, freezer, 1.0)
        await tick(hass, freezer, STEP - 1.0)
    await async_wait_recording_done(hass)
    return start, dt_util.utcnow()


async def _own_rows(
    hass: HomeAssistant, entry_id: str, start: datetime, end: datetime
) -> dict[str, list[State]]:
    """Recorded states of the entry's entities in [start, end], by entity id."""
    registry = er.async_get(hass)
    ids = [e.entity_id for e in er.async_entries_for_config_entry(registry, entry_id)]

    def read() -> dict[str, list[Any]]:
        return history.get_significant_states(
            hass,
            start,
            end,
            ids,
            include_start_time_state=False,
            significant_changes_only=False,
            minimal_response=False,
        )

    rows: dict[str, list[State]] = await hass.async_add_executor_job(read)
    return rows


def _logbook_lines(hass: HomeAssistant, rows: dict[str, list[State]]) -> list[tuple[str, str]]:
    """Rows the logbook shows: a changed state of an entity that is not continuous."""
    registry = er.async_get(hass)
    lines = []
    for entity_id, states in rows.items():
        if is_sensor_continuous(hass, registry, entity_id):
            continue
        lines.extend(
            (entity_id, new.state) for old, new in pairwise(states) if old.state != new.state
        )
    return lines


async def test_healthy_hour(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Healthy, busy hour: at most 120 state rows, nothing in the logbook.

    Figure: 118 rows/hour written by the entry's enabled entities while delivering:
    59 each from events sent and backlog (pushed once a minute), none from the
    others; 0 logbook lines.
    """
    entry = v1_entry(influxdb_v1.url, influx_db)
    await setup_entry(hass, entry)
    # Past start-up (unknown -> healthy): the steady state is what is measured.
    hass.states.async_set("sensor.busy", "start", {"unit_of_measurement": "W"})
    for _ in range(10):
        await tick(hass, freezer, STEP)
    start, end = await _run_hour(hass, freezer)
    rows = await _own_rows(hass, entry.entry_id, start, end)
    total = sum(len(states) for states in rows.values())
    assert total <= 120, {entity: len(states) for entity, states in rows.items()}
    moving = {entity for entity, states in rows.items() if states}
    assert moving == {f"sensor.{PREFIX}_events_sent", f"sensor.{PREFIX}_backlog"}
    assert all(len(states) <= 60 for states in rows.values())
    assert _logbook_lines(hass, rows) == []
    await unload_entry(hass, entry)


async def test_outage_hour(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    socket_enabled: None,
) -> None:
    """An hour of refused connections: every health transition is in the logbook.

    Figure: 223 rows/hour during the outage (health reason 127, backlog 84:
    kind changes within a second, counters and ages once a minute); the logbook
    shows each health transition once.
    """
    transitions: list[str] = []

    def on_transition(event: Event[Any]) -> None:
        transitions.append(event.data["new_status"])

    hass.bus.async_listen(EVENT_HEALTH_CHANGED, on_transition)
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    start = dt_util.utcnow() - timedelta(seconds=1)
    _, end = await _run_hour(hass, freezer)
    rows = await _own_rows(hass, entry.entry_id, start, end)
    total = sum(len(states) for states in rows.values())
    lines = _logbook_lines(hass, rows)
    health = [state for entity, state in lines if entity.endswith("_health")]
    assert transitions
    assert health == transitions[: len(health)]
    assert len(health) == len(transitions)
    assert total <= 300, {entity: len(states) for entity, states in rows.items()}
    await unload_entry(hass, entry)
