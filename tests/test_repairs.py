"""Repair issues appear with their cause and clear themselves when it is gone."""

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.ha_ingestor.const import CONF_OUTAGE_REPAIR_AFTER, CONF_SPOOL_MAX_MB, DOMAIN
from tests.common import ENTRY_ID, settle, setup_entry, unload_entry, v1_entry
from tests.servers import InfluxV1Server, free_port


async def test_extended_outage(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """No delivery for longer than the option: an issue; delivered again: gone."""
    entry = v1_entry(influxdb_v1.url, influx_db, **{CONF_OUTAGE_REPAIR_AFTER: 60})
    influxdb_v1.stop()
    issue_id = f"extended_outage_{ENTRY_ID}"
    try:
        await setup_entry(hass, entry)
        runtime = entry.runtime_data
        hass.states.async_set("sensor.outage", "1", {"unit_of_measurement": "W"})
        await settle(
            hass,
            freezer,
            lambda: issue_registry.async_get_issue(DOMAIN, issue_id) is not None,
            step=5.0,
        )
        issue = issue_registry.async_get_issue(DOMAIN, issue_id)
        assert issue.translation_key == "extended_outage"
        assert issue.translation_placeholders["backlog"] == "1"
    finally:
        influxdb_v1.start()
    await settle(hass, freezer, lambda: runtime.backlog == 0, step=5.0)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    await unload_entry(hass, entry)


@pytest.mark.usefixtures("socket_enabled")
async def test_spool_overflow_and_unload(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, issue_registry: ir.IssueRegistry
) -> None:
    """Events dropped by a full spool raise a warning; unloading clears every issue."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere", **{CONF_SPOOL_MAX_MB: 0.001})
    await setup_entry(hass, entry)
    runtime = entry.runtime_data
    for i in range(100):
        hass.states.async_set("sensor.flood", str(i), {"unit_of_measurement": "W"})
    issue_id = f"spool_overflow_{ENTRY_ID}"
    await settle(
        hass, freezer, lambda: issue_registry.async_get_issue(DOMAIN, issue_id) is not None
    )
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue.severity is ir.IssueSeverity.WARNING
    assert int(issue.translation_placeholders["count"]) > 0
    assert runtime.pipeline.resilience.metrics.events_dropped > 0
    await unload_entry(hass, entry)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
