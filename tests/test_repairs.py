"""Repair issues appear with their cause and clear themselves when it is gone."""

from pathlib import Path

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_OUTAGE_REPAIR_AFTER,
    CONF_SPOOL_MAX_MB,
    DOMAIN,
)
from custom_components.ha_ingestor.repairs import async_create_fix_flow
from tests.common import (
    ENTRY_ID,
    PASSWORD,
    conflicting_field,
    current,
    deliver_one,
    delivered,
    diagnostics,
    issue_raised,
    settle,
    setup_entry,
    setup_with_ca,
    unload_entry,
    v1_entry,
)
from tests.core.test_rejected import NGINX_400
from tests.proxy import FaultProxy, Mode
from tests.servers import InfluxV1Server, free_port, unique_name
from tests.tls import TlsProxy, ignore_handshake_errors, make_pki


async def run_fix_flow(hass: HomeAssistant, issue_id: str) -> tuple[str, str]:
    """Drive an issue's fix flow (confirm form, then submit); return both result types."""
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    flow = await async_create_fix_flow(hass, issue_id, issue.data)
    flow.hass = hass
    flow.handler = DOMAIN
    flow.flow_id = "fix"
    shown = await flow.async_step_init()
    done = await flow.async_step_confirm({})
    return shown["type"], done["type"]


def cleared(hass: HomeAssistant, entry: MockConfigEntry, issue_id: str) -> bool:
    """Whether everything is delivered and the repair ``issue_id`` is gone."""
    return delivered(entry) and ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def retry_until_cleared(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: MockConfigEntry, issue_id: str
) -> None:
    """Retry now (the action), then advance time until :func:`cleared`."""
    await hass.services.async_call(
        DOMAIN, "retry_now", {"config_entry_id": entry.entry_id}, blocking=True
    )
    await settle(hass, freezer, lambda: cleared(hass, entry, issue_id))


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
        hass.states.async_set("sensor.outage", "1", {"unit_of_measurement": "W"})
        issue = await issue_raised(hass, freezer, issue_id, step=5.0)
        assert issue.translation_key == "extended_outage"
        assert issue.translation_placeholders["backlog"] == "1"
    finally:
        influxdb_v1.start()
    await settle(hass, freezer, lambda: delivered(entry), step=5.0)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    await unload_entry(hass, entry)


@pytest.mark.usefixtures("socket_enabled")
async def test_spool_overflow_and_unload(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, issue_registry: ir.IssueRegistry
) -> None:
    """Events dropped by a full spool raise a warning; unloading clears every issue."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere", **{CONF_SPOOL_MAX_MB: 0.0001})
    await setup_entry(hass, entry)
    for i in range(100):
        hass.states.async_set("sensor.flood", str(i), {"unit_of_measurement": "W"})
    issue_id = f"spool_overflow_{ENTRY_ID}"
    issue = await issue_raised(hass, freezer, issue_id)
    assert issue.severity is ir.IssueSeverity.WARNING
    assert int(issue.translation_placeholders["count"]) > 0
    assert current(entry).events_dropped > 0
    await unload_entry(hass, entry)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_auth_failure_raises_fixable_issue_and_reauth(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
    influxdb_v1_auth: InfluxV1Server,
    socket_enabled: None,
) -> None:
    """A real 401 pauses delivery, raises a fixable issue and starts reauth; data is kept."""
    await influxdb_v1_auth.acreate_database("auth_db")
    entry = v1_entry(influxdb_v1_auth.url, "auth_db")
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.locked", "1", {"unit_of_measurement": "W"})
    issue_id = f"auth_failed_{ENTRY_ID}"
    issue = await issue_raised(hass, freezer, issue_id)
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.ERROR
    assert current(entry).pending == 1
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert any(flow["context"]["source"] == "reauth" for flow in flows)

    # The repair's fix flow leads to reauthentication.
    assert await run_fix_flow(hass, issue_id) == ("form", "create_entry")
    await unload_entry(hass, entry)


async def test_quarantined_points_issue_and_requeue_fix(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """A real field-type conflict quarantines the point (issue); after the conflict is gone,
    the fix flow requeues it, it is delivered and the issue clears.
    """
    await conflicting_field(influxdb_v1, influx_db)
    entry = v1_entry(influxdb_v1.url, influx_db)
    await setup_entry(hass, entry)
    await deliver_one(hass, freezer, entry)
    hass.states.async_set("sensor.conflict", "5", {"unit_of_measurement": "W"})
    issue_id = f"points_quarantined_{ENTRY_ID}"
    await issue_raised(hass, freezer, issue_id)
    assert issue_registry.async_get_issue(DOMAIN, issue_id).translation_placeholders["count"] == "1"
    await influxdb_v1.aquery('DROP MEASUREMENT "W"', influx_db)

    assert await run_fix_flow(hass, issue_id) == ("form", "create_entry")
    await settle(hass, freezer, lambda: issue_registry.async_get_issue(DOMAIN, issue_id) is None)
    rows = await influxdb_v1.aquery('SELECT "value" FROM "W"', influx_db)
    assert [r["value"] for r in rows] == [5.0]
    spool = current(entry).spool
    assert spool is not None
    assert spool.dead_letter_count == 0
    await unload_entry(hass, entry)


async def test_storage_failure_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failing disk (faked: as root a real one cannot be made to fail) raises an error
    issue while events keep flowing through the memory fallback.
    """
    from custom_components.ha_ingestor.core import spool as spool_module  # noqa: PLC0415

    def broken_connect(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_module, "_sqlite_connect", broken_connect)
    entry = v1_entry(influxdb_v1.url, influx_db)
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.memory", "7", {"unit_of_measurement": "W"})
    issue_id = f"storage_failure_{ENTRY_ID}"
    issue_registry = ir.async_get(hass)
    await settle(
        hass,
        freezer,
        lambda: (
            issue_registry.async_get_issue(DOMAIN, issue_id) is not None
            and current(entry).events_sent >= 1
        ),
    )
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue.severity is ir.IssueSeverity.ERROR
    assert "No space left" in issue.translation_placeholders["error"]
    rows = await influxdb_v1.aquery('SELECT "value" FROM "W"', influx_db)
    assert [r["value"] for r in rows] == [7.0]
    await unload_entry(hass, entry)


async def test_missing_database_raises_issue_until_delivery_resumes(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
    influxdb_v1: InfluxV1Server,
    socket_enabled: None,
) -> None:
    """Real InfluxDB, database missing (404 JSON): a translated issue quoting the server;
    once the database exists and delivery resumes, the issue is gone.

    Figure: 1 event captured while paused, 1 delivered after resume (0 lost).
    """
    database = unique_name("missing")
    entry = v1_entry(influxdb_v1.url, database)
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.lost_db", "3", {"unit_of_measurement": "W"})
    issue_id = f"destination_not_found_{ENTRY_ID}"
    try:
        issue = await issue_raised(hass, freezer, issue_id)
        assert issue.translation_key == "destination_not_found"
        assert issue.severity is ir.IssueSeverity.ERROR
        assert "database not found" in issue.translation_placeholders["error"]
        assert current(entry).pending == 1
        await influxdb_v1.acreate_database(database)
        await retry_until_cleared(hass, freezer, entry, issue_id)
        rows = await influxdb_v1.aquery('SELECT "value" FROM "W"', database)
        assert [r["value"] for r in rows] == [3.0]
    finally:
        await influxdb_v1.adrop_database(database)
    await unload_entry(hass, entry)


async def test_tls_failure_raises_issue_until_delivery_resumes(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """Real TLS proxy in front of InfluxDB serving a self-signed certificate: a TLS issue
    naming the CA option; once it serves the certificate signed by the entry's CA and
    delivery resumes, the issue is gone.

    Figure: 1 event captured while paused, 1 delivered after resume (0 lost).
    """
    pki = await hass.async_add_executor_job(make_pki, tmp_path / "pki")
    wrong = await hass.async_add_executor_job(lambda: pki.server_context(trusted=False))
    right = await hass.async_add_executor_job(lambda: pki.server_context(trusted=True))
    issue_id = f"tls_failure_{ENTRY_ID}"
    with ignore_handshake_errors(hass.loop):
        async with TlsProxy(influxdb_v1.port, wrong) as proxy:
            entry = await setup_with_ca(hass, v1_entry(proxy.url, influx_db), pki.ca_cert)
            hass.states.async_set("sensor.tls", "4", {"unit_of_measurement": "W"})
            issue = await issue_raised(hass, freezer, issue_id)
            assert issue.translation_key == "tls_failure"
            assert "TLS failure" in issue.translation_placeholders["error"]
            assert current(entry).pending == 1
            await proxy.serve(right)
            await retry_until_cleared(hass, freezer, entry, issue_id)
            await unload_entry(hass, entry)
    rows = await influxdb_v1.aquery('SELECT "value" FROM "W"', influx_db)
    assert [r["value"] for r in rows] == [4.0]


async def test_rejected_pause_raises_issue_until_delivery_resumes(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """A proxy answering nginx's 400 to every request (plain HTTP sent to its HTTPS
    port) in front of real InfluxDB: delivery pauses as ``rejected`` with a translated
    issue quoting the proxy's words (no markup, no password); once the proxy forwards,
    the re-check delivers by itself and the issue is gone.

    Figures: 3 events kept while paused, 0 quarantined, 3 delivered after the
    proxy is fixed (0 lost), without a manual retry.
    """
    async with FaultProxy(influxdb_v1.port) as proxy:
        proxy.set_mode(Mode.ANSWER, answer=NGINX_400)
        entry = v1_entry(proxy.url, influx_db)
        await setup_entry(hass, entry)
        for value in range(3):
            hass.states.async_set(
                f"sensor.rejected_{value}", str(value), {"unit_of_measurement": "W"}
            )
        issue_id = f"destination_rejected_{ENTRY_ID}"
        issue = await issue_raised(hass, freezer, issue_id)
        assert issue.translation_key == "destination_rejected"
        assert issue.severity is ir.IssueSeverity.ERROR
        error = issue.translation_placeholders["error"]
        assert "The plain HTTP request was sent to HTTPS port" in error
        assert "<" not in error
        assert PASSWORD not in error
        assert current(entry).pending == 3
        assert (await diagnostics(hass, entry))["resilience"]["metrics"]["counters"][
            "points_quarantined"
        ] == 0

        proxy.set_mode(Mode.PASS)
        await settle(hass, freezer, lambda: cleared(hass, entry, issue_id), step=10.0, limit=30)
        await unload_entry(hass, entry)
    rows = await influxdb_v1.aquery('SELECT "value" FROM "W"', influx_db)
    assert sorted(r["value"] for r in rows) == [0.0, 1.0, 2.0]
