"""A flush cancelled at any await point, or whose store raises, loses no event.

Real parts: a SQLite spool file and a real thread executor. A gate holds the
executor job where the test wants the cancellation to land.
"""

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
import contextlib
from pathlib import Path
import threading
from typing import Any

import pytest

from custom_components.ha_ingestor.core import pipeline as pipeline_mod
from custom_components.ha_ingestor.core.encoder import (
    EventRecord,
)
from custom_components.ha_ingestor.core.pipeline import Pipeline, PipelineConfig
from custom_components.ha_ingestor.core.spool import Spool
from tests.core.test_pipeline_store import offline_pipeline

EVENTS = 12  # slices of 5, 5 and 2 (see the slice fixture)


class Gate:
    """Holds one executor job (counted from 0) of the pipeline until released."""

    def __init__(self, hold: int | None = None) -> None:
        self.hold = hold
        self.jobs = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

    async def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        index = self.jobs
        self.jobs += 1

        def job() -> Any:
            if index == self.hold:
                self.entered.set()
                self.release.wait(10)
            try:
                return fn(*args)
            finally:
                if index == self.hold:
                    self.finished.set()

        return await asyncio.get_running_loop().run_in_executor(None, job)


@pytest.fixture(autouse=True)
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of 5 events, so one flush of 12 has three store jobs (three await points)."""
    monkeypatch.setattr(pipeline_mod, "STORE_SLICE", 5)


@contextlib.contextmanager
def spooled(path: Path, gate: Gate) -> Iterator[tuple[Pipeline, Spool]]:
    spool = Spool(path)
    spool.open()
    pipeline = offline_pipeline(
        spool, run_sync=gate.run_sync, config=PipelineConfig(batch_points=5)
    )
    try:
        yield pipeline, spool
    finally:
        spool.close()


def capture(pipeline: Pipeline, n: int = EVENTS) -> list[int]:
    times = [1_700_000_000_000_000_000 + i for i in range(n)]
    for time_ns in times:
        pipeline.capture(
            EventRecord(
                entity_id="sensor.t",
                state=str(time_ns % 100),
                attributes={},
                time_ns=time_ns,
                last_changed_ns=time_ns,
            )
        )
    return times


def spooled_times(spool: Spool) -> Counter[int]:
    return Counter(row.time_ns for row in spool.peek(10_000, 1 << 30))


async def cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_cancel_after_every_loop_step_loses_nothing(tmp_path: Path) -> None:
    """Cancel the flush after 0, 1, 2, ... loop steps until it completes by itself.

    Figure: events lost = 0 and events spooled twice = 0 at every cancellation
    point; events_received counts each event once.
    """
    steps = 0
    while True:
        gate = Gate()
        with spooled(tmp_path / f"s{steps}.sqlite", gate) as (pipeline, spool):
            times = capture(pipeline)
            task = asyncio.ensure_future(pipeline.flush())
            for _ in range(steps):
                await asyncio.sleep(0)
            completed = task.done()
            await cancel(task)
            await pipeline.flush()
            assert pipeline.buffered == 0
            assert spooled_times(spool) == Counter(times), f"cancelled after {steps} steps"
            assert pipeline.resilience.metrics.events_received == EVENTS
        if completed:
            break
        steps += 1
        assert steps < 10_000
    assert steps > 3  # the sweep crossed every slice's await


@pytest.mark.parametrize("slice_index", [0, 1, 2])
@pytest.mark.parametrize("job_state", ["running", "finished"])
async def test_cancel_while_a_slice_is_stored(
    tmp_path: Path, slice_index: int, job_state: str
) -> None:
    """Cancel while slice N's executor job runs, or after it finished but before
    the flush resumed (the rows are in the spool, only the await is cancelled).

    Figure: events lost = 0, events spooled twice = 0; the cancelled slice's
    result is still accounted for (events_received counts each event once).
    """
    gate = Gate(hold=slice_index)
    with spooled(tmp_path / "s.sqlite", gate) as (pipeline, spool):
        times = capture(pipeline)
        task = asyncio.ensure_future(pipeline.flush())
        await asyncio.to_thread(gate.entered.wait, 10)
        assert not task.done()
        if job_state == "finished":
            gate.release.set()
            await asyncio.to_thread(gate.finished.wait, 10)
        task.cancel()
        gate.release.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pipeline.flush()
        assert spooled_times(spool) == Counter(times)
        assert pipeline.buffered == 0
        assert pipeline.resilience.metrics.events_received == EVENTS


async def test_cancel_while_waiting_for_the_lock_or_a_cancelled_store(tmp_path: Path) -> None:
    """A second flush cancelled while the first holds the lock, and a third cancelled
    while it waits for the cancelled first one's store, remove nothing.

    Figure: events lost = 0, events spooled twice = 0.
    """
    gate = Gate(hold=0)
    with spooled(tmp_path / "s.sqlite", gate) as (pipeline, spool):
        times = capture(pipeline)
        first = asyncio.ensure_future(pipeline.flush())
        await asyncio.to_thread(gate.entered.wait, 10)
        second = asyncio.ensure_future(pipeline.flush())
        await asyncio.sleep(0)
        await cancel(second)  # waiting for the lock
        await cancel(first)  # its slice is still held in the executor
        third = asyncio.ensure_future(pipeline.flush())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not third.done()  # waits for the first flush's store
        await cancel(third)
        gate.release.set()
        await asyncio.to_thread(gate.finished.wait, 10)
        await pipeline.flush()
        assert spooled_times(spool) == Counter(times)


async def test_store_error_puts_the_slice_back_in_order(tmp_path: Path) -> None:
    """The store raises (the spool was closed under the flush): the slice goes back
    to the front of the buffer, in order, and the next flush stores it.

    Figure: events lost = 0; spooled in capture order.
    """
    gate = Gate()
    with spooled(tmp_path / "s.sqlite", gate) as (pipeline, spool):
        times = capture(pipeline)
        spool.close()
        with pytest.raises(RuntimeError, match="not open"):
            await pipeline.flush()
        assert pipeline.buffered == EVENTS
        spool.open()
        await pipeline.flush()
        assert [row.time_ns for row in spool.peek(100, 1 << 30)] == times


async def test_store_error_keeps_the_delivered_ids_for_the_next_delete(tmp_path: Path) -> None:
    """The store that would delete 5 accepted rows raises: the uploader keeps their ids.

    Figures: 5 rows still awaiting their delete after the failed flush (not 0,
    which would leave them spooled to be sent again); after the next flush 12
    events spooled, the 5 accepted ones deleted: 7 pending.
    """
    gate = Gate()
    fail = [False]

    async def run_sync(fn: Callable[..., Any], *args: Any) -> Any:
        if fail[0]:
            fail[0] = False
            raise OSError("disk I/O error")
        return await gate.run_sync(fn, *args)

    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    pipeline = offline_pipeline(spool, run_sync=run_sync, config=PipelineConfig(batch_points=5))
    try:
        capture(pipeline, 5)
        await pipeline.flush()
        uploader = pipeline.uploader
        uploader._accept(await uploader._read())  # the destination accepted these 5
        assert uploader.undeleted == 5
        capture(pipeline, 7)
        fail[0] = True
        with pytest.raises(OSError, match="disk I/O"):
            await pipeline.flush()
        assert uploader.undeleted == 5
        await pipeline.flush()
        assert uploader.undeleted == 0
        assert spool.stats().pending_count == 7
    finally:
        spool.close()
