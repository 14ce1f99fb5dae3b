"""The HA-free pipeline: memory batch -> encoder -> spool -> uploader, plus health.

The host (the Home Assistant layer) calls :meth:`Pipeline.capture` from its
bus listener, :meth:`Pipeline.flush` at least every second and at shutdown,
runs :meth:`Pipeline.run_uploader` as a background task and reads
:meth:`Pipeline.health`. Blocking work (encoding, SQLite) runs through the
``run_sync`` callable the host provides (HA's executor).
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
import logging
from typing import Any, Self

from .clock import Clock
from .encoder import Encoder, EventRecord, Rendered, record_debug_payload
from .health import HealthReport, HealthTolerances
from .logthrottle import ThrottledLog
from .resilience import Resilience
from .spool import AppendResult, RowIds, Spool, SpoolStats
from .uploader import Endpoint, RunSync, Uploader, retrieve

_LOGGER = logging.getLogger(__name__)

#: Most captured items kept in memory between flushes. A flush runs every
#: second, so this only bites when the executor is stuck for a long time.
MAX_BUFFER = 200_000
#: Most items encoded and spooled per executor job. Each job has a fixed cost
#: that grows while Home Assistant is busy (a thread hop, a transaction, the
#: statistics read, every one waiting for the GIL), so a burst goes to disk in
#: few large jobs after a first one of ``batch_points`` (the uploader starts on
#: that one); the uploader still sends batches of ``batch_points``.
STORE_SLICE = 20_000
#: Bytes a typical line takes on disk in the spool's segments (measured with
#: realistic lines, see docs/benchmarks.md); used until the spool holds enough
#: points to measure its own.
TYPICAL_DISK_BYTES_PER_EVENT = 14.5
#: Points the spool must hold before its own bytes per point are used.
_MEASURED_FROM = 1000
#: The event rate is measured over this many seconds (samples a minute apart).
RATE_WINDOW = 3600.0
_RATE_SAMPLE = 60.0


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Sizes and tolerances of one pipeline."""

    batch_points: int = 5000
    batch_bytes: int = 4 * 1024 * 1024
    tolerances: HealthTolerances = field(default_factory=HealthTolerances)
    max_buffer: int = MAX_BUFFER


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one flush did."""

    captured: int = 0
    stored: int = 0
    skipped: int = 0
    rejected: int = 0
    dropped: int = 0

    def __add__(self, other: Self) -> Self:
        """Sum two results field by field (a flush of several slices)."""
        return type(self)(
            self.captured + other.captured,
            self.stored + other.stored,
            self.skipped + other.skipped,
            self.rejected + other.rejected,
            self.dropped + other.dropped,
        )


def hours_held(disk_bytes: float, event_rate: float, bytes_per_event: float) -> float:
    """Hours of events at ``event_rate`` per second that ``disk_bytes`` of spool hold."""
    return disk_bytes / (event_rate * bytes_per_event * 3600)


class Pipeline:
    """Owns the memory batch, the spool, the uploader and the resilience engine."""

    def __init__(
        self,
        *,
        encoder: Encoder,
        spool: Spool,
        endpoints: Sequence[Endpoint],
        resilience: Resilience,
        clock: Clock,
        run_sync: RunSync,
        convert: Callable[[Any], EventRecord | Rendered | None],
        config: PipelineConfig | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """Wire the pipeline; ``convert`` turns a captured item into a record (off-loop).

        ``convert`` may also return a point it rendered itself (the line
        cache's fast path), which the encoder passes through in order.
        """
        self._config = config or PipelineConfig()
        self._encoder = encoder
        self._spool = spool
        self._res = resilience
        self._clock = clock
        self._run_sync = run_sync
        self._convert = convert
        self._on_change = on_change or (lambda: None)
        self._buffer: list[Any] = []
        #: The listener's whole job: a bound C ``list.append`` (one stable list;
        #: flush slices it in place, so this never needs rebinding).
        self.capture: Callable[[Any], None] = self._buffer.append
        self._flush_lock = asyncio.Lock()
        # One line per cause per interval: a flush a second could meet these every time.
        self._throttle = ThrottledLog(_LOGGER, monotonic=clock.monotonic)
        self._storing: asyncio.Future[FlushResult] | None = None
        # Filled by executor jobs, emptied on the loop (deque appends/pops are atomic).
        self._spool_drops: deque[int] = deque()
        self._stats: SpoolStats | None = None
        # The spool's gaps as of the last spool operation, and gaps the host
        # consumed that the next operation deletes from the spool.
        self._gaps: list[tuple[int, int]] = []
        self._consumed_gaps: deque[list[tuple[int, int]]] = deque()
        self._spool_changed = asyncio.Event()
        self._buffer_dropped = 0
        # (monotonic, events received so far), a minute apart, the last hour.
        self._received: deque[tuple[float, int]] = deque()
        self.uploader = Uploader(
            endpoints=endpoints,
            spool=spool,
            run_sync=self._spool_call,
            resilience=resilience,
            clock=clock,
            max_points=self._config.batch_points,
            max_bytes=self._config.batch_bytes,
            on_change=self._changed,
        )

    # --- host calls ------------------------------------------------------------------

    @property
    def resilience(self) -> Resilience:
        """The resilience engine."""
        return self._res

    @property
    def spool(self) -> Spool:
        """The spool (only call it through ``run_sync``)."""
        return self._spool

    @property
    def stats(self) -> SpoolStats | None:
        """Spool statistics as of the last spool operation."""
        return self._stats

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """Time ranges (ns, inclusive) of events the spool had to drop.

        The host may replay them from its own history (idempotent: same
        timestamps). Sorted, merged and bounded by the spool, and persisted
        with the drops, so they survive a restart.
        """
        return self._gaps

    @gaps.setter
    def gaps(self, remaining: list[tuple[int, int]]) -> None:
        """Keep only ``remaining``: the others were replayed, the spool forgets them."""
        consumed = [gap for gap in self._gaps if gap not in remaining]
        if consumed:
            self._consumed_gaps.append(consumed)
        self._gaps = list(remaining)

    @property
    def buffered(self) -> int:
        """Items captured but not yet flushed to the spool."""
        return len(self._buffer)

    @property
    def backlog(self) -> int:
        """Points waiting for delivery: the memory batch and the spool.

        Rows the destination already accepted stay spooled until the next
        write deletes them; they are not waiting, so they are not counted.
        """
        stats = self._stats
        if stats is None:
            return len(self._buffer)
        return len(self._buffer) + max(0, stats.pending_count - self.uploader.undeleted)

    async def async_open(self) -> None:
        """Open the spool (off the loop)."""
        await self._spool_call(self._spool.open)

    def capture_many(self, items: Iterable[Any]) -> None:
        """Take several items (backfill)."""
        self._buffer.extend(items)
        self._shed()

    def _shed(self) -> None:
        """Bound the memory batch; only bites when the executor is stuck for minutes."""
        excess = len(self._buffer) - self._config.max_buffer
        if excess > 0:
            # Shed the oldest in one slice (counted), not one by one in the listener.
            del self._buffer[:excess]
            self._buffer_dropped += excess

    async def flush(self) -> FlushResult | None:
        """Encode the memory batch and write it to the spool in slices; wake the uploader.

        A first slice of one upload batch lets the uploader start while the
        rest of a burst is still being encoded (in slices of ``STORE_SLICE``).
        """
        self._shed()
        metrics = self._res.metrics
        async with self._flush_lock:
            dropped_in_memory, self._buffer_dropped = self._buffer_dropped, 0
            if dropped_in_memory:
                metrics.add_events_dropped(dropped_in_memory)
                self._throttle.warning(
                    "fell_behind", "Dropped %d events: the spool fell behind", dropped_in_memory
                )
            if self._storing is not None and not self._storing.done():
                # A cancelled flush left its slice being stored: let it finish first,
                # so slices reach the spool in capture order and a failed one is
                # back at the front of the buffer before this flush slices it.
                await asyncio.wait([self._storing])
            buffer = self._buffer
            # Only what was captured before this flush: a sustained storm must
            # not keep one flush running forever.
            remaining = len(buffer)
            if not remaining:
                return None
            total = FlushResult()
            self.uploader.expect_handoff(True)
            # The first slice is one upload batch, so the uploader starts early.
            size = self._config.batch_points
            try:
                while remaining > 0:
                    size = min(remaining, size)
                    batch = buffer[:size]
                    del buffer[:size]
                    remaining -= size
                    size = max(STORE_SLICE, self._config.batch_points)
                    # The uploader's delivered rows are deleted in the same job, and
                    # the stored rows come back with their ids for it to send.
                    storing = asyncio.ensure_future(
                        self._store_slice(batch, self.uploader.take_delivered())
                    )
                    storing.add_done_callback(retrieve)
                    self._storing = storing
                    # Shielded: once a slice has left the buffer, its store runs to
                    # the end even when this flush is cancelled (a backfill or an
                    # unload cancelling its caller) and accounts for itself.
                    total += await asyncio.shield(storing)
            finally:
                self.uploader.expect_handoff(False)
        self._changed()
        return total

    async def _store_slice(self, batch: list[Any], delivered: RowIds | None) -> FlushResult:
        """Spool one slice taken from the buffer and account for it.

        If the store raises (or this task is torn down) the slice goes back to
        the front of the buffer in order, so the next flush stores it, and the
        delivered ids go back to the uploader for the next delete. Torn down
        while the executor job runs, the job may still finish: its rows are then
        spooled twice, which InfluxDB overwrites (same timestamps).
        """
        metrics = self._res.metrics
        try:
            result, appended = await self._spool_call(self._store, batch, delivered)
        except BaseException:
            self._buffer[:0] = batch
            self.uploader.untake_delivered(delivered)
            raise
        # Counted once stored: a slice put back is counted by the flush that stores it.
        metrics.add_events_received(len(batch))
        self._sample_received()
        self.uploader.offer(appended.rows, appended.generation)
        if result.dropped:
            metrics.add_events_dropped(result.dropped)
        if result.rejected:
            metrics.add_points_quarantined(result.rejected)
        return result

    async def run_uploader(self) -> None:
        """Run the uploader loop (a background task; cancellation-safe)."""
        await self.uploader.run()

    async def async_close(self) -> None:
        """Flush what is in memory and close the spool (final write)."""
        await self.flush()
        if delivered := self.uploader.take_delivered():
            await self._spool_call(self._spool.delete_delivered, delivered)

        def close() -> None:
            while self._consumed_gaps:
                self._spool.remove_gaps(self._consumed_gaps.popleft())
            self._spool.close()
            # Rows a spool running in memory could not put back on disk.
            self._spool_drops.append(self._spool.take_unreported_drops())

        await self._run_sync(close)
        self._count_spool_drops()

    async def requeue_dead_letters(self) -> int:
        """Move quarantined points back to the queue and wake the uploader."""
        moved: int = await self._spool_call(self._spool.requeue_dead_letters)
        self.uploader.wake()
        self._changed()
        return moved

    async def purge_dead_letters(self) -> int:
        """Delete every quarantined point deliberately; return how many."""
        purged: int = await self._spool_call(self._spool.purge_dead_letters)
        self.uploader.wake()
        self._changed()
        return purged

    def retry_now(self) -> None:
        """Manual retry."""
        self.uploader.retry_now()

    def health(self) -> HealthReport:
        """Assess health from the engine and the latest spool statistics."""
        stats = self._stats
        backlog = self.backlog
        oldest_age: float | None = None
        storage_failed = False
        if stats is not None:
            storage_failed = stats.storage_failed
            if stats.oldest_time_ns is not None:
                oldest_age = max(0.0, self._clock.time() - stats.oldest_time_ns / 1e9)
        return self._res.health(
            self._config.tolerances,
            backlog_size=backlog,
            backlog_oldest_age=oldest_age,
            storage_failure=storage_failed,
        )

    async def wait_for_change(self) -> None:
        """Wait until the spool changes (the uploader deleted rows, new rows came in)."""
        self._spool_changed.clear()
        await self._spool_changed.wait()

    def room_for(self, default_size: int = 512) -> int:
        """How many more points fit in half the spool's free space (backfill pacing).

        Counted on disk when the spool has a disk limit (points take a
        fraction of ``default_size`` there, compressed), else in encoded bytes.
        """
        stats = self._stats
        if stats is None:
            return 0
        disk_limit = self._spool.max_disk_bytes
        if disk_limit is not None and not stats.in_memory:
            limit, used, default = disk_limit, stats.disk_bytes, max(1, default_size // 8)
        else:
            limit, used, default = self._spool.max_bytes, stats.pending_bytes, default_size
        free = limit // 2 - used
        if free <= 0:
            return 0
        average = used // stats.pending_count if stats.pending_count else 0
        return max(1, free // (average or default))

    def event_rate(self) -> float | None:
        """Events per second received over the last hour (None before a minute has passed)."""
        self._sample_received()
        samples = self._received
        if len(samples) < 2:
            return None
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None

    def spool_outlook(self) -> dict[str, float]:
        """How long the spool's disk holds at the measured event rate (for the backlog sensor).

        ``spool_capacity_hours``: the whole disk limit; ``spool_full_in_hours``:
        the room left, if nothing were delivered from now on. Empty while the
        rate is unknown or zero, or the spool has no disk limit.
        """
        stats = self._stats
        rate = self.event_rate()
        limit = self._spool.max_disk_bytes
        if not rate or limit is None or stats is None:
            return {}
        per_event = self.disk_bytes_per_event()
        return {
            "spool_capacity_hours": round(hours_held(limit, rate, per_event), 1),
            "spool_full_in_hours": round(
                hours_held(max(0, limit - stats.disk_bytes), rate, per_event), 1
            ),
        }

    def disk_bytes_per_event(self) -> float:
        """Bytes a point takes on disk: measured once the spool holds enough, else typical."""
        stats = self._stats
        if stats is not None and stats.pending_count >= _MEASURED_FROM and stats.disk_bytes:
            return stats.disk_bytes / stats.pending_count
        return TYPICAL_DISK_BYTES_PER_EVENT

    def _sample_received(self) -> None:
        now = self._clock.monotonic()
        samples = self._received
        received = self._res.metrics.events_received
        if not samples or now - samples[-1][0] >= _RATE_SAMPLE:
            samples.append((now, received))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()

    # --- internals -------------------------------------------------------------------

    def _changed(self) -> None:
        self._on_change()

    async def _spool_call[T](self, fn: Callable[..., T], *args: Any) -> T:
        """Run a spool operation off the loop and refresh the cached statistics."""

        def job() -> T:
            try:
                return fn(*args)
            finally:
                self._sync_spool()

        result: Awaitable[T] = self._run_sync(job)
        try:
            value = await result
        finally:
            self._count_spool_drops()
        self._spool_changed.set()
        return value

    def _sync_spool(self) -> None:
        """Refresh what the loop reads about the spool (worker thread, after each operation).

        Read here so the loop never waits on the spool's lock just to render
        an entity; consumed gaps are deleted from the spool first.
        """
        while self._consumed_gaps:
            self._spool.remove_gaps(self._consumed_gaps.popleft())
        self._stats = self._spool.stats()
        self._gaps = self._spool.gaps()
        self._spool_drops.append(self._spool.take_unreported_drops())

    def _count_spool_drops(self) -> None:
        """Count rows the spool dropped outside an append (salvage, recovery, close)."""
        while self._spool_drops:
            if dropped := self._spool_drops.popleft():
                self._res.metrics.add_events_dropped(dropped)

    def _store(
        self, batch: list[Any], delivered: RowIds | None = None
    ) -> tuple[FlushResult, AppendResult]:
        """Convert, encode and spool a batch, deleting ``delivered`` rows (worker thread)."""
        rejected: list[tuple[int, bytes]] = []
        reasons: list[str] = []
        convert = self._convert

        def records() -> Iterator[EventRecord | Rendered]:
            # Converted while encoding, so each record is freed right after its
            # line is made: thousands of live records would only feed the GC.
            for item in batch:
                try:
                    record = convert(item)
                except Exception as err:  # noqa: BLE001 - bad input must never stop the pipeline
                    rejected.append((0, repr(item).encode("utf-8", "replace")[:4096]))
                    reasons.append(f"cannot convert: {err}")
                    continue
                if record is not None:
                    yield record

        encoded = self._encoder.encode_many(records())
        for record, reason in encoded.rejected:
            rejected.append((record.time_ns, record_debug_payload(record)))
            reasons.append(reason)
        if rejected:
            # One reason per quarantine call keeps each dead letter explainable.
            for (time_ns, payload), reason in zip(rejected, reasons, strict=True):
                self._spool.quarantine_payloads([(time_ns, payload)], reason, "bad_data")
            self._throttle.warning(
                "cannot_encode",
                "Quarantined %d event(s) that cannot be encoded, first: %s",
                len(rejected),
                reasons[0],
            )
        appended = self._spool.append(encoded.lines, delivered=delivered, hand_back=True)
        result = FlushResult(
            captured=len(batch),
            stored=appended.stored,
            skipped=encoded.skipped,
            rejected=len(rejected),
            dropped=appended.dropped,
        )
        return result, appended
