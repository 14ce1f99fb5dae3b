"""The extended-outage repair measures the outage from its first failure, not the last success."""

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.ha_ingestor.const import CONF_OUTAGE_REPAIR_AFTER, DOMAIN
from tests.common import (
    ENTRY_ID,
    current,
    drained,
    settle,
    setup_entry,
    tick,
    unload_entry,
    v1_entry,
)
from tests.servers import InfluxV1Server


async def test_quiet_filter_is_not_an_outage(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Nothing matched for 2 h, then one event: no repair at any moment (repair after 1 h).

    Figures: outage_started_wall stays None throughout; repairs created 0;
    the event is delivered (backlog 0).
    """
    entry = v1_entry(influxdb_v1.url, influx_db, **{CONF_OUTAGE_REPAIR_AFTER: 3600})
    created: list[str] = []

    def on_issue(event: Event) -> None:
        if event.data["action"] == "create":
            created.append(event.data["issue_id"])

    unsub = hass.bus.async_listen(ir.EVENT_REPAIRS_ISSUE_REGISTRY_UPDATED, on_issue)
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.quiet", "1", {"unit_of_measurement": "W"})
    await settle(hass, freezer, lambda: current(entry).last_success is not None)
    for _ in range(4):
        await tick(hass, freezer, 1800.0)
    assert current(entry).outage_started is None
    hass.states.async_set("sensor.quiet", "2", {"unit_of_measurement": "W"})
    await tick(hass, freezer, 0.0)
    await drained(hass, freezer, entry)
    unsub()
    assert f"extended_outage_{ENTRY_ID}" not in created
    assert not [issue for issue in created if issue.startswith("extended_outage")]
    assert current(entry).outage_started is None
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"extended_outage_{ENTRY_ID}") is None
    await unload_entry(hass, entry)
