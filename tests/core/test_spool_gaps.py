"""Gaps (time ranges the limits dropped) are merged, bounded and persisted; every drop
is counted on events_dropped, including those outside an append; the per-flush
warnings are throttled.

Real SQLite files; a failing disk is a real one (the spool's directory path is
a regular file, so the directory cannot be created).
"""

import asyncio
from collections.abc import Callable
import itertools
import logging
from pathlib import Path
import random
from typing import Any

import pytest

from custom_components.ha_ingestor.core import pipeline as pipeline_mod
from custom_components.ha_ingestor.core.encoder import (
    EventRecord,
)
from custom_components.ha_ingestor.core.logthrottle import DEFAULT_INTERVAL
from custom_components.ha_ingestor.core.pipeline import PipelineConfig
from custom_components.ha_ingestor.core.spool import (
    MAX_GAPS,
    OverflowPolicy,
    Spool,
    merge_gaps,
)
from tests.core.fake_time import FakeClock
from tests.core.test_pipeline_store import offline_pipeline


def test_merge_gaps_merges_and_bounds() -> None:
    assert merge_gaps([(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)], 10) == [(1, 9), (20, 30)]
    # Over the limit the closest neighbours join: (10, 11) and (13, 14) are 1 ns apart.
    assert merge_gaps([(0, 1), (10, 11), (13, 14), (100, 101)], 3) == [
        (0, 1),
        (10, 14),
        (100, 101),
    ]
    assert merge_gaps([], 3) == []


def covered(gaps: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(a <= start and end <= b for a, b in gaps)


def test_ten_thousand_dropping_flushes_leave_few_gaps_covering_all(tmp_path: Path) -> None:
    """10 000 appends into a full spool (drop-newest), each at its own spaced time.

    Figures: gaps kept <= MAX_GAPS (100); every dropped range is inside one of
    them; after close + reopen of the file the same gaps are there.
    """
    db = tmp_path / "s.sqlite"
    spool = Spool(db, max_bytes=100, overflow=OverflowPolicy.DROP_NEWEST, synchronous="NORMAL")
    spool.open()
    spool.append([(0, b"x" * 100)])  # full from here on
    rnd = random.Random(3)
    dropped: list[tuple[int, int]] = []
    time_ns = 1000
    for _ in range(10_000):
        time_ns += rnd.randrange(10, 10_000)
        times = [time_ns, time_ns + 1, time_ns + 2]
        result = spool.append([(t, b"y") for t in times])
        assert result.dropped == 3
        dropped.append((times[0], times[-1]))
    gaps = spool.gaps()
    assert len(gaps) <= MAX_GAPS
    assert gaps == sorted(gaps)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(gaps))  # disjoint
    assert all(covered(gaps, start, end) for start, end in dropped)
    assert spool.stats().dropped_total == 30_000
    spool.close()
    with Spool(db) as again:
        assert again.gaps() == gaps
        assert again.stats().dropped_total == 30_000


def test_drop_oldest_gap_spans_old_head_to_new_head(tmp_path: Path) -> None:
    """Figure: the gap runs from the head before the append to the head after it."""
    with Spool(tmp_path / "s.sqlite", max_bytes=30) as spool:
        spool.append([(10, b"a" * 10), (20, b"b" * 10), (30, b"c" * 10)])
        result = spool.append([(40, b"d" * 10), (50, b"e" * 10)])
        assert result.dropped == 2
        assert spool.gaps() == [(10, 30)]


class Harness:
    """A pipeline (no uploader running) on a real spool, driven through its own calls."""

    def __init__(self, spool: Spool) -> None:
        self.pipeline = offline_pipeline(spool, run_sync=run_sync)

    @property
    def dropped(self) -> int:
        return self.pipeline.resilience.metrics.events_dropped

    async def capture(self, times: list[int]) -> None:
        for time_ns in times:
            self.pipeline.capture(
                EventRecord(
                    entity_id="sensor.t",
                    state="1",
                    attributes={},
                    time_ns=time_ns,
                    last_changed_ns=time_ns,
                )
            )
        await self.pipeline.flush()


async def run_sync(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def test_gaps_survive_a_restart_and_consumed_ones_are_forgotten(tmp_path: Path) -> None:
    """A full spool drops events; the pipeline restarts; the host consumes the gaps.

    Figures: gaps after restart = gaps before; once consumed (as the runtime
    does: ``pipeline.gaps = []``) they are gone from the file too (0 after the
    next restart); events_dropped = rows dropped.
    """
    db = tmp_path / "s.sqlite"
    line = 60  # bytes of one encoded line here, about
    harness = Harness(Spool(db, max_bytes=5 * line))
    await harness.pipeline.async_open()
    await harness.capture([1_000 + i for i in range(20)])
    gaps = harness.pipeline.gaps
    assert gaps
    assert harness.dropped > 0
    assert harness.dropped == harness.pipeline.stats.dropped_total  # type: ignore[union-attr]
    await harness.pipeline.async_close()

    again = Harness(Spool(db, max_bytes=5 * line))
    await again.pipeline.async_open()
    assert again.pipeline.gaps == gaps
    taken, again.pipeline.gaps = again.pipeline.gaps, []
    assert taken == gaps
    await again.pipeline.async_close()

    third = Harness(Spool(db, max_bytes=5 * line))
    await third.pipeline.async_open()
    assert third.pipeline.gaps == []
    await third.pipeline.async_close()


async def test_rows_lost_at_close_in_memory_mode_are_counted(tmp_path: Path) -> None:
    """The spool's directory cannot be created (its path is a file): memory mode.
    Closing loses what memory held.

    Figure: events_dropped = the 7 rows held in memory, not only a log line.
    """
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    harness = Harness(Spool(blocker / "s.sqlite"))
    await harness.pipeline.async_open()
    await harness.capture(list(range(1, 8)))
    stats = harness.pipeline.stats
    assert stats is not None
    assert stats.in_memory
    assert stats.pending_count == 7
    assert harness.dropped == 0
    await harness.pipeline.async_close()
    assert harness.dropped == 7


async def test_rows_dropped_while_moving_back_to_disk_are_counted(tmp_path: Path) -> None:
    """Memory holds more than the disk limit allows when the disk comes back: the
    oldest are dropped while moving back.

    Figures: events_dropped = rows dropped by the move (3), and the stored
    rows + every drop = rows captured.
    """
    blocker = tmp_path / "d"
    blocker.write_bytes(b"")
    line = 60
    spool = Spool(blocker / "s.sqlite", max_bytes=5 * line, recover_after=None)
    harness = Harness(spool)
    await harness.pipeline.async_open()
    await harness.capture(list(range(1, 9)))
    assert harness.pipeline.stats.in_memory  # type: ignore[union-attr]
    assert harness.dropped == 0
    blocker.unlink()  # the disk is usable again
    assert await harness.pipeline._spool_call(spool.try_recover)
    stats = harness.pipeline.stats
    assert stats is not None
    assert not stats.in_memory
    assert harness.dropped == 8 - stats.pending_count > 0
    assert harness.pipeline.gaps  # the range dropped here can be replayed too
    await harness.pipeline.async_close()


async def test_per_flush_warnings_are_throttled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every flush meets an unencodable event and a shed memory batch, 50 flushes in a row.

    Figures: 1 line per cause in the interval (not 50); after the interval the
    next line says how many were held back (49); every event is still counted
    (points quarantined 51, events dropped 51 x 2).
    """
    spool = Spool(tmp_path / "s.sqlite")
    clock = FakeClock()
    pipeline = offline_pipeline(
        spool, run_sync=run_sync, config=PipelineConfig(max_buffer=2), clock=clock
    )
    await pipeline.async_open()
    bad = EventRecord(entity_id="bad", state="1", attributes={}, time_ns=1, last_changed_ns=1)
    good = EventRecord(entity_id="sensor.t", state="1", attributes={}, time_ns=2, last_changed_ns=2)

    async def one_flush() -> None:
        pipeline.capture_many([good, good, bad, good])  # 2 shed, 1 quarantined
        await pipeline.flush()

    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            await one_flush()
        clock.advance(DEFAULT_INTERVAL + 1)
        await one_flush()
    lines = [r.getMessage() for r in caplog.records if r.name == pipeline_mod.__name__]
    fell_behind = "Dropped 2 events: the spool fell behind"
    cannot_encode = (
        "Quarantined 1 event(s) that cannot be encoded, first:"
        " entity_id 'bad' is not '<domain>.<object_id>'"
    )
    held = f" (and 49 more like it in the last {DEFAULT_INTERVAL:.0f} s)"
    assert lines == [fell_behind, cannot_encode, fell_behind + held, cannot_encode + held]
    metrics = pipeline.resilience.metrics
    assert metrics.points_quarantined == 51
    assert metrics.events_dropped == 102
    await pipeline.async_close()


async def test_memory_budget_overflow_reaches_events_dropped(tmp_path: Path) -> None:
    """The disk is unusable (the directory path is a file) and the memory budget
    holds only part of what is captured.

    Figures: events_dropped = captured - kept in memory (exactly); the memory
    store stays within its budget; the dropped range is a gap to backfill.
    """
    blocker = tmp_path / "d"
    blocker.write_bytes(b"")
    budget = 64 * 1024
    harness = Harness(Spool(blocker / "s.sqlite", max_memory_bytes=budget))
    await harness.pipeline.async_open()
    await harness.capture(list(range(1, 1001)))
    stats = harness.pipeline.stats
    assert stats is not None
    assert stats.in_memory
    assert stats.pending_bytes + stats.dead_letter_bytes <= budget
    assert 0 < stats.pending_count < 1000
    assert harness.dropped == 1000 - stats.pending_count
    assert harness.pipeline.gaps == [(1, stats.oldest_time_ns)]
    await harness.pipeline.async_close()
