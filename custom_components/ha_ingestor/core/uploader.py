"""The uploader: one loop per destination moving spooled points to the sink.

Rows leave the spool only after the destination accepted them, so a crash,
a cancellation (HA cancels background tasks early in shutdown) or a timeout
that did in fact write means a resend, never a loss; resends are harmless
because every point carries its own timestamp / idempotency key.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
import contextlib
from dataclasses import dataclass
import logging
import math
from typing import Any, Protocol

from .breaker import CircuitBreaker
from .clock import Clock
from .errors import DeliveryError, ErrorCategory, ErrorKind
from .probe import tcp_reachable
from .resilience import Resilience
from .spool import Batch, RowIds, Rows, Spool, within_bytes

_LOGGER = logging.getLogger(__name__)

type RunSync = Callable[..., Awaitable[Any]]
type Probe = Callable[[str], Awaitable[bool]]

#: Seconds between reachability probes while a destination refuses connections.
PROBE_INTERVAL = 1.0
#: Failures that end at once (nothing listening, name not resolvable): a TCP
#: connect tells cheaply when that is over. Timeouts and HTTP errors are not
#: probed: a hung or failing server accepts connections all the same.
PROBE_CATEGORIES = frozenset({ErrorCategory.NETWORK, ErrorCategory.DNS})
#: Most rows kept for the hand-over. More means the uploader fell behind: the
#: rows are in the spool anyway, and memory must not grow with a backlog.
HANDOFF_MAX_ROWS = 50_000


class Sink(Protocol):
    """What the uploader needs from a destination."""

    endpoint: str

    async def write(self, payloads: Sequence[bytes]) -> None:
        """Deliver payloads or raise :class:`DeliveryError`."""


@dataclass(slots=True)
class Endpoint:
    """One URL of the destination; fallbacks each carry their own breaker."""

    sink: Sink
    breaker: CircuitBreaker | None = None


class Uploader:
    """Reads batches from the spool and delivers them through the resilience engine."""

    def __init__(
        self,
        *,
        endpoints: Sequence[Endpoint],
        spool: Spool,
        run_sync: RunSync,
        resilience: Resilience,
        clock: Clock,
        max_points: int,
        max_bytes: int,
        on_change: Callable[[], None] | None = None,
        probe: Probe | None = tcp_reachable,
    ) -> None:
        """Create the uploader; ``run_sync`` runs blocking spool calls off the loop.

        ``probe(endpoint_url)`` is asked once per :data:`PROBE_INTERVAL` during
        a backoff after a network/DNS failure; when it answers True the retry
        happens at once (None disables probing).
        """
        if not endpoints:
            raise ValueError("at least one endpoint is required")
        self._endpoints = list(endpoints)
        self._spool = spool
        self._run_sync = run_sync
        self._res = resilience
        self._clock = clock
        self._max_points = max_points
        self._max_bytes = max_bytes
        self._on_change = on_change or (lambda: None)
        self._wakeup = asyncio.Event()
        self._active_endpoint: str = self._endpoints[0].sink.endpoint
        self._logged_outage = False
        # Reading: batches the pipeline just spooled are handed over with their
        # ids (offer), so while the uploader keeps up it never reads the spool
        # back; accepted ids are deleted later in one go, together with the next
        # append or read (every executor hop waits for the GIL while Home
        # Assistant is busy). A crash before that delete only means a resend.
        # All ids belong to the store generation ``_generation``.
        self._generation: int | None = None
        self._last_read = 0  # highest id sent or being sent; reading resumes after it
        self._handoff: deque[Rows] = deque()  # all of generation ``_generation``
        self._delivered: list[int] = []
        # Read right after a delivery when nothing was handed over (the same job
        # deletes the delivered rows); [] = the spool had nothing more then.
        self._next_rows: Rows | None = None
        # True while the pipeline is spooling a burst: more rows are about to be
        # handed over, so reading the spool meanwhile would only compete with
        # those writes for the spool's lock and the GIL.
        self._expecting = False
        self._must_read = False  # the hand-over skipped rows: read the spool
        # Whether the last rows sent were the newest (a hand-over, or a read that
        # found fewer than a batch): only then is waiting for a hand-over right.
        self._caught_up = False
        # Offers are kept only while deliveries flow (not during a backoff, a
        # pause, or before the first read): otherwise they would pile up in memory.
        self._flowing = False
        self._probe = probe
        # Disarmed when an attempt a probe triggered fails (the port answers but
        # writes do not, e.g. a proxy): plain backoff until the next success.
        self._probe_armed = True
        self._probe_attempt = False
        self._next_probe_at: float | None = None

    @property
    def active_endpoint(self) -> str:
        """URL (without credentials) of the endpoint used last."""
        return self._active_endpoint

    def wake(self) -> None:
        """Look at the spool again now (new data was spooled, or a retry was asked)."""
        self._wakeup.set()

    def offer(self, rows: Rows, generation: int) -> None:
        """Rows just spooled (ids consecutive): send them without reading them back.

        Used only while they directly follow what was read last; anything else
        (rows requeued or dropped in between, another store) reads the spool.
        """
        if rows:
            queued = sum(map(len, self._handoff))
            if (
                self._flowing
                and generation == self._generation
                and queued + len(rows) <= HANDOFF_MAX_ROWS
            ):
                self._handoff.append(rows)
            else:
                self._must_read = True
        self.wake()

    def expect_handoff(self, expecting: bool) -> None:
        """Tell whether the pipeline is spooling rows it will :meth:`offer` (wakes when over)."""
        self._expecting = expecting
        if not expecting:
            self.wake()

    @property
    def undeleted(self) -> int:
        """Rows the destination accepted that are still spooled (deleted with the next write)."""
        return len(self._delivered)

    def take_delivered(self) -> RowIds | None:
        """Ids accepted by the destination and not deleted yet (the caller deletes them)."""
        if not self._delivered or self._generation is None:
            return None
        ids, self._delivered = self._delivered, []
        return RowIds(self._generation, ids)

    def retry_now(self) -> None:
        """Manual retry: leave paused / given-up / backoff and try at once."""
        self._res.manual_retry()
        for endpoint in self._endpoints:
            if endpoint.breaker is not None:
                endpoint.breaker.reset()
        self.wake()

    async def run(self) -> None:
        """Deliver forever; cancellation-safe (nothing is deleted before acceptance)."""
        while True:
            await self.run_once()

    async def run_once(self) -> bool:
        """Do one step: deliver one batch, or wait. Returns True when a batch was sent."""
        ahead, self._next_rows = self._next_rows, None
        rows = ahead or self._take_handoff()
        if not rows and ahead is None and not self._wait_for_handoff():
            rows = await self._read()
        if not rows:
            await self._wait(math.inf)
            return False
        wait = self._res.before_attempt()
        if wait > 0:
            self._reread()  # these rows wait in the spool; read them again later
            self._on_change()
            if wait == math.inf:
                await self._wait_resumed()
            else:
                await self._backoff(wait)
            return False
        probed, self._probe_attempt = self._probe_attempt, False
        try:
            await self._send(rows)
        except DeliveryError as err:
            self._reread()
            delay = self._res.on_failure(err)
            if probed and err.transient:
                self._probe_armed = False
            self._log_failure(err, delay)
            self._on_change()
            if delay is not None and delay > 0:
                await self._backoff(delay)
            return False
        except asyncio.CancelledError:
            self._reread()
            self._res.on_cancel()
            raise
        except Exception:
            self._reread()
            # A bug must not kill the only loop that ships data: count it and back off.
            _LOGGER.exception("Unexpected error while uploading; will retry")
            delay = self._res.on_failure(DeliveryError(ErrorCategory.SERVER, "unexpected error"))
            self._on_change()
            await self._wait(delay or 1.0)
            return False
        # Sent points were counted per accepted sub-batch in _send.
        self._res.on_success()
        self._probe_armed = True
        self._next_probe_at = None
        if self._logged_outage:
            _LOGGER.info("Delivery to %s resumed", self._active_endpoint)
            self._logged_outage = False
        self._on_change()
        if not self._handoff and not self._wait_for_handoff():
            self._next_rows = await self._read()
        return True

    def _wait_for_handoff(self) -> bool:
        """Whether to wait for the rows a running flush is about to hand over."""
        return self._expecting and self._caught_up and not self._must_read

    async def _read(self) -> Rows:
        """Delete delivered rows and read the next ones from the spool (one job)."""
        batch: Batch = await self._run_sync(
            self._spool.advance,
            self.take_delivered(),
            self._generation,
            self._last_read,
            self._max_points,
            self._max_bytes,
        )
        self._must_read = False
        self._flowing = True
        self._caught_up = len(batch.rows) < self._max_points
        if batch.generation != self._generation:
            # Another store (the spool then read from its head): ids tracked so
            # far mean nothing there.
            self._generation = batch.generation
            self._delivered.clear()
            self._handoff.clear()
            self._last_read = 0
        if batch.rows:
            self._last_read = batch.rows.ids[-1]
        return batch.rows

    def _take_handoff(self) -> Rows:
        """Rows handed over by the pipeline that directly follow the last read, if any.

        Consecutive offers join up to one batch; what is left of an offer stays
        queued (the next call skips what was taken, by id).
        """
        handoff = self._handoff
        self._drop_taken()
        first = self._last_read + 1
        payloads: list[bytes] = []
        for rows in handoff:
            next_id = first + len(payloads)
            if rows.ids[0] > next_id or len(payloads) >= self._max_points:
                break
            # Ids are consecutive: skip what an earlier call already took.
            start = next_id - rows.ids[0]
            payloads.extend(rows.payloads[start : start + self._max_points - len(payloads)])
        if not payloads:
            if handoff:
                handoff.clear()  # something lies in between: read the spool
                self._must_read = True
            return Rows()
        count = within_bytes(map(len, payloads), self._max_bytes)
        self._last_read += count
        self._caught_up = True
        self._drop_taken()  # an empty hand-over then means: read the spool
        return Rows(range(first, first + count), payloads[:count])

    def _drop_taken(self) -> None:
        """Drop offers whose rows were all sent or read from the spool already."""
        handoff = self._handoff
        while handoff and handoff[0].ids[-1] <= self._last_read:
            handoff.popleft()

    def _reread(self) -> None:
        """Forget the read position: the next batch is read from the head of the spool."""
        self._last_read = 0
        self._handoff.clear()
        self._next_rows = None
        self._flowing = False

    async def _send(self, rows: Rows) -> None:
        """Deliver ``rows``; split on 413, bisect on bad data, delete what was accepted."""
        try:
            await self._write(rows.payloads)
        except DeliveryError as err:
            if err.kind not in (ErrorKind.BAD_DATA, ErrorKind.TOO_LARGE):
                raise
            if len(rows) == 1:
                await self._quarantine(rows, err)
                return
            # Bisect: good halves get through, the bad point ends up alone.
            # InfluxDB 1.x already stored the good lines of a partial write;
            # resending them overwrites the same points (same timestamps).
            mid = len(rows) // 2
            await self._send(rows[:mid])
            await self._send(rows[mid:])
            return
        self._delivered.extend(rows.ids)
        self._res.metrics.add_events_sent(len(rows))

    async def _quarantine(self, rows: Rows, err: DeliveryError) -> None:
        """Move poison points to the dead-letter table, counted and logged once."""
        # Rows come from a read or a hand-over, and both set the generation.
        assert self._generation is not None
        moved: int = await self._run_sync(
            self._spool.quarantine,
            RowIds(self._generation, list(rows.ids)),
            err.message,
            err.category.value,
        )
        # Fewer than sent when rows left the queue meanwhile or belong to a store
        # no longer in use: count what the dead-letter table really holds.
        self._res.metrics.add_points_quarantined(moved)
        _LOGGER.warning(
            "Quarantined %d point(s) rejected by %s (%s): %s",
            moved,
            self._active_endpoint,
            err.category.value,
            err.message,
        )

    async def _write(self, payloads: Sequence[bytes]) -> None:
        """Write through the first endpoint whose breaker allows it (fallback chain)."""
        last_error: DeliveryError | None = None
        for endpoint in self._endpoints:
            breaker = endpoint.breaker
            if breaker is not None and not breaker.allow():
                continue
            try:
                await endpoint.sink.write(payloads)
            except DeliveryError as err:
                if breaker is not None:
                    if err.transient:
                        breaker.record_failure(err)
                    else:
                        breaker.release()
                if not err.transient:
                    raise
                last_error = err
                continue
            except BaseException:
                if breaker is not None:
                    breaker.release()
                raise
            if breaker is not None:
                breaker.record_success()
            self._active_endpoint = endpoint.sink.endpoint
            return
        if last_error is None:
            # Every fallback's breaker is open: fail like a network error so the
            # main schedule backs off instead of spinning.
            last_error = DeliveryError(ErrorCategory.NETWORK, "all endpoints unavailable")
        raise last_error

    def _log_failure(self, err: DeliveryError, delay: float | None) -> None:
        """Log the first failure of an outage (not every retry)."""
        if self._logged_outage:
            return
        self._logged_outage = True
        if err.kind is ErrorKind.CONFIG:
            _LOGGER.error(
                "Delivery to %s paused (%s): %s; data stays spooled until fixed",
                self._active_endpoint,
                err.category.value,
                err.message,
            )
        else:
            _LOGGER.warning(
                "Delivery to %s failed (%s): %s; retrying in %s s, data stays spooled",
                self._active_endpoint,
                err.category.value,
                err.message,
                "never (manual retry needed)" if delay is None else f"{delay:.1f}",
            )

    def _probing(self) -> bool:
        return (
            self._probe is not None
            and self._probe_armed
            and self._res.last_error_category in PROBE_CATEGORIES
        )

    async def _backoff(self, seconds: float) -> None:
        """Wait out a retry delay; probe reachability meanwhile after a refusal.

        Returns when the delay is over, when woken (new data, manual retry) or
        when a probe found the destination back; the caller then asks
        :meth:`Resilience.before_attempt` again either way.
        """
        if not self._probing():
            await self._wait(seconds)
            return
        now = self._clock.monotonic()
        if self._next_probe_at is None:
            self._next_probe_at = now + PROBE_INTERVAL
        until_probe = max(0.0, self._next_probe_at - now)
        if until_probe >= seconds:
            await self._wait(seconds)
            return
        if await self._wait(until_probe):
            return
        self._next_probe_at = self._clock.monotonic() + PROBE_INTERVAL
        if await self._reachable() and self._res.on_reachable():
            self._probe_attempt = True
            _LOGGER.debug("%s accepts connections again: retrying now", self._active_endpoint)

    async def _reachable(self) -> bool:
        """Probe each endpoint in order; half-open the breaker of one that answers."""
        assert self._probe is not None
        for endpoint in self._endpoints:
            if await self._probe(endpoint.sink.endpoint):
                if endpoint.breaker is not None:
                    endpoint.breaker.half_open_now()
                return True
        return False

    async def _wait(self, seconds: float) -> bool:
        """Sleep on the clock, ending early when woken; True when woken."""
        if self._wakeup.is_set():
            self._wakeup.clear()
            return True
        waiter = asyncio.ensure_future(self._wakeup.wait())
        sleeper = None if seconds == math.inf else asyncio.ensure_future(self._clock.sleep(seconds))
        tasks = {waiter} if sleeper is None else {waiter, sleeper}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        woken = waiter.done() and not waiter.cancelled()
        self._wakeup.clear()
        return woken

    async def _wait_resumed(self) -> None:
        """Wait for a manual retry (paused or given up); new data does not resume."""
        resumed = asyncio.ensure_future(self._res.wait_until_resumed())
        try:
            await resumed
        finally:
            if not resumed.done():
                resumed.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resumed
        self._wakeup.clear()
