"""Backfill from the recorder through the pipeline (reference data-api receiver as a real server)."""

from datetime import datetime, timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import get_instance
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.ha_ingestor.const import CONF_AUTO_BACKFILL, CONF_SPOOL_MAX_MB, DOMAIN
from tests.common import (
    current,
    delivered,
    diagnostics,
    settle,
    setup_entry,
    tick,
    unload_entry,
)
from tests.data_api import DataApiReceiver
from tests.test_data_api import data_api_entry


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_mock: Any, enable_custom_integrations: None) -> None:
    """The recorder must start before hass; override the package-wide autouse fixture."""


async def recorded(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, entity_id: str, count: int
) -> datetime:
    """Record ``count`` states of ``entity_id`` 10 s apart (the recorder has them); return
    when the first was set.
    """
    start = dt_util.utcnow()
    for i in range(count):
        hass.states.async_set(entity_id, str(i), {"unit_of_measurement": "ppm"})
        freezer.tick(timedelta(seconds=10))
    await hass.async_block_till_done()
    await get_instance(hass).async_block_till_done()
    return start


async def test_backfill_lands_every_state_once(
    recorder_mock: Any,
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    data_api_receiver: DataApiReceiver,
) -> None:
    """Backfilling a recorded window delivers each state once with its original time,
    idempotently against what was already sent live, while live events keep flowing.
    """
    start = await recorded(hass, freezer, "sensor.history", 6)
    end = dt_util.utcnow()

    entry = data_api_entry(data_api_receiver)
    await setup_entry(hass, entry)
    runtime = entry.runtime_data
    progress = runtime.backfill.async_start(start, end, ["sensor.history"])
    hass.states.async_set("sensor.live", "1")
    await settle(
        hass,
        freezer,
        lambda: (
            progress.status == "done"
            and len(data_api_receiver.events("sensor.history")) == 6
            and len(data_api_receiver.events("sensor.live")) == 1
        ),
    )
    # A second run over the same window is deduplicated by the receiver.
    again = runtime.backfill.async_start(start, end, None)
    await settle(
        hass,
        freezer,
        lambda: again.status == "done" and delivered(entry),
    )
    history = data_api_receiver.events("sensor.history")
    assert [e["state"] for e in history] == [str(i) for i in range(6)]
    assert progress.as_dict()["percent"] == 100.0
    assert progress.states == 6
    await unload_entry(hass, entry)


async def test_backfill_single_job_and_cancel(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, data_api_receiver: DataApiReceiver
) -> None:
    """Only one backfill runs per entry; cancelling one reports it as cancelled."""
    entry = data_api_entry(data_api_receiver)
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.recorded", "1")
    end = dt_util.utcnow()
    target = {"config_entry_id": entry.entry_id}
    await hass.services.async_call(
        DOMAIN, "backfill", {**target, "start": str(end - timedelta(days=9))}, blocking=True
    )
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "backfill", {**target, "start": str(end - timedelta(days=1))}, blocking=True
        )
    assert err.value.translation_key == "backfill_running"

    async def cancel() -> object:
        return await hass.services.async_call(
            DOMAIN, "cancel_backfill", target, blocking=True, return_response=True
        )

    assert await cancel() == {"cancelled": True}
    progress = (await diagnostics(hass, entry))["backfill"]
    assert progress["status"] == "cancelled"
    assert progress["finished_at"] is not None
    assert await cancel() == {"cancelled": False}
    await unload_entry(hass, entry)


async def test_auto_backfill_fills_what_a_full_spool_dropped(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, data_api_receiver: DataApiReceiver
) -> None:
    """During an outage a tiny spool drops events; once the destination is back and the
    backlog drained, the dropped range is replayed from the recorder: every state lands once.
    """
    entry = data_api_entry(
        data_api_receiver, **{CONF_SPOOL_MAX_MB: 0.0008, CONF_AUTO_BACKFILL: True}
    )
    await setup_entry(hass, entry)
    runtime = entry.runtime_data
    await hass.async_add_executor_job(data_api_receiver.stop)
    for i in range(40):
        hass.states.async_set("sensor.gap", str(i), {"unit_of_measurement": "W"})
        freezer.tick(timedelta(seconds=1))
        if i % 10 == 9:
            await hass.services.async_call(
                DOMAIN, "flush", {"config_entry_id": entry.entry_id}, blocking=True
            )
    await get_instance(hass).async_block_till_done()
    await settle(hass, freezer, lambda: current(entry).consecutive_failures >= 2)
    assert current(entry).events_dropped > 0
    # Core read: the dropped ranges waiting for a replay are shown nowhere.
    assert runtime.pipeline.gaps

    await hass.async_add_executor_job(data_api_receiver.start)
    await settle(
        hass,
        freezer,
        lambda: len(data_api_receiver.events("sensor.gap")) == 40,
        step=5.0,
    )
    states = [e["state"] for e in data_api_receiver.events("sensor.gap")]
    assert sorted(states, key=int) == [str(i) for i in range(40)]
    assert (backfill := current(entry).backfill) is not None
    assert backfill.status in ("running", "done")
    await unload_entry(hass, entry)


async def test_failed_gap_replay_keeps_the_gaps_for_the_next_load(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    data_api_receiver: DataApiReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replay of what a full spool dropped fails (a recorder read raising: a fake, since a
    real recorder cannot be made to fail on demand); the spool keeps the dropped ranges, the
    failure is tried once per load, and the reload replays them.

    Figures: 1 recorder read during the failed load (no retry loop); the gaps after the
    failure = the gaps before; after the reload all 40 states are delivered and 0 gaps remain.
    """
    entry = data_api_entry(
        data_api_receiver, **{CONF_SPOOL_MAX_MB: 0.0008, CONF_AUTO_BACKFILL: True}
    )
    await setup_entry(hass, entry)
    await hass.async_add_executor_job(data_api_receiver.stop)
    for i in range(40):
        hass.states.async_set("sensor.gap", str(i), {"unit_of_measurement": "W"})
        freezer.tick(timedelta(seconds=1))
        if i % 10 == 9:
            await hass.services.async_call(
                DOMAIN, "flush", {"config_entry_id": entry.entry_id}, blocking=True
            )
    await get_instance(hass).async_block_till_done()
    await settle(hass, freezer, lambda: current(entry).consecutive_failures >= 2)
    gaps = list(entry.runtime_data.pipeline.gaps)
    assert gaps

    reads = 0

    def failing_read(*_args: Any) -> list[Any]:
        nonlocal reads
        reads += 1
        raise OSError("recorder database is locked")

    monkeypatch.setattr("custom_components.ha_ingestor.backfill._read_window", failing_read)
    await hass.async_add_executor_job(data_api_receiver.start)
    await settle(
        hass,
        freezer,
        lambda: (backfill := current(entry).backfill) is not None and backfill.status == "failed",
    )
    for _ in range(5):
        await tick(hass, freezer, 5.0)
    assert reads == 1
    assert entry.runtime_data.pipeline.gaps == gaps

    monkeypatch.undo()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    # A replay starts once a write succeeds: a live change after the reload brings one.
    hass.states.async_set("sensor.live", "1", {"unit_of_measurement": "W"})
    await settle(
        hass,
        freezer,
        lambda: (
            len(data_api_receiver.events("sensor.gap")) == 40
            and (backfill := current(entry).backfill) is not None
            and backfill.status == "done"
        ),
        step=5.0,
    )
    await hass.services.async_call(
        DOMAIN, "flush", {"config_entry_id": entry.entry_id}, blocking=True
    )
    assert entry.runtime_data.pipeline.gaps == []
    await unload_entry(hass, entry)


async def test_backfill_range_is_bounded_and_progress_shown(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    freezer: FrozenDateTimeFactory,
    data_api_receiver: DataApiReceiver,
) -> None:
    """The action clamps a future end to now, refuses a start older than the recorder keeps
    (translated error naming the days), and shows progress on the backlog sensor and in
    diagnostics.

    Figures: a 1970 start is refused with 0 windows read, a start in the future too; an end
    1 day ahead runs to now;
    the 3 recorded states are delivered and the attribute and diagnostics say 100 %.
    """
    start = await recorded(hass, freezer, "sensor.bounded", 3)
    entry = data_api_entry(data_api_receiver)
    await setup_entry(hass, entry)
    target = {"config_entry_id": entry.entry_id}
    keep_days = get_instance(hass).keep_days

    for too_old in ("1970-01-01 00:00:00", dt_util.utcnow() - timedelta(days=keep_days + 1)):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                DOMAIN, "backfill", {**target, "start": str(too_old)}, blocking=True
            )
        assert err.value.translation_key == "backfill_too_old"
        assert err.value.translation_placeholders["days"] == str(keep_days)
        assert (await diagnostics(hass, entry))["backfill"] is None

    now = dt_util.utcnow()
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "backfill", {**target, "start": str(now + timedelta(hours=1))}, blocking=True
        )
    assert err.value.translation_key == "backfill_invalid_range"
    await hass.services.async_call(
        DOMAIN,
        "backfill",
        {**target, "start": str(start), "end": str(now + timedelta(days=1))},
        blocking=True,
    )
    assert (await diagnostics(hass, entry))["backfill"]["end"] == now.isoformat()
    await settle(
        hass,
        freezer,
        lambda: (
            (backfill := current(entry).backfill) is not None
            and backfill.status == "done"
            and len(data_api_receiver.events("sensor.bounded")) == 3
        ),
    )
    await settle(
        hass,
        freezer,
        lambda: (
            hass.states.get("sensor.data_api_backlog").attributes.get("backfill_status") == "done"
        ),
    )
    attributes = hass.states.get("sensor.data_api_backlog").attributes
    assert attributes["backfill_percent"] == 100.0
    assert attributes["backfill_states"] == 3
    downloaded = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert downloaded["backfill"]["status"] == "done"
    assert downloaded["backfill"]["percent"] == 100.0
    await unload_entry(hass, entry)
