"""The uploader: one loop per destination moving spooled points to the sink.

Rows leave the spool only after the destination accepted them, so a crash,
a cancellation (HA cancels background tasks early in shutdown) or a timeout
that did in fact write means a resend, never a loss; resends are harmless
because every point carries its own timestamp / idempotency key.

A rejected batch (400 / 422) is bisected to find the bad points, within
:func:`bisect_budget` requests. When more than half of the points whose fate
is known were refused, and so were points spread over the batch (its middle
and last), the destination refuses the data as such (a proxy answering plain
HTTP with 400, a receiver whose validation got stricter): that is a setup
fault (``REJECTED``), the rows stay spooled and delivery pauses (re-checked on
a slow backoff), instead of the whole backlog being quarantined point by
point. Fewer than :data:`MIN_REFUSED` refused points are enough only for a
destination that has accepted nothing yet, or in a second such batch in a
row. Otherwise the points found bad are quarantined and the rest of the batch
is sent again at once.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
import contextlib
from dataclasses import dataclass
import logging
import math
import re
from typing import Any

from .breaker import BreakerState, CircuitBreaker, Permit
from .clock import Clock
from .errors import DeliveryError, ErrorCategory, ErrorKind
from .health import format_duration
from .logthrottle import ThrottledLog
from .probe import tcp_reachable
from .resilience import Resilience
from .retry import BreakerConfig
from .sinks import Sink
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
#: Seconds before the uploader tries again after a step failed outside a delivery
#: (not shortened by new data: a lasting spool error must not spin the loop).
STEP_RETRY = 5
#: Most rows kept for the hand-over. More means the uploader fell behind: the
#: rows are in the spool anyway, and memory must not grow with a backlog.
HANDOFF_MAX_ROWS = 50_000
#: Breaker of each URL when fallback URLs exist, whatever the retry preset: a
#: blackholed or refusing URL costs two failed requests, then batches go
#: straight to the next URL; it gets a real batch again every minute and is
#: used again from its first success.
ENDPOINT_BREAKER = BreakerConfig(
    enabled=True,
    failure_threshold=2,
    reset_timeout=60.0,
    success_threshold=1,
    max_reset_timeout=60.0,
)
#: Single points spread over a rejected batch (its middle and last) that must
#: be refused too before the refusal is blamed on the destination's setup.
SPREAD_CHECKS = 2
#: Fewest points refused one by one, in one batch, that prove a setup fault on
#: their own; fewer need a second such batch in a row, or a destination that
#: has accepted nothing yet.
MIN_REFUSED = 3
_REFUSABLE = (ErrorKind.BAD_DATA, ErrorKind.TOO_LARGE)


def retrieve(task: asyncio.Future[Any]) -> None:
    """Mark an abandoned task's outcome as seen (no "exception never retrieved").

    A done callback: the task's error is handled elsewhere, or it was cancelled.
    """
    if not task.cancelled():
        task.exception()


_TAG = re.compile(r"<[^>]*>")


def _plain(text: str) -> str:
    """Server text without markup (a proxy's HTML error page), on one line."""
    return " ".join(_TAG.sub(" ", text).split())


def bisect_budget(points: int) -> int:
    """Most requests one batch of ``points`` may cost, its first write included.

    Enough to bisect one bad point out of any batch (2 per halving) with room
    for a few more and the spread checks; a destination refusing everything
    costs this many requests per batch, not ``2 * points - 1``.
    """
    return 2 * math.ceil(math.log2(points)) + 8 if points > 1 else 1


@dataclass(slots=True)
class _Outcome:
    """What a batch came to: points accepted, and whether rows were left unresolved."""

    accepted: int
    unresolved: bool = False
    error: DeliveryError | None = None


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
        # Consecutive batches most of whose checked points were refused.
        self._refused_streak = 0
        # Whether the destination accepted any point since this uploader started.
        self._accepted_any = False
        self._throttle = ThrottledLog(_LOGGER, monotonic=clock.monotonic)
        resilience.endpoint_states = self.endpoint_states

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

    def untake_delivered(self, delivered: RowIds | None) -> None:
        """Keep ids :meth:`take_delivered` gave out whose delete failed, for the next one.

        Dropped, those rows would stay spooled and be sent again after a reread.
        """
        if delivered is not None and delivered.generation == self._generation:
            self._delivered[:0] = delivered.ids

    def retry_now(self) -> None:
        """Manual retry: leave paused / given-up / backoff and try at once."""
        self._res.manual_retry()
        self.reset_endpoint_breakers()
        self.wake()

    def reset_endpoint_breakers(self) -> bool:
        """Close every URL's breaker; return whether one was not closed."""
        was_open = False
        for endpoint in self._endpoints:
            if endpoint.breaker is not None:
                was_open |= endpoint.breaker.state is not BreakerState.CLOSED
                endpoint.breaker.reset()
        return was_open

    def endpoint_states(self) -> list[dict[str, Any]]:
        """Each URL (without credentials) with its breaker state, for diagnostics."""
        return [
            {
                "url": endpoint.sink.endpoint,
                "breaker_state": (
                    None if endpoint.breaker is None else endpoint.breaker.state.value
                ),
                "breaker": None if endpoint.breaker is None else endpoint.breaker.as_dict(),
            }
            for endpoint in self._endpoints
        ]

    async def run(self) -> None:
        """Deliver forever; cancellation-safe (nothing is deleted before acceptance).

        A step that fails outside a delivery (a spool read that raises) is logged
        (throttled, with its traceback) and tried again after
        :data:`STEP_RETRY` seconds: it must not end the only loop that ships data.
        """
        while True:
            try:
                await self.run_once()
            except Exception:  # noqa: BLE001 - logged below with its traceback (throttled)
                self._reread()
                self._throttle.log(
                    logging.ERROR,
                    "step",
                    "Uploading to %s failed outside a delivery; trying again in %d s",
                    self._active_endpoint,
                    STEP_RETRY,
                    exc_info=True,
                )
                self._on_change()
                await self._clock.sleep(STEP_RETRY)

    async def run_once(self) -> bool:
        """Do one step: deliver one batch, or wait. Returns True when a batch was sent."""
        # Asked before reading: during a backoff new data wakes the loop every
        # flush, and reading a batch only to leave it would cost a spool job each time.
        wait = self._res.attempt_due_in()
        if wait > 0:
            await self._hold(wait)
            return False
        ahead, self._next_rows = self._next_rows, None
        rows = ahead or self._take_handoff()
        if not rows and ahead is None and not self._wait_for_handoff():
            rows = await self._read()
        if not rows:
            await self._wait(math.inf)
            return False
        wait = self._res.before_attempt()
        if wait > 0:
            await self._hold(wait)
            return False
        probed, self._probe_attempt = self._probe_attempt, False
        # Draining a backlog to a destination that accepts: read the next batch
        # while this one is in flight, so it is not left idle while the spool
        # is read (after a failure, the batch may well have to wait).
        ahead_task = (
            asyncio.ensure_future(self._read_ahead())
            # Not caught up: no hand-over to wait for (see _wait_for_handoff).
            if not self._caught_up and self._res.consecutive_failures == 0 and not self._handoff
            else None
        )
        try:
            outcome = await self._send(rows)
        except DeliveryError as err:
            await self._settle(ahead_task)
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
            if ahead_task is not None:
                ahead_task.cancel()
                ahead_task.add_done_callback(retrieve)
            self._reread()
            self._res.on_cancel()
            raise
        except Exception:  # noqa: BLE001 - logged below with its traceback (throttled)
            await self._settle(ahead_task)
            self._reread()
            # A bug must not kill the only loop that ships data: count it and back off.
            self._throttle.log(
                logging.ERROR,
                "unexpected",
                "Unexpected error while uploading to %s; will retry",
                self._active_endpoint,
                exc_info=True,
            )
            delay = self._res.on_failure(DeliveryError(ErrorCategory.SERVER, "unexpected error"))
            self._on_change()
            await self._wait(delay or 1.0)
            return False
        if outcome.unresolved:
            await self._settle(ahead_task)
            ahead_task = None
            self._reread()  # the rest of the batch is still at the head of the spool
        if not outcome.accepted:
            await self._settle(ahead_task)
            # Only points found bad (quarantined): the link proved nothing either way.
            assert outcome.error is not None
            self._res.on_failure(outcome.error)
            self._on_change()
            return True
        # Sent points were counted per accepted sub-batch in _send.
        outage = self._res.outage_seconds()
        self._res.on_success()
        self._probe_armed = True
        self._next_probe_at = None
        if self._logged_outage:
            _LOGGER.info(
                "Delivery to %s resumed%s",
                self._active_endpoint,
                "" if outage is None else f" after {format_duration(outage)}",
            )
            self._logged_outage = False
        self._on_change()
        read_ahead = await self._settle(ahead_task)
        if read_ahead is not None and read_ahead.rows:
            self._next_rows = self._take_batch(read_ahead)
        elif not outcome.unresolved and not self._handoff and not self._wait_for_handoff():
            # Nothing more (or not read ahead): read, which also deletes this batch.
            self._next_rows = await self._read()
        return True

    async def _hold(self, wait: float) -> None:
        """No attempt is due: leave the rows in the spool and wait."""
        self._reread()  # these rows wait in the spool; read them again later
        self._on_change()
        if wait == math.inf:
            await self._wait_resumed()
        else:
            await self._backoff(wait)

    def _wait_for_handoff(self) -> bool:
        """Whether to wait for the rows a running flush is about to hand over."""
        return self._expecting and self._caught_up and not self._must_read

    async def _read(self) -> Rows:
        """Delete delivered rows and read the next ones from the spool (one job)."""
        return self._take_batch(await self._fetch())

    async def _fetch(self) -> Batch:
        """Delete delivered rows and read the rows after the last read (uploader state unchanged).

        When the read fails, the delivered ids are kept for the next delete.
        """
        delivered = self.take_delivered()
        try:
            batch: Batch = await self._run_sync(
                self._spool.advance,
                delivered,
                self._generation,
                self._last_read,
                self._max_points,
                self._max_bytes,
            )
        except BaseException:
            self.untake_delivered(delivered)
            raise
        return batch

    async def _read_ahead(self) -> Batch:
        """:meth:`_fetch`, then have the sink last used encode the request body meanwhile."""
        batch = await self._fetch()
        if batch.rows:
            sink = next(e.sink for e in self._endpoints if e.sink.endpoint == self._active_endpoint)
            # A failure here shows again, and is handled, when the batch is written.
            with contextlib.suppress(Exception):
                await sink.prepare(batch.rows.payloads)
        return batch

    @staticmethod
    async def _settle(task: asyncio.Future[Batch] | None) -> Batch | None:
        """Let a read ahead finish; return its batch, or None when it failed (or there was none).

        What it deleted was delivered, and a failed read changes nothing: the
        next read repeats it, and raises its error.
        """
        if task is None:
            return None
        try:
            return await task
        except Exception:  # noqa: BLE001 - the next read repeats it and raises
            return None

    def _take_batch(self, batch: Batch) -> Rows:
        """Adopt a batch read from the spool: its rows are the next to send."""
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

    async def _send(self, rows: Rows) -> _Outcome:
        """Deliver ``rows``; split on 413, bisect on bad data (see the module doc)."""
        try:
            await self._write(rows.payloads)
        except DeliveryError as err:
            if err.kind not in _REFUSABLE:
                raise
            return await self._bisect(rows, err)
        self._accept(rows)
        self._refused_streak = 0
        return _Outcome(len(rows))

    def _accept(self, rows: Rows) -> None:
        self._accepted_any = True
        self._delivered.extend(rows.ids)
        self._res.metrics.add_events_sent(len(rows))

    async def _bisect(self, rows: Rows, first: DeliveryError) -> _Outcome:
        """Find the refused points of a rejected batch within :func:`bisect_budget`.

        Depth first, left half first, as the batch was sent: a half that is
        accepted is done, a single point refused is known bad. What the budget
        leaves unexplored stays spooled for the next attempt, which comes at
        once, so every attempt settles at least one part. Raises ``REJECTED``
        (nothing quarantined) when the refusals look like the destination's
        setup rather than bad points (see the module doc).
        """
        budget = bisect_budget(len(rows)) - 1 - SPREAD_CHECKS
        refused: dict[int, DeliveryError] = {}  # index of a point refused alone
        spans: list[tuple[int, int]] = []  # index ranges accepted
        stack: list[tuple[int, int]] = []  # index ranges to send; left half on top
        unresolved = False
        last = first

        def split(start: int, stop: int, err: DeliveryError) -> None:
            if stop - start == 1:
                refused[start] = err
            else:
                mid = (start + stop) // 2
                stack.extend(((mid, stop), (start, mid)))

        split(0, len(rows), first)
        while stack:
            start, stop = stack.pop()
            if budget <= 0:
                unresolved = True
                continue
            budget -= 1
            try:
                await self._write(rows[start:stop].payloads)
            except DeliveryError as err:
                if err.kind not in _REFUSABLE:
                    raise
                last = err
                split(start, stop, err)
                continue
            self._accept(rows[start:stop])
            spans.append((start, stop))

        if self._mostly_refused(refused, spans):
            spread = await self._spread_refused(rows, refused, spans)
            bad = self._bad(refused)
            if (
                spread is not None
                and self._mostly_refused(refused, spans)
                and (bad >= MIN_REFUSED or self._refused_streak > 0 or not self._accepted_any)
            ):
                self._refused_streak += 1
                accepted = sum(stop - start for start, stop in spans)
                raise DeliveryError(
                    ErrorCategory.REJECTED,
                    f"the destination refuses the data it is sent ({bad} points "
                    f"refused one by one, {accepted} accepted): {_plain(spread.message)}",
                    status=spread.status,
                )
            self._refused_streak += 1
        else:
            self._refused_streak = 0
        await self._quarantine([(rows[i : i + 1], err) for i, err in sorted(refused.items())])
        return _Outcome(
            sum(stop - start for start, stop in spans), unresolved=unresolved, error=last
        )

    @staticmethod
    def _bad(refused: dict[int, DeliveryError]) -> int:
        return sum(1 for err in refused.values() if err.kind is ErrorKind.BAD_DATA)

    def _mostly_refused(
        self, refused: dict[int, DeliveryError], spans: list[tuple[int, int]]
    ) -> bool:
        """Whether more than half of the points whose fate is known were refused as bad."""
        bad = self._bad(refused)
        return 2 * bad > bad + sum(stop - start for start, stop in spans)

    async def _spread_refused(
        self, rows: Rows, refused: dict[int, DeliveryError], spans: list[tuple[int, int]]
    ) -> DeliveryError | None:
        """Whether the batch's middle and last points are refused too; sends them alone.

        Points whose fate is known are not sent again; what is learnt joins
        ``refused`` / ``spans``. Returns the refusal when every spread point was
        refused as bad data (a batch of one or two points is all known), else None.
        """
        if len(rows) <= SPREAD_CHECKS:
            return next(iter(refused.values()))
        error: DeliveryError | None = None
        for i in (len(rows) // 2, len(rows) - 1):
            if any(start <= i < stop for start, stop in spans):
                return None
            if i not in refused:
                single = rows[i : i + 1]
                try:
                    await self._write(single.payloads)
                except DeliveryError as err:
                    if err.kind not in _REFUSABLE:
                        raise
                    refused[i] = err
                else:
                    self._accept(single)
                    spans.append((i, i + 1))
                    return None
            if refused[i].kind is not ErrorKind.BAD_DATA:
                return None
            error = refused[i]
        return error

    async def _quarantine(self, refused: list[tuple[Rows, DeliveryError]]) -> None:
        """Move poison points to the dead-letter table, counted; logged once per interval."""
        if not refused:
            return
        # Rows come from a read or a hand-over, and both set the generation.
        assert self._generation is not None
        groups: dict[tuple[str, ErrorCategory], list[int]] = {}
        for part, err in refused:
            groups.setdefault((err.message, err.category), []).extend(part.ids)
        for (message, category), ids in groups.items():
            moved: int = await self._run_sync(
                self._spool.quarantine,
                RowIds(self._generation, ids),
                message,
                category.value,
            )
            # Fewer than sent when rows left the queue meanwhile or belong to a store
            # no longer in use: count what the dead-letter table really holds.
            self._res.metrics.add_points_quarantined(moved)
            self._throttle.warning(
                f"quarantine {category.value}",
                "Quarantined %d point(s) rejected by %s (%s): %s",
                moved,
                self._active_endpoint,
                category.value,
                message,
            )

    async def _write(self, payloads: Sequence[bytes]) -> None:
        """Write through the first endpoint whose breaker allows it (fallback chain).

        When every endpoint tried failed, the error raised is the last one with
        the longest ``Retry-After`` any of them sent.
        """
        last_error: DeliveryError | None = None
        retry_after: float | None = None
        for endpoint in self._endpoints:
            breaker = endpoint.breaker
            permit: Permit | None = None
            if breaker is not None:
                permit = breaker.allow()
                if permit is None:
                    continue
            try:
                await endpoint.sink.write(payloads)
            except DeliveryError as err:
                if breaker is not None and permit is not None:
                    breaker.record_failure(permit, err)
                if not err.transient:
                    raise
                last_error = err
                if err.retry_after is not None:
                    retry_after = max(retry_after or 0.0, err.retry_after)
                continue
            except BaseException:
                if breaker is not None and permit is not None:
                    breaker.release(permit)
                raise
            if breaker is not None and permit is not None:
                breaker.record_success(permit)
            self._use_endpoint(endpoint.sink.endpoint)
            return
        if last_error is None:
            # Every fallback's breaker is open: fail like a network error that
            # asks to come back when the first of them lets a batch through.
            reopen = min(
                (e.breaker.seconds_until_half_open() for e in self._endpoints if e.breaker),
                default=0.0,
            )
            raise DeliveryError(
                ErrorCategory.NETWORK, "all endpoints unavailable", retry_after=reopen or None
            )
        if retry_after is not None and retry_after != last_error.retry_after:
            last_error = DeliveryError(
                last_error.category,
                last_error.message,
                status=last_error.status,
                retry_after=retry_after,
            )
        raise last_error

    def _use_endpoint(self, url: str) -> None:
        if url != self._active_endpoint:
            primary = url == self._endpoints[0].sink.endpoint
            _LOGGER.info(
                "Delivering to %s (%s)", url, "primary URL again" if primary else "fallback URL"
            )
            self._active_endpoint = url

    def _log_failure(self, err: DeliveryError, delay: float | None) -> None:
        """One line per outage (not per retry); the next success logs one more.

        A destination that is down is routine (INFO: it comes back by itself);
        a setup fault the user must fix, and giving up, are WARNINGs, once.
        """
        if self._logged_outage:
            return
        self._logged_outage = True
        if err.kind is ErrorKind.CONFIG:
            _LOGGER.warning(
                "Delivery to %s paused (%s): %s; data stays spooled, the destination is "
                "checked again every few minutes",
                self._active_endpoint,
                err.category.value,
                err.message,
            )
        elif delay is None:
            _LOGGER.warning(
                "Delivery to %s stopped after %d failed attempts (%s): %s; data stays "
                "spooled until a manual retry",
                self._active_endpoint,
                self._res.consecutive_failures,
                err.category.value,
                err.message,
            )
        else:
            _LOGGER.info(
                "Destination %s unavailable (%s): %s; retrying, data stays spooled",
                self._active_endpoint,
                err.category.value,
                err.message,
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
            if pending := [task for task in tasks if not task.done()]:
                for task in pending:
                    task.cancel()
                # Not ``suppress(CancelledError): await task``: that would also swallow a
                # cancellation of this task landing meanwhile (an unload or FINAL_WRITE
                # cancelling the uploader), which would then never stop.
                await asyncio.wait(pending)
        woken = waiter.done() and not waiter.cancelled()
        self._wakeup.clear()
        return woken

    async def _wait_resumed(self) -> None:
        """Wait for a manual retry (paused or given up); new data does not resume."""
        await self._res.wait_until_resumed()
        self._wakeup.clear()
