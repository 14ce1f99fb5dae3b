"""Helpers shared by the entity, action, repair and diagnostics tests."""

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
import threading
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import Recorder
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.ha_ingestor.const import (
    CONF_DATABASE,
    CONF_KIND,
    CONF_PASSWORD,
    CONF_SSL_CA_CERT,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    DOMAIN,
    DestinationKind,
)
from custom_components.ha_ingestor.core.sinks import _HttpSink
from custom_components.ha_ingestor.core.uploader import Uploader
from custom_components.ha_ingestor.diagnostics import async_get_config_entry_diagnostics
from custom_components.ha_ingestor.factory import spool_path
from custom_components.ha_ingestor.snapshot import IngestorSnapshot
from tests.servers import InfluxV1Server

ENTRY_ID = "01JENTITIESTESTENTRY0000001"
TITLE = "InfluxDB v1 home_assistant@127.0.0.1"
#: Entity id prefix generated from TITLE.
PREFIX = "influxdb_v1_home_assistant_127_0_0_1"
USERNAME = "ingest-user"
PASSWORD = "s3cret-Pa55word-xyz"  # a test value that must never leak


def v1_entry(url: str, database: str, **options: Any) -> MockConfigEntry:
    """An entry shipping to InfluxDB 1.x with a fixed id and title (stable entity ids)."""
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id=ENTRY_ID,
        title=TITLE,
        unique_id=f"influxdb_v1:{url}|{database}",
        data={
            CONF_KIND: DestinationKind.INFLUXDB_V1,
            CONF_URL: url,
            CONF_DATABASE: database,
            CONF_USERNAME: USERNAME,
            CONF_PASSWORD: PASSWORD,
            CONF_VERIFY_SSL: True,
        },
        options=options,
    )


def remove_spool(path: Path) -> None:
    """Delete a spool and its WAL files (blocking: run in the executor)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Add and set up ``entry`` with an empty spool.

    The test config dir is shared between tests and the entry id is fixed, so
    a previous test's leftover spool would otherwise be delivered here.
    """
    await hass.async_add_executor_job(remove_spool, spool_path(hass, entry.entry_id))
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def setup_with_ca(
    hass: HomeAssistant, entry: MockConfigEntry, ca_cert: Path
) -> MockConfigEntry:
    """Set up ``entry`` (empty spool) trusting the CA certificate at ``ca_cert``."""
    await hass.async_add_executor_job(remove_spool, spool_path(hass, entry.entry_id))
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_SSL_CA_CERT: str(ca_cert)}
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def shut_down(hass: HomeAssistant) -> None:
    """HA's stop as an entry sees it: STOP, then FINAL_WRITE (entries are not unloaded)."""
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    hass.bus.async_fire(EVENT_HOMEASSISTANT_FINAL_WRITE)
    await hass.async_block_till_done()


async def unload_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Unload ``entry`` (closes its spool; no lingering tasks)."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


class InFlight:
    """Work the integration has outside the event loop that no HA wait covers.

    ``hass.async_block_till_done`` waits for tasks and executor jobs, but not
    for the uploader's and backfill's background tasks: a request to a real
    server, a reachability probe or a recorder read they await may still be
    out. These are counted here (see :meth:`watching`) so a test can wait for
    exactly them, and not a fixed time.
    """

    def __init__(self) -> None:
        """Nothing in flight."""
        self.count = 0
        #: Set on every answer (and by a fault proxy that starts holding a request).
        self.progress = threading.Event()
        #: Requests a fault proxy holds on purpose (they never answer by themselves).
        self.held = 0

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Count sink requests, reachability probes and recorder reads while active."""

        def wrap[**P, T](
            method: Callable[P, Coroutine[Any, Any, T]],
        ) -> Callable[P, Coroutine[Any, Any, T]]:
            async def counted(*args: P.args, **kwargs: P.kwargs) -> T:
                self.count += 1
                try:
                    return await method(*args, **kwargs)
                finally:
                    self.count -= 1
                    self.progress.set()

            return counted

        def recorder_job(job: Callable[..., Any]) -> Callable[..., Any]:
            def counted(*args: Any, **kwargs: Any) -> Any:
                future = job(*args, **kwargs)
                self.count += 1

                def done(_future: Any) -> None:
                    self.count -= 1
                    self.progress.set()

                future.add_done_callback(done)
                return future

            return counted

        with (
            patch.object(_HttpSink, "_request", wrap(_HttpSink._request)),
            patch.object(Uploader, "_reachable", wrap(Uploader._reachable)),
            patch.object(
                Recorder, "async_add_executor_job", recorder_job(Recorder.async_add_executor_job)
            ),
        ):
            yield
        self.count = self.held = 0

    async def answered(self, hass: HomeAssistant) -> None:
        """Wait until everything in flight is answered (or held on purpose by a fault proxy).

        Real time is needed here: a real server answers in its own time. The
        loop's clock is frozen with the freezer (``asyncio.sleep`` would only
        end at the next tick), so an executor thread waits on :attr:`progress`,
        which every answer sets, while the loop runs the sockets. No wait at all
        when nothing is in flight.
        """
        while True:
            await settled_loop(hass)
            self.progress.clear()
            if self.count <= self.held:
                return
            if not await hass.loop.run_in_executor(None, self.progress.wait, ANSWER_LIMIT):
                raise AssertionError(f"{self.count} request(s) unanswered for {ANSWER_LIMIT} s")


async def settled_loop(hass: HomeAssistant) -> None:
    """Return once no task, job or callback is ready to run: all that is left waits.

    ``async_block_till_done`` waits for HA's tracked tasks and their executor
    jobs; the uploader is a background task it leaves alone (its spool jobs
    too), so a flush that hands the uploader rows returns before the uploader
    has even started its request. Awaiting background executor jobs and running
    the loop until nothing is ready lets it get that far (to a socket or a
    timer), without any real time passing that nothing waits for.
    """
    for _ in range(LOOP_STEPS):
        await hass.async_block_till_done()
        if jobs := _background_jobs(hass):
            await asyncio.wait(jobs)
            continue
        for _ in range(LOOP_STEPS):
            if not hass.loop._ready:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0)
        if (
            not hass.loop._ready  # type: ignore[attr-defined]
            and all(task.done() for task in hass._tasks)
            and not _background_jobs(hass)
        ):
            return
    raise AssertionError(f"the loop is still busy after {LOOP_STEPS} rounds")


def _background_jobs(hass: HomeAssistant) -> list[asyncio.Future[Any]]:
    """Executor jobs started by background tasks (the uploader's spool reads) still running."""
    return [
        job
        for job in hass._background_tasks
        if not isinstance(job, asyncio.Task) and not job.done()
    ]


#: The one tracker (tests run one at a time in a process).
IN_FLIGHT = InFlight()
#: Real seconds a local server (or the recorder) may take to answer on a loaded machine.
ANSWER_LIMIT = 30.0
#: Rounds of "wait for HA's tasks, then run what became ready" before giving up.
LOOP_STEPS = 1000


async def tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float = 1.0) -> None:
    """Advance HA time (timers, retries, throttles); then let what it sent be answered."""
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await IN_FLIGHT.answered(hass)


async def settle(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    step: float = 1.0,
    limit: int = 600,
) -> None:
    """Advance time step by step until ``condition`` holds, then push entity updates.

    ``condition`` may be a coroutine function (e.g. one reading diagnostics).
    """
    await IN_FLIGHT.answered(hass)
    for _ in range(limit):
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            # Entities update through a 1 s throttled signal.
            await tick(hass, freezer, 1.0)
            return
        await tick(hass, freezer, step)
    raise AssertionError("condition not reached")


async def answered(hass: HomeAssistant) -> None:
    """Wait, without moving the clock, until the integration's requests are answered."""
    await IN_FLIGHT.answered(hass)


def current(entry: ConfigEntry[Any]) -> IngestorSnapshot:
    """The entry's latest snapshot: what its entities show at their next update."""
    snapshot = entry.runtime_data.coordinator.current
    assert snapshot is not None
    return snapshot


async def diagnostics(hass: HomeAssistant, entry: ConfigEntry[Any]) -> dict[str, Any]:
    """The entry's diagnostics as a user downloads them (the platform, called directly)."""
    return await async_get_config_entry_diagnostics(hass, entry)


async def conflicting_field(server: InfluxV1Server, db: str, *, domain: str = "sensor") -> None:
    """Store a string ``value`` in measurement ``W`` now: a number there is then refused.

    Written at the current time, so it lands in the shard (shards are by time)
    of the points a test sends next: a real field type conflict.
    """
    now_ns = int(dt_util.utcnow().timestamp() * 1e9) - 1
    status, _ = await server.awrite(
        db, f'W,domain={domain},entity_id=other value="text" {now_ns}'.encode()
    )
    assert status == 204


async def deliver_one(hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: Any) -> None:
    """Deliver one good point.

    A destination that has accepted nothing yet and refuses the only point
    looks like a setup fault (paused, not quarantined): a test about refused
    points delivers one first.
    """
    hass.states.async_set("sensor.fine", "1", {"unit_of_measurement": "kWh"})
    await settle(hass, freezer, lambda: current(entry).last_success is not None)


async def issue_raised(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, issue_id: str, *, step: float = 1.0
) -> ir.IssueEntry:
    """Advance time until the repair ``issue_id`` is raised; return it."""
    issues = ir.async_get(hass)
    await settle(
        hass, freezer, lambda: issues.async_get_issue(DOMAIN, issue_id) is not None, step=step
    )
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    return issue


async def drained(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: Any, *, step: float = 1.0
) -> None:
    """Flush (the action) and advance time until everything captured so far is delivered."""
    await hass.services.async_call(
        DOMAIN, "flush", {"config_entry_id": entry.entry_id}, blocking=True
    )
    await settle(hass, freezer, lambda: delivered(entry), step=step)


def delivered(entry: ConfigEntry[Any]) -> bool:
    """Whether the latest snapshot shows nothing waiting (as of the last flush)."""
    snapshot = current(entry)
    return snapshot.spool is not None and snapshot.pending == 0
