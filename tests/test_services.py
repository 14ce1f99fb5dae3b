"""Actions of ha_ingestor: each acts on its entry; bad targets raise translated errors."""

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import DOMAIN
from custom_components.ha_ingestor.core.state import ConnectionState
from tests.common import (
    ENTRY_ID,
    PREFIX,
    conflicting_field,
    current,
    delivered,
    diagnostics,
    settle,
    setup_entry,
    unload_entry,
    v1_entry,
)
from tests.servers import InfluxV1Server, free_port


@pytest.mark.usefixtures("socket_enabled")
async def test_actions(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """flush, retry_now, reset_circuit_breaker and requeue_dead_letters on a failing entry."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    target = {"config_entry_id": entry.entry_id}

    hass.states.async_set("sensor.kept", "1", {"unit_of_measurement": "W"})
    assert (await diagnostics(hass, entry))["buffered"] == 1
    await hass.services.async_call(DOMAIN, "flush", target, blocking=True)
    assert (await diagnostics(hass, entry))["buffered"] == 0
    await settle(hass, freezer, lambda: current(entry).consecutive_failures >= 1)
    # A retry is scheduled (its time may already be due: the stage says so).
    assert current(entry).retry_stage == "rapid"

    await hass.services.async_call(DOMAIN, "retry_now", target, blocking=True)
    assert current(entry).retry_stage is None
    assert current(entry).next_retry is None

    await settle(hass, freezer, lambda: current(entry).consecutive_failures >= 2)
    await hass.services.async_call(DOMAIN, "reset_circuit_breaker", target, blocking=True)
    assert (await diagnostics(hass, entry))["resilience"]["breaker_state"] == "closed"

    response = await hass.services.async_call(
        DOMAIN, "requeue_dead_letters", target, blocking=True, return_response=True
    )
    assert response == {"requeued": 0}
    assert current(entry).connection_state != ConnectionState.ACTIVE
    await unload_entry(hass, entry)


@pytest.mark.parametrize(
    "action",
    ["flush", "retry_now", "reset_circuit_breaker", "requeue_dead_letters", "purge_dead_letters"],
)
@pytest.mark.usefixtures("socket_enabled")
async def test_invalid_targets(hass: HomeAssistant, action: str) -> None:
    """Unknown, foreign and unloaded entries are refused with translated errors."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, action, {"config_entry_id": "missing"}, blocking=True
        )
    assert err.value.translation_key == "entry_not_found"
    other = MockConfigEntry(domain="other_domain")
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, action, {"config_entry_id": other.entry_id}, blocking=True
        )
    assert err.value.translation_key == "entry_not_found"
    await unload_entry(hass, entry)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, action, {"config_entry_id": entry.entry_id}, blocking=True
        )
    assert err.value.translation_key == "entry_not_loaded"


@pytest.mark.usefixtures("socket_enabled")
async def test_backfill_actions(hass: HomeAssistant) -> None:
    """Without the recorder a backfill is refused; cancel reports whether one was running."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    target = {"config_entry_id": entry.entry_id}
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "backfill",
            {**target, "start": "2030-01-02 00:00:00", "end": "2030-01-01 00:00:00"},
            blocking=True,
        )
    assert err.value.translation_key == "backfill_no_recorder"
    response = await hass.services.async_call(
        DOMAIN, "cancel_backfill", target, blocking=True, return_response=True
    )
    assert response == {"cancelled": False}
    await unload_entry(hass, entry)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_quarantine_cap_drops_are_counted_and_purge_deletes(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """Real InfluxDB field-type conflicts fill a small quarantine: what its cap deletes is
    counted (sensor, translated repair, persisted across a reload) and the purge action
    deletes the rest deliberately.

    Real spool file. Figures: 12 good points delivered; 3 conflicting points
    quarantined, the cap keeps 1 and deletes 2 (sensor 2, repair "2"); purge
    answers {"purged": 1}; the repair clears about an hour after the last deletion;
    after a reload the sensor still says 2.
    """
    await conflicting_field(influxdb_v1, influx_db)
    entry = v1_entry(influxdb_v1.url, influx_db)
    await setup_entry(hass, entry)
    # Room for one quarantined line of about 60 bytes, not two (a core setting:
    # no option sets the quarantine's cap).
    entry.runtime_data.pipeline.spool.max_dead_letter_bytes = 100
    for i in range(12):
        # One series each: the frozen clock gives every point the same timestamp.
        hass.states.async_set(f"sensor.good_{i}", str(i), {"unit_of_measurement": "V"})
        if i % 4 == 0:
            hass.states.async_set(f"sensor.conflict_{i}", str(i), {"unit_of_measurement": "W"})
    dropped_id = f"sensor.{PREFIX}_quarantined_points_dropped"
    quarantined_id = f"sensor.{PREFIX}_quarantined_points"
    issue_id = f"quarantine_dropped_{ENTRY_ID}"
    issues = ir.async_get(hass)
    await settle(
        hass,
        freezer,
        # Counters reach the entities at their routine cadence, and a raised issue's
        # count refreshes at most once a minute: wait for both.
        lambda: (
            delivered(entry)
            and (raised := issues.async_get_issue(DOMAIN, issue_id)) is not None
            and raised.translation_placeholders["count"] == "2"
            and hass.states.get(dropped_id).state == "2"
        ),
    )
    assert hass.states.get(quarantined_id).state == "1"
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue.translation_key == "quarantine_dropped"
    assert issue.translation_placeholders["count"] == "2"
    rows = await influxdb_v1.aquery('SELECT "value" FROM "V"', influx_db)
    assert len(rows) == 12

    response = await hass.services.async_call(
        DOMAIN,
        "purge_dead_letters",
        {"config_entry_id": entry.entry_id},
        blocking=True,
        return_response=True,
    )
    assert response == {"purged": 1}
    assert issues.async_get_issue(DOMAIN, f"points_quarantined_{ENTRY_ID}") is None
    await settle(hass, freezer, lambda: hass.states.get(quarantined_id).state == "0")

    # The repair is about recent deletions: it goes an hour after the last one.
    deleted_at = dt_util.utcnow()
    await settle(
        hass,
        freezer,
        lambda: issues.async_get_issue(DOMAIN, issue_id) is None,
        step=60.0,
        limit=90,
    )
    assert dt_util.utcnow() - deleted_at >= timedelta(minutes=55)
    assert dt_util.utcnow() - deleted_at <= timedelta(minutes=61)

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await settle(hass, freezer, lambda: current(entry).spool is not None)
    assert hass.states.get(dropped_id).state == "2"
    await unload_entry(hass, entry)
