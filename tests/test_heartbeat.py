"""Heartbeat on a real InfluxDB 1.6.7, driven by Home Assistant's timers and time travel."""

import itertools

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest

from custom_components.ha_ingestor.const import (
    CONF_CONTEXT_ENTITIES,
    CONF_EXCLUDE_ENTITIES,
    CONF_HEARTBEAT_MINUTES,
)
from tests.common import diagnostics, drained, setup_entry, tick, unload_entry, v1_entry
from tests.servers import InfluxV1Server

pytestmark = pytest.mark.servers

W = {"unit_of_measurement": "W"}
NS = 1_000_000_000


def stamp(hass: HomeAssistant, entity_id: str) -> int:
    """The point timestamp of ``entity_id``'s current state (its last_updated)."""
    state = hass.states.get(entity_id)
    assert state is not None
    return round(state.last_updated_timestamp * 1_000_000) * 1000


async def times(server: InfluxV1Server, db: str, entity: str) -> list[int]:
    """Timestamps (ns) of the stored points of one entity, oldest first."""
    rows = await server.aquery(f'SELECT "value" FROM "W" WHERE entity_id = \'{entity}\'', db)
    return [row["time"] for row in rows]


async def test_heartbeat_every_interval_never_on_changes(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Heartbeat 1 min over 6 minutes of Home Assistant time.

    Figures: the unchanged entity gets its real point plus 6 heartbeats, 60 s apart and the
    first 60 s after the change, each stamped with the time it was sent; the entity changing
    every 20 s gets exactly its 18 real points; an excluded entity gets nothing. Heartbeats
    carry the context entities' fields like live changes.
    """
    entry = v1_entry(
        influxdb_v1.url,
        influx_db,
        **{
            CONF_HEARTBEAT_MINUTES: 1,
            CONF_EXCLUDE_ENTITIES: ["sensor.hidden"],
            CONF_CONTEXT_ENTITIES: ["weather.home"],
        },
    )
    hass.states.async_set("weather.home", "sunny", {"temperature": 3.5})
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.still", "5", W)
    hass.states.async_set("sensor.hidden", "1", W)
    still = stamp(hass, "sensor.still")
    busy: list[int] = []
    for second in range(0, 360, 5):
        if second % 20 == 0:
            hass.states.async_set("sensor.busy", str(second), W)
            busy.append(stamp(hass, "sensor.busy"))
        await tick(hass, freezer, 5.0)
    await drained(hass, freezer, entry)

    assert await times(influxdb_v1, influx_db, "busy") == busy
    assert await times(influxdb_v1, influx_db, "hidden") == []
    stored = await times(influxdb_v1, influx_db, "still")
    assert stored[0] == still
    beats = stored[1:]
    assert len(beats) == 6
    assert beats[0] - still == 60 * NS
    assert {b - a for a, b in itertools.pairwise(beats)} == {60 * NS}
    rows = await influxdb_v1.aquery(
        "SELECT ctx_home, ctx_home_temperature FROM \"W\" WHERE entity_id = 'still'", influx_db
    )
    assert {(row["ctx_home"], row["ctx_home_temperature"]) for row in rows} == {("sunny", 3.5)}
    sent = (await diagnostics(hass, entry))["heartbeat"]["sent"]
    assert sent == len(beats) + 6  # the weather entity's own heartbeats
    await unload_entry(hass, entry)


async def test_heartbeat_work_is_capped_per_tick(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """600 entities that went quiet at the same moment, heartbeat 1 min (10 s ticks).

    Figures: a tick visits at most twice the average rate plus 100 entities (304 with the
    entry's own entities queued), so the 600 due together never go out in one tick, each
    entity once in the interval (they go out over consecutive ticks: 2 or 3, the entry's own
    entities take part of the cap); points stored = 600 changes + the heartbeats sent.
    """
    entry = v1_entry(influxdb_v1.url, influx_db, **{CONF_HEARTBEAT_MINUTES: 1})
    await setup_entry(hass, entry)
    for number in range(600):
        hass.states.async_set(f"sensor.meter_{number}", str(number), W)
    per_tick: list[int] = []
    for _ in range(11):
        before = (await diagnostics(hass, entry))["heartbeat"]["sent"]
        await tick(hass, freezer, 10.0)
        per_tick.append((await diagnostics(hass, entry))["heartbeat"]["sent"] - before)
    # The cap itself is shown nowhere: asked of the heartbeat, checked against its formula.
    heartbeat = entry.runtime_data.heartbeat
    assert heartbeat is not None
    cap = heartbeat.per_tick_cap()
    assert cap == 2 * -(-len(hass.states.async_entity_ids()) * 10 // 60) + 100
    assert cap == 304
    assert sum(per_tick) == 600
    assert max(per_tick) <= cap
    busy = [index for index, sent in enumerate(per_tick) if sent]
    # Spread over consecutive ticks, each entity once (the own entities share the cap).
    assert busy == list(range(busy[0], busy[0] + len(busy)))
    assert len(busy) >= 2
    assert len(busy) <= 3
    await drained(hass, freezer, entry)
    rows = await influxdb_v1.aquery('SELECT count("value") FROM "W"', influx_db)
    assert rows[0]["count"] == 600 + (await diagnostics(hass, entry))["heartbeat"]["sent"]
    await unload_entry(hass, entry)
