"""Draining a backlog: the next batch is read and encoded while the one before is in flight.

A fake sink holds each write until the test lets it answer (a real server cannot
be held at an exact point of a request); the spool is a real SQLite file.
"""

import asyncio
from collections.abc import Callable, Sequence
import concurrent.futures
from pathlib import Path
import random
import threading
from typing import Any

from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.resilience import Resilience
from custom_components.ha_ingestor.core.retry import build_policy
from custom_components.ha_ingestor.core.spool import Spool
from custom_components.ha_ingestor.core.uploader import Endpoint, Uploader
from tests.core.fake_time import FakeClock
from tests.core.test_pipeline_store import spooled_uploader

BATCH = 10


class HeldSink:
    """Holds every write until :meth:`answer`; fails it while ``down``."""

    endpoint = "http://held"

    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []
        self.accepted: list[bytes] = []
        self.prepared: list[Sequence[bytes]] = []
        self.from_prepared: list[bool] = []
        self.in_flight = asyncio.Event()
        self._answer = asyncio.Event()
        self.down = False

    async def prepare(self, payloads: Sequence[bytes]) -> None:
        self.prepared.append(payloads)

    async def write(self, payloads: Sequence[bytes]) -> None:
        self.writes.append(list(payloads))
        self.from_prepared.append(any(p is payloads for p in self.prepared))
        self.in_flight.set()
        await self._answer.wait()
        self._answer.clear()
        self.in_flight.clear()
        if self.down:
            raise DeliveryError(ErrorCategory.SERVER, "busy", status=503)
        self.accepted.extend(payloads)

    async def answer(self) -> None:
        """Let the write in flight answer."""
        self._answer.set()
        while self._answer.is_set():
            await asyncio.sleep(0)


def lines(count: int) -> list[bytes]:
    return [b"m v=%d" % i for i in range(count)]


def rig(
    tmp_path: Path, count: int, run_sync: Callable[..., Any] | None = None
) -> tuple[Uploader, Spool, HeldSink, list[str]]:
    """An uploader over a spool holding ``count`` lines, batches of :data:`BATCH`."""
    jobs: list[str] = []

    async def inline(fn: Callable[..., Any], *args: Any) -> Any:
        jobs.append(fn.__name__)
        return fn(*args)

    sink = HeldSink()
    uploader, spool = uploader_on(tmp_path / "s.sqlite", sink, lines(count), run_sync or inline)
    return uploader, spool, sink, jobs


def uploader_on(
    path: Path, sink: HeldSink, payloads: list[bytes], run_sync: Callable[..., Any]
) -> tuple[Uploader, Spool]:
    """An uploader to ``sink`` over the spool at ``path``; retry delays end at once."""
    clock = FakeClock()
    uploader, spool = spooled_uploader(
        path,
        [Endpoint(sink=sink)],
        Resilience(build_policy("infinite", {}), clock, rng=random.Random(1)),
        clock,
        payloads=payloads,
        run_sync=run_sync,
        max_points=BATCH,
        max_bytes=1 << 20,
    )
    # These tests are about what is read and sent, not about waiting.
    uploader._res.before_attempt = lambda: 0.0  # type: ignore[method-assign]
    uploader._res.attempt_due_in = lambda: 0.0  # type: ignore[method-assign]
    return uploader, spool


async def settle() -> None:
    """Let every task that can run without I/O run."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_next_batch_is_read_and_encoded_while_one_is_in_flight(tmp_path: Path) -> None:
    """25 spooled lines, batches of 10.

    Figures: while batch 1 is in flight the spool was read twice (batch 1, then
    batch 2 ahead) and batch 2's body was prepared; batches 2 and 3 are sent
    from their prepared bodies; 25 of 25 accepted in order, 0 left spooled, 4
    spool jobs in all (3 reads + the one that deletes the last batch).
    """
    uploader, spool, sink, jobs = rig(tmp_path, 25)
    first = asyncio.ensure_future(uploader.run_once())
    await sink.in_flight.wait()
    await settle()
    assert jobs == ["advance", "advance"]
    assert [list(p) for p in sink.prepared] == [lines(20)[10:]]
    await sink.answer()
    assert await first is True
    for _ in range(2):
        step = asyncio.ensure_future(uploader.run_once())
        await sink.in_flight.wait()
        await sink.answer()
        assert await step is True
    assert sink.from_prepared == [False, True, True]
    assert sink.accepted == lines(25)
    assert jobs == ["advance"] * 4
    assert spool.stats().pending_count == 0
    spool.close()


async def test_failed_write_with_a_read_ahead_resends_from_the_head(tmp_path: Path) -> None:
    """Batch 2 fails while batch 3 was read ahead: the read ahead is dropped, nothing skipped.

    Figures: 30 spooled; writes: batch 1, batch 2 (503), then batches 2 and 3
    from the spool's head again; 30 of 30 accepted in order, each once; no
    read ahead after the failure (the retry's batch may have to wait).
    """
    uploader, spool, sink, jobs = rig(tmp_path, 30)
    step = asyncio.ensure_future(uploader.run_once())
    await sink.in_flight.wait()
    await sink.answer()
    assert await step is True
    sink.down = True
    step = asyncio.ensure_future(uploader.run_once())
    await sink.in_flight.wait()
    await settle()
    assert len(sink.prepared) == 2  # batch 3 read and encoded ahead
    uploader.wake()  # the retry delay ends at once
    await sink.answer()
    assert await step is False
    sink.down = False
    jobs.clear()
    step = asyncio.ensure_future(uploader.run_once())
    await sink.in_flight.wait()
    await settle()
    assert jobs == ["advance"]  # batch 2 from the head; nothing read ahead this time
    await sink.answer()
    assert await step is True
    step = asyncio.ensure_future(uploader.run_once())
    await sink.in_flight.wait()
    await sink.answer()
    assert await step is True
    assert [w[0] for w in sink.writes] == [b"m v=0", b"m v=10", b"m v=10", b"m v=20"]
    assert sink.accepted == lines(30)
    spool.close()


async def test_cancelled_while_the_read_ahead_runs_loses_nothing(tmp_path: Path) -> None:
    """Cancelled (unload) while a write is in flight and its read ahead is in a worker thread.

    Figures: the step ends cancelled; the held read ahead finishes in its
    thread (it deleted only the accepted batch 1); a new uploader on the same
    spool then delivers the other 20 of 30: 30 of 30 accepted, none twice, 0
    left spooled.
    """
    entered, release = threading.Event(), threading.Event()
    submitted: list[concurrent.futures.Future[Any]] = []
    reads = 0

    async def run_sync(fn: Callable[..., Any], *args: Any) -> Any:
        nonlocal reads
        reads += 1
        hold = reads == 3  # the read ahead of batch 3, while batch 2 is in flight

        def job() -> Any:
            if hold:
                entered.set()
                release.wait(10)
            return fn(*args)

        submitted.append(workers.submit(job))
        return await asyncio.wrap_future(submitted[-1])

    async def step(uploader: Uploader, sink: HeldSink) -> bool:
        running = asyncio.ensure_future(uploader.run_once())
        await sink.in_flight.wait()
        await sink.answer()
        return await running

    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(2) as workers:
        uploader, spool, sink, _jobs = rig(tmp_path, 30, run_sync)
        assert await step(uploader, sink) is True  # batch 1 accepted
        running = asyncio.ensure_future(uploader.run_once())
        await sink.in_flight.wait()  # batch 2 in flight
        await loop.run_in_executor(None, entered.wait, 10)
        running.cancel()
        await asyncio.wait([running])
        assert running.cancelled()
        release.set()
        await loop.run_in_executor(None, concurrent.futures.wait, submitted)
        assert sink.accepted == lines(10)

        again = HeldSink()
        spool.close()
        uploader, spool = uploader_on(tmp_path / "s.sqlite", again, [], run_sync)
        assert await step(uploader, again) is True
        assert await step(uploader, again) is True  # and the read that deletes it
    assert sink.accepted + again.accepted == lines(30)
    assert spool.stats().pending_count == 0
    spool.close()


async def test_failed_read_ahead_keeps_the_delete_and_reads_again(tmp_path: Path) -> None:
    """The read ahead that would delete batch 1 fails once (a spool error) while batch 2 is sent.

    Figures: batch 2 is accepted and the step succeeds; the read after it deletes
    batches 1 and 2 (10 left spooled, not 20); 30 of 30 accepted, none twice,
    0 left spooled at the end.
    """
    reads = 0

    async def run_sync(fn: Callable[..., Any], *args: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 3:  # the read ahead of batch 3, which deletes batch 1
            raise OSError("disk I/O error")
        return fn(*args)

    uploader, spool, sink, _jobs = rig(tmp_path, 30, run_sync)
    for _ in range(2):
        step = asyncio.ensure_future(uploader.run_once())
        await sink.in_flight.wait()
        await sink.answer()
        assert await step is True
    assert spool.stats().pending_count == 10
    assert uploader.undeleted == 0
    step = asyncio.ensure_future(uploader.run_once())
    await sink.in_flight.wait()
    await sink.answer()
    assert await step is True
    assert sink.accepted == lines(30)
    assert spool.stats().pending_count == 0
    spool.close()
