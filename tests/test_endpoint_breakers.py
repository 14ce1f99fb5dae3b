"""Fallback URLs: per-URL breakers whatever the preset, shown and reset like the main one."""

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.ha_ingestor.const import CONF_FALLBACK_URLS, CONF_PRESET, DOMAIN
from tests.common import (
    PASSWORD,
    PREFIX,
    current,
    delivered,
    diagnostics,
    settle,
    setup_entry,
    tick,
    unload_entry,
    v1_entry,
)
from tests.servers import InfluxV1Server, free_port


async def test_refusing_primary_falls_back_and_reset_closes_its_breaker(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Aggressive preset (main breaker off), primary refusing, fallback = real InfluxDB.

    Figures: 3 events delivered through the fallback, 0 lost; the primary's
    breaker is open after 2 refusals and shows as such on the connection-state
    sensor and in diagnostics (no credentials); reset_circuit_breaker closes it.
    """
    primary = f"http://127.0.0.1:{free_port()}"
    entry = v1_entry(
        primary, influx_db, **{CONF_FALLBACK_URLS: [influxdb_v1.url], CONF_PRESET: "aggressive"}
    )
    await setup_entry(hass, entry)
    assert not (await diagnostics(hass, entry))["resilience"]["breaker"]["enabled"]
    for i in range(3):
        hass.states.async_set("sensor.kept", str(i), {"unit_of_measurement": "W"})
        await tick(hass, freezer, 1.0)
        await settle(hass, freezer, lambda: delivered(entry))
    rows = await influxdb_v1.aquery('SELECT count("value") FROM "W"', influx_db)
    assert rows[0]["count"] == 3
    assert (await diagnostics(hass, entry))["active_endpoint"] == influxdb_v1.url

    await tick(hass, freezer, 1.0)  # a breaker change reaches entities within a second
    state = hass.states.get(f"sensor.{PREFIX}_connection_state")
    assert state is not None
    assert state.state == "active"
    assert state.attributes["endpoints"] == [
        {"url": primary, "breaker_state": "open"},
        {"url": influxdb_v1.url, "breaker_state": "closed"},
    ]
    downloaded = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    endpoints = downloaded["resilience"]["endpoints"]
    assert [e["breaker_state"] for e in endpoints] == ["open", "closed"]
    assert endpoints[0]["breaker"]["failure_count"] == 2
    assert PASSWORD not in str(downloaded)

    await hass.services.async_call(
        DOMAIN, "reset_circuit_breaker", {"config_entry_id": entry.entry_id}, blocking=True
    )
    assert [e.breaker_state for e in current(entry).endpoints] == [
        "closed",
        "closed",
    ]
    await unload_entry(hass, entry)
