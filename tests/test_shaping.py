"""Throttle and deadband end to end: real InfluxDB 1.6.7, Home Assistant's timers, time travel."""

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.ha_ingestor.const import (
    CONF_DEADBAND,
    CONF_DOMAIN_OVERRIDES,
    CONF_ENTITY_OVERRIDES,
    CONF_GLOB_OVERRIDES,
    CONF_THROTTLE,
    CONF_URL,
)
from custom_components.ha_ingestor.core.shaping import DEADBAND_QUIET
from tests.common import (
    diagnostics,
    drained,
    settle,
    setup_entry,
    shut_down,
    tick,
    unload_entry,
    v1_entry,
)
from tests.servers import InfluxV1Server, free_port
from tests.test_config_flow import _options

pytestmark = pytest.mark.servers

W = {"unit_of_measurement": "W"}
C = {"unit_of_measurement": "°C"}


async def values(server: InfluxV1Server, db: str, measurement: str, entity: str) -> list[Any]:
    """Stored ``value`` (or ``state``) fields of one entity, oldest first."""
    rows = await server.aquery(f"SELECT * FROM \"{measurement}\" WHERE entity_id = '{entity}'", db)
    return [row["value"] if row.get("value") is not None else row["state"] for row in rows]


async def holding(hass: HomeAssistant, entry: ConfigEntry[Any], count: int) -> bool:
    """Whether diagnostics show ``count`` changes held back by the throttle/deadband."""
    held: int = (await diagnostics(hass, entry))["shaping"]["holding"]
    return held == count


async def test_throttle_on_real_influxdb(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Throttle 10 s, 30 changes one a second: 5 points stored, the last value (30) among them.

    Figures: changes in 30, points stored 5: the first (1), then the last change before each
    window's end (10, 19, 28), released by the flush timer, and the trailing 30 once its
    window is over; each with its own change's timestamp. An unthrottled entity changing
    alongside keeps all of its 30 points.
    """
    entry = v1_entry(
        influxdb_v1.url,
        influx_db,
        **{CONF_ENTITY_OVERRIDES: {"sensor.power": {CONF_THROTTLE: 10}}},
    )
    await setup_entry(hass, entry)
    stamps: list[int] = []
    for i in range(1, 31):
        hass.states.async_set("sensor.power", str(i), W)
        hass.states.async_set("sensor.other", str(i), W)
        state = hass.states.get("sensor.power")
        assert state is not None
        stamps.append(round(state.last_updated_timestamp * 1_000_000) * 1000)
        await tick(hass, freezer, 1.0)
    await settle(hass, freezer, lambda: holding(hass, entry, 0))
    await drained(hass, freezer, entry)
    assert await values(influxdb_v1, influx_db, "W", "power") == [1, 10, 19, 28, 30]
    rows = await influxdb_v1.aquery("SELECT value FROM \"W\" WHERE entity_id = 'power'", influx_db)
    assert [row["time"] for row in rows] == [stamps[i - 1] for i in (1, 10, 19, 28, 30)]
    assert await values(influxdb_v1, influx_db, "W", "other") == list(range(1, 31))
    # Points written = changes in - held back + released = 30 - 29 + 4.
    shaping = (await diagnostics(hass, entry))["shaping"]
    assert (shaping["held_back"], shaping["released"]) == (29, 4)
    await unload_entry(hass, entry)


async def test_deadband_and_text_states_on_real_influxdb(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Deadband 0.5 by pattern, and on a whole text domain.

    Figures: 7 temperature changes in, 4 points stored (20.0, 20.3, 21.0, then 21.2 once the
    sensor was quiet for DEADBAND_QUIET); 5 switch changes in, 5 points stored (non-numeric
    states are never held back by a deadband).
    """
    entry = v1_entry(
        influxdb_v1.url,
        influx_db,
        **{
            CONF_GLOB_OVERRIDES: {"sensor.temp_*": {CONF_DEADBAND: 0.5}},
            CONF_DOMAIN_OVERRIDES: {"switch": {CONF_DEADBAND: 0.5}},
        },
    )
    await setup_entry(hass, entry)
    for value in ("20.0", "20.1", "20.2", "20.3", "21.0", "21.1", "21.2"):
        hass.states.async_set("sensor.temp_kitchen", value, C)
        await tick(hass, freezer, 2.0)
    for value in ("on", "off", "on", "off", "on"):
        hass.states.async_set("switch.pump", value)
        await tick(hass, freezer, 2.0)
    await drained(hass, freezer, entry)
    assert await values(influxdb_v1, influx_db, "°C", "temp_kitchen") == [20.0, 20.3, 21.0]
    assert await values(influxdb_v1, influx_db, "switch.pump", "pump") == [1, 0, 1, 0, 1]
    # The held 21.2 goes out once the sensor has been quiet long enough.
    await settle(
        hass,
        freezer,
        lambda: holding(hass, entry, 0),
        step=10.0,
        limit=int(DEADBAND_QUIET / 10) + 5,
    )
    await drained(hass, freezer, entry)
    assert await values(influxdb_v1, influx_db, "°C", "temp_kitchen") == [20.0, 20.3, 21.0, 21.2]
    await unload_entry(hass, entry)


async def test_held_back_change_reaches_the_spool_at_stop(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """A graceful stop with changes held back (throttle 1 h) and still in memory.

    Figures: 3 changes in, 2 points stored after the restart (1 and the held-back 3): the
    held-back change went to the spool on STOP, with the destination unreachable.
    """
    closed = f"http://127.0.0.1:{free_port()}"
    entry = v1_entry(
        closed, influx_db, **{CONF_DOMAIN_OVERRIDES: {"sensor": {CONF_THROTTLE: 3600}}}
    )
    await setup_entry(hass, entry)
    for value in ("1", "2", "3"):
        hass.states.async_set("sensor.meter", value, W)
        freezer.tick(timedelta(milliseconds=50))
    # No flush ran yet: nothing decided either.
    assert (await diagnostics(hass, entry))["buffered"] == 3
    await shut_down(hass)
    # Core reads: after FINAL_WRITE HA is going down, and nothing (not even the
    # diagnostics, which read the closed spool) shows what was held or spooled.
    runtime = entry.runtime_data
    assert runtime.shaper is not None
    assert runtime.shaper.holding == 0
    assert runtime.pipeline.stats is not None
    assert runtime.pipeline.stats.pending_count == 2
    await unload_entry(hass, entry)

    # Next start, the database is reachable.
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_URL: influxdb_v1.url})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await drained(hass, freezer, entry)
    assert await values(influxdb_v1, influx_db, "W", "meter") == [1, 3]
    await unload_entry(hass, entry)


async def test_reload_writes_the_held_back_change(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Saving options reloads the entry: what the throttle held back is written first.

    Figures: 2 changes in before the reload, 2 points stored (the held-back one on unload).
    """
    entry = v1_entry(
        influxdb_v1.url,
        influx_db,
        **{CONF_ENTITY_OVERRIDES: {"sensor.meter": {CONF_THROTTLE: 600}}},
    )
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.meter", "1", W)
    await tick(hass, freezer, 1.0)
    hass.states.async_set("sensor.meter", "2", W)
    await tick(hass, freezer, 1.0)
    result = await _options(hass, entry, "heartbeat")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"heartbeat_minutes": 60}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()  # the entry reloads
    await drained(hass, freezer, entry)
    assert await values(influxdb_v1, influx_db, "W", "meter") == [1, 2]
    await unload_entry(hass, entry)
