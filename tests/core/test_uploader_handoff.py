"""How the uploader reads: hand-over from the pipeline, lazy deletes, one spool job per read."""

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
import random
from typing import Any

import pytest

from custom_components.ha_ingestor.core import uploader as uploader_mod
from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.resilience import Resilience
from custom_components.ha_ingestor.core.retry import build_policy
from custom_components.ha_ingestor.core.spool import Spool
from custom_components.ha_ingestor.core.uploader import Endpoint, Uploader
from tests.core.fake_time import FakeClock, advance_until
from tests.core.test_pipeline_store import spooled_uploader


class Sink:
    """Accepts everything but batches holding a ``bad`` line (400), or all while ``down``."""

    endpoint = "http://sink"

    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []
        self.down = False

    async def prepare(self, payloads: Sequence[bytes]) -> None:
        """Nothing to encode ahead."""

    async def write(self, payloads: Sequence[bytes]) -> None:
        if self.down:
            raise DeliveryError(ErrorCategory.SERVER, "busy", status=503)
        self.writes.append(list(payloads))
        if any(b"bad" in p for p in payloads):
            raise DeliveryError(ErrorCategory.BAD_DATA, "field type conflict", status=400)

    def accepted(self) -> list[bytes]:
        return [p for w in self.writes if not any(b"bad" in x for x in w) for p in w]


def rig(
    tmp_path: Path, payloads: list[bytes], max_points: int, max_bytes: int = 1 << 20
) -> tuple[Uploader, Spool, Sink, list[str]]:
    calls: list[str] = []

    async def run_sync(fn: Callable[..., Any], *args: Any) -> Any:
        calls.append(fn.__name__)
        return fn(*args)

    sink = Sink()
    clock = FakeClock()
    uploader, spool = spooled_uploader(
        tmp_path / "s.sqlite",
        [Endpoint(sink=sink)],
        Resilience(build_policy("infinite", {}), clock, rng=random.Random(1)),
        clock,
        payloads=payloads,
        run_sync=run_sync,
        max_points=max_points,
        max_bytes=max_bytes,
    )
    # Retry delays end at once: these tests are about what is read and sent.
    uploader._res.before_attempt = lambda: 0.0  # type: ignore[method-assign]
    uploader._res.attempt_due_in = lambda: 0.0  # type: ignore[method-assign]
    return uploader, spool, sink, calls


def lines(start: int, stop: int) -> list[tuple[int, bytes]]:
    return [(i, b"m v=%d" % i) for i in range(start, stop)]


async def started(
    tmp_path: Path, max_points: int, max_bytes: int = 1 << 20
) -> tuple[Uploader, Spool, Sink, list[str]]:
    """A rig on an empty spool whose uploader has read once (it knows the store now)."""
    uploader, spool, sink, calls = rig(tmp_path, [], max_points, max_bytes)
    uploader.wake()
    assert await uploader.run_once() is False
    assert calls == ["advance"]
    return uploader, spool, sink, calls


async def drain(uploader: Uploader) -> None:
    """Run rounds until two in a row send nothing (the first may end on a stale empty read)."""
    idle = 0
    for _ in range(1000):
        uploader._wakeup.set()  # never block on an empty spool
        idle = 0 if await uploader.run_once() else idle + 1
        if idle == 2:
            return
    raise AssertionError("uploader never went idle")


def assert_all_delivered(sink: Sink, spool: Spool, count: int) -> None:
    """Lines 0..count-1 were accepted in order and the spool is empty; close it."""
    assert sink.accepted() == [b"m v=%d" % i for i in range(count)]
    assert spool.stats().pending_count == 0
    spool.close()


def hand_over(uploader: Uploader, spool: Spool, rows: list[tuple[int, bytes]]) -> None:
    """What Pipeline.flush does per slice: append (deleting delivered rows), then offer."""
    appended = spool.append(rows, delivered=uploader.take_delivered(), hand_back=True)
    uploader.offer(appended.rows, appended.generation)


async def test_one_spool_job_per_read(tmp_path: Path) -> None:
    uploader, spool, sink, calls = rig(tmp_path, [b"m v=%d" % i for i in range(25)], 10)
    for _ in range(3):
        assert await uploader.run_once() is True
    assert [len(w) for w in sink.writes] == [10, 10, 5]
    # The read after each delivery also deleted it.
    assert calls == ["advance"] * 4
    assert spool.stats().pending_count == 0
    # New rows after an empty read: woken, the next round reads afresh.
    spool.append([(99, b"m v=99")])
    uploader.wake()
    assert await uploader.run_once() is False
    assert await uploader.run_once() is True
    assert sink.writes[-1] == [b"m v=99"]
    spool.close()


async def test_handed_over_rows_are_sent_without_reading_the_spool(tmp_path: Path) -> None:
    uploader, spool, sink, calls = await started(tmp_path, 10)
    for start in (0, 4, 8):
        hand_over(uploader, spool, lines(start, start + 4))
    # Three offers of 4 fill one 10-point batch and part of the next, in order.
    assert await uploader.run_once() is True
    assert await uploader.run_once() is True
    assert sink.writes == [
        [b"m v=%d" % i for i in range(10)],
        [b"m v=10", b"m v=11"],
    ]
    assert calls == ["advance", "advance"]  # one read when the hand-over ran dry
    assert spool.stats().pending_count == 0
    spool.close()


async def test_delivered_rows_are_deleted_with_the_next_append(tmp_path: Path) -> None:
    uploader, spool, sink, calls = await started(tmp_path, 3)
    hand_over(uploader, spool, lines(0, 3))
    hand_over(uploader, spool, lines(3, 6))
    assert await uploader.run_once() is True  # more is handed over: no read, no delete
    assert calls == ["advance"]
    # Accepted but not deleted yet: a crash now would resend them (same timestamps).
    assert spool.stats().pending_count == 6
    hand_over(uploader, spool, lines(6, 9))
    assert spool.stats().pending_count == 6  # the append deleted the delivered three
    assert await uploader.run_once() is True
    assert await uploader.run_once() is True
    assert calls == ["advance", "advance"]  # the hand-over ran dry: read (and delete)
    assert_all_delivered(sink, spool, 9)


async def test_rows_between_hand_overs_are_read_from_the_spool(tmp_path: Path) -> None:
    """Rows spooled without an offer (requeued dead letters, a cancelled flush) are not skipped."""
    uploader, spool, sink, _calls = await started(tmp_path, 100)
    hand_over(uploader, spool, lines(0, 3))
    spool.append(lines(3, 5))  # no offer
    hand_over(uploader, spool, lines(5, 8))
    await drain(uploader)
    assert_all_delivered(sink, spool, 8)


async def test_quarantined_rows_are_not_sent_again(tmp_path: Path) -> None:
    payloads = [b"m v=1", b"m v=2", b"m bad=1", b"m v=4", b"m v=5"]
    uploader, spool, sink, _calls = rig(tmp_path, payloads, 4)
    assert await uploader.run_once() is True
    assert [d.payload for d in spool.dead_letters()] == [b"m bad=1"]
    assert await uploader.run_once() is True
    assert sink.writes[-1] == [b"m v=5"]
    assert sum(w.count(b"m bad=1") for w in sink.writes) == 3  # only while bisecting
    assert spool.stats().pending_count == 0
    spool.close()


async def test_failed_send_reads_from_the_head_again(tmp_path: Path) -> None:
    uploader, spool, sink, calls = await started(tmp_path, 2)
    hand_over(uploader, spool, lines(0, 4))
    assert await uploader.run_once() is True  # 0, 1 accepted, not deleted yet
    sink.down = True
    uploader._wakeup.set()  # the retry delay ends at once
    assert await uploader.run_once() is False  # 2, 3 refused
    assert (uploader._last_read, uploader._next_rows, len(uploader._handoff)) == (0, None, 0)
    sink.down = False
    calls.clear()
    await drain(uploader)
    assert calls[0] == "advance"  # deleted 0, 1 and read 2, 3 from the head
    assert_all_delivered(sink, spool, 4)


async def test_ids_of_a_replaced_store_are_never_applied(tmp_path: Path) -> None:
    """A database recreated (e.g. after corruption) reuses ids: old deletes must not hit them."""
    uploader, spool, sink, _calls = await started(tmp_path, 3)
    hand_over(uploader, spool, lines(0, 3))
    hand_over(uploader, spool, lines(3, 4))
    assert await uploader.run_once() is True  # ids 1-3 delivered, deletion pending
    spool.close()
    for leftover in tmp_path.glob("s.sqlite*"):
        leftover.unlink()
    spool.open()  # a new store whose ids start at 1 again
    delivered = uploader.take_delivered()
    assert delivered is not None
    assert delivered.ids == [1, 2, 3]
    appended = spool.append(lines(10, 14), delivered=delivered, hand_back=True)
    assert list(appended.rows.ids) == [1, 2, 3, 4]
    assert spool.stats().pending_count == 4  # nothing deleted
    uploader.offer(appended.rows, appended.generation)  # another generation: not used
    await drain(uploader)
    assert sink.accepted()[-4:] == [b"m v=%d" % i for i in range(10, 14)]
    assert spool.stats().pending_count == 0
    spool.close()


async def test_random_interleavings_deliver_every_row(tmp_path: Path) -> None:
    """Offers, unoffered appends, outages and byte limits in random order: nothing is lost."""
    for seed in range(20):
        rnd = random.Random(seed)
        path = tmp_path / str(seed)
        path.mkdir()
        uploader, spool, sink, _calls = await started(path, rnd.randint(1, 7), rnd.randint(8, 40))
        made = 0
        for _ in range(60):
            action = rnd.random()
            if action < 0.45:
                size = rnd.randint(1, 6)
                batch = lines(made, made + size)
                made += size
                if rnd.random() < 0.8:
                    hand_over(uploader, spool, batch)
                else:
                    spool.append(batch)
                    uploader.wake()
            else:
                sink.down = rnd.random() < 0.2
                uploader._wakeup.set()
                await uploader.run_once()
        sink.down = False
        uploader.wake()
        await drain(uploader)
        assert sorted(set(sink.accepted()), key=lambda p: int(p[4:])) == [
            b"m v=%d" % i for i in range(made)
        ], seed
        assert spool.stats().pending_count == 0, seed
        spool.close()


async def test_no_spool_read_while_a_flush_is_handing_over(tmp_path: Path) -> None:
    uploader, spool, sink, calls = await started(tmp_path, 3)
    uploader.expect_handoff(True)  # Pipeline.flush is spooling a burst
    hand_over(uploader, spool, lines(0, 3))
    assert await uploader.run_once() is True
    uploader._wakeup.set()
    assert await uploader.run_once() is False  # nothing handed over yet: no read either
    assert calls == ["advance"]
    hand_over(uploader, spool, lines(3, 6))
    assert await uploader.run_once() is True
    assert calls == ["advance"]
    uploader.expect_handoff(False)  # the flush is over: read (and delete) again
    assert await uploader.run_once() is False
    assert calls == ["advance", "advance"]
    assert sink.accepted() == [b"m v=%d" % i for i in range(6)]
    assert spool.stats().pending_count == 0
    # A gap in the hand-over reads the spool even while a flush is running.
    uploader.expect_handoff(True)
    spool.append(lines(6, 7))
    hand_over(uploader, spool, lines(7, 8))
    await drain(uploader)
    assert sink.accepted()[-2:] == [b"m v=6", b"m v=7"]
    uploader.expect_handoff(False)
    spool.close()


async def test_hand_over_is_bounded_and_off_while_not_delivering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offers never pile up in memory: not before the first read, not in a backoff, not beyond
    HANDOFF_MAX_ROWS (the rows are in the spool in every case)."""
    uploader, spool, sink, _calls = rig(tmp_path, [], 3)
    hand_over(uploader, spool, lines(0, 2))  # not started yet
    assert not uploader._handoff
    await drain(uploader)
    monkeypatch.setattr(uploader_mod, "HANDOFF_MAX_ROWS", 4)
    hand_over(uploader, spool, lines(2, 5))
    hand_over(uploader, spool, lines(5, 8))  # would make 6 queued
    assert [len(rows) for rows in uploader._handoff] == [3]
    sink.down = True
    uploader._wakeup.set()
    assert await uploader.run_once() is False  # refused: backing off
    hand_over(uploader, spool, lines(8, 9))
    assert not uploader._handoff
    sink.down = False
    await drain(uploader)
    assert sorted(set(sink.accepted())) == sorted(b"m v=%d" % i for i in range(9))
    assert spool.stats().pending_count == 0
    spool.close()


async def test_a_backlog_is_read_on_while_a_flush_runs(tmp_path: Path) -> None:
    """Behind (a full batch was read), the uploader keeps reading instead of waiting.

    Figures: 3 batches, 5 spool jobs: one read per batch (each after the first
    read ahead while the one before was in flight), one read ahead that found
    nothing, and the read that deletes the last batch.
    """
    uploader, spool, sink, calls = rig(tmp_path, [b"m v=%d" % i for i in range(6)], 2)
    uploader.expect_handoff(True)
    for _ in range(3):
        assert await uploader.run_once() is True
    assert calls == ["advance"] * 5
    uploader.expect_handoff(False)
    assert_all_delivered(sink, spool, 6)


async def test_a_failing_spool_read_does_not_end_the_upload_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The spool read raises twice: the loop logs it once and goes on.

    Figures: 25 of 25 delivered in order, 0 left spooled, 1 error line for 2
    failures, 10 s of fake time (two waits of STEP_RETRY), the task still running.
    """
    uploader, spool, sink, _calls = rig(tmp_path, [b"m v=%d" % i for i in range(25)], 10)
    clock = uploader._clock
    assert isinstance(clock, FakeClock)
    advance = spool.advance
    failures = [OSError("disk I/O error"), OSError("disk I/O error")]

    def flaky(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return advance(*args)

    spool.advance = flaky  # type: ignore[method-assign]
    started = clock.monotonic()
    task = asyncio.ensure_future(uploader.run())
    try:
        await advance_until(clock, lambda: len(sink.accepted()) == 25)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.wait([task])
    assert sink.accepted() == [b"m v=%d" % i for i in range(25)]
    assert clock.monotonic() - started == 2 * uploader_mod.STEP_RETRY
    assert caplog.text.count("failed outside a delivery") == 1
    spool.advance = advance  # type: ignore[method-assign]
    assert spool.stats().pending_count == 0
    spool.close()
