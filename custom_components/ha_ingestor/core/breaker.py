"""Circuit breaker with a single half-open probe, on the injectable monotonic clock.

States: ``closed`` (calls flow) -> ``open`` after ``failure_threshold``
consecutive *transient* failures -> ``half_open`` once the open period elapsed
(checked lazily, no timers) -> ``closed`` after ``success_threshold``
consecutive successful probes, or back to ``open`` on a failed probe with the
open period doubled (capped at ``max_reset_timeout``).

Design choices, each fixing a defect seen in PyPI breakers:

* Half-open admits exactly one probe at a time; concurrent callers are refused
  until the probe reports. :meth:`CircuitBreaker.allow` hands out a
  :class:`Permit` and every result method takes it back: only the permit that
  took the probe slot can free it, close the circuit or re-open it, and a
  permit counts once. A result arriving after the state moved on (a call
  admitted before the circuit opened, a probe of an earlier half-open period,
  a call from before a reset) is stale: it shows in the statistics and
  changes nothing else. This holds however calls interleave.
* Only transient errors (network, timeout, dns, rate limited, server) count.
  Config faults, bad data, too-large batches and local storage errors neither
  trip the breaker nor reset its count: they say nothing about whether the
  destination is *available* (a 401 or a 400 proves it answers, but the write
  still did not succeed), and the pipeline handles them elsewhere (pause,
  bisect, split). Resetting on them would let an outage hide behind an
  occasional bad batch.
* Cancellation (``CancelledError``) and unexpected exceptions are not
  verdicts on the destination: the slot is released and nothing is counted.
* A disabled breaker (aggressive preset) always allows and never opens.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
import logging
from typing import Any

from .clock import Clock
from .errors import TRANSIENT_CATEGORIES, DeliveryError, ErrorCategory
from .retry import BreakerConfig

_LOGGER = logging.getLogger(__name__)


class BreakerState(StrEnum):
    """State of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """Raised by :meth:`CircuitBreaker.call` when the call is refused."""

    def __init__(self, retry_in: float, *, probe_busy: bool = False) -> None:
        """Create the error; ``retry_in`` is the wait before asking again."""
        reason = "a probe is in flight" if probe_busy else f"retry in {retry_in:.1f} s"
        super().__init__(f"circuit open: {reason}")
        self.retry_in = retry_in
        self.probe_busy = probe_busy


type StateListener = Callable[[BreakerState, BreakerState], None]


class Permit:
    """Admission to one call, from :meth:`CircuitBreaker.allow`; settle it exactly once.

    ``epoch`` is the breaker's state period the call was admitted in; ``probe``
    tells whether it holds the half-open probe slot.
    """

    __slots__ = ("epoch", "probe", "spent")

    def __init__(self, epoch: int, *, probe: bool) -> None:
        """Create a permit of state period ``epoch``."""
        self.epoch = epoch
        self.probe = probe
        self.spent = False

    def __repr__(self) -> str:
        """Debug representation."""
        kind = "probe" if self.probe else "call"
        return f"Permit({kind}, epoch={self.epoch}, spent={self.spent})"


class CircuitBreaker:
    """Per-destination circuit breaker.

    Low-level use (what :class:`~.resilience.Resilience` does)::

        if (permit := breaker.allow()) is not None:  # may hold the probe slot
            try:
                await write()
            except DeliveryError as err:
                breaker.record_failure(permit, err)
            except asyncio.CancelledError:
                breaker.release(permit)
                raise
            else:
                breaker.record_success(permit)

    Every permit must be settled with exactly one of :meth:`record_success`,
    :meth:`record_failure` or :meth:`release`; a second settlement of the
    same permit is ignored. :meth:`guard` and :meth:`call` do this for you.
    """

    def __init__(
        self,
        config: BreakerConfig,
        clock: Clock,
        *,
        name: str = "",
        listener: StateListener | None = None,
    ) -> None:
        """Create a closed breaker; ``listener(old, new)`` is called on transitions."""
        self._config = config
        self._clock = clock
        self._name = name
        self._listener = listener
        self._state = BreakerState.CLOSED
        self._entered = clock.monotonic()
        self._failures = 0  # consecutive transient failures while closed
        self._successes = 0  # consecutive successful probes while half-open
        self._opened_count = 0
        self._open_timeout = config.reset_timeout
        self._opened_at = 0.0
        # Bumped on every state change and reset: permits of an older period are stale.
        self._epoch = 0
        self._probe: Permit | None = None
        self._total_failures = 0
        self._total_successes = 0
        self._refused = 0

    # --- inspection ---------------------------------------------------------------

    @property
    def config(self) -> BreakerConfig:
        """The breaker settings."""
        return self._config

    @property
    def enabled(self) -> bool:
        """Whether the breaker can open at all."""
        return self._config.enabled

    @property
    def state(self) -> BreakerState:
        """Current state (moves open -> half-open once the open period elapsed)."""
        self._maybe_half_open()
        return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive transient failures counted towards opening."""
        return self._failures

    @property
    def success_count(self) -> int:
        """Consecutive successful probes while half-open."""
        return self._successes

    @property
    def opened_count(self) -> int:
        """How many times the circuit opened (including re-opens after a probe)."""
        return self._opened_count

    @property
    def refused_count(self) -> int:
        """How many calls were refused."""
        return self._refused

    @property
    def open_timeout(self) -> float:
        """Length of the current (or next) open period in seconds."""
        return self._open_timeout

    @property
    def probe_in_flight(self) -> bool:
        """Whether the half-open probe slot is taken."""
        self._maybe_half_open()
        return self._probe is not None

    def time_in_state(self) -> float:
        """Seconds since the current state was entered."""
        self._maybe_half_open()
        return max(0.0, self._clock.monotonic() - self._entered)

    def seconds_until_half_open(self) -> float:
        """Seconds until a probe may be attempted; 0 unless the circuit is open."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._open_timeout - self._clock.monotonic())

    def as_dict(self) -> dict[str, Any]:
        """Diagnostics snapshot."""
        return {
            "enabled": self._config.enabled,
            "state": self.state.value,
            "failure_count": self._failures,
            "success_count": self._successes,
            "opened_count": self._opened_count,
            "refused_count": self._refused,
            "open_timeout": self._open_timeout,
            "seconds_until_half_open": self.seconds_until_half_open(),
            "time_in_state": self.time_in_state(),
            "probe_in_flight": self.probe_in_flight,
            "total_failures": self._total_failures,
            "total_successes": self._total_successes,
        }

    # --- low-level API --------------------------------------------------------------

    def allow(self) -> Permit | None:
        """Ask to make a call: a :class:`Permit` admits it, ``None`` refuses it.

        In half-open the permit holds the single probe slot until it is settled.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit(self._epoch, probe=False)
        if state is BreakerState.HALF_OPEN and self._probe is None:
            self._probe = Permit(self._epoch, probe=True)
            return self._probe
        self._refused += 1
        return None

    def record_success(self, permit: Permit) -> None:
        """Report that the call admitted by ``permit`` succeeded."""
        if permit.spent:
            return
        self._total_successes += 1
        if not self._settle(permit):
            return
        if self._state is BreakerState.CLOSED:
            self._failures = 0
        elif permit.probe:
            self._successes += 1
            if self._successes >= self._config.success_threshold:
                self._open_timeout = self._config.reset_timeout
                self._failures = 0
                self._transition(BreakerState.CLOSED)

    def record_failure(self, permit: Permit, err: DeliveryError | ErrorCategory) -> None:
        """Report that the call admitted by ``permit`` failed; only transient categories count."""
        if permit.spent:
            return
        category = err.category if isinstance(err, DeliveryError) else err
        if category not in TRANSIENT_CATEGORIES:
            # Not a verdict on availability: free the slot, keep the counts.
            self._settle(permit)
            return
        self._total_failures += 1
        if not self._settle(permit):
            return
        if self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._config.enabled and self._failures >= self._config.failure_threshold:
                self._open()
        elif permit.probe:
            self._open_timeout = min(self._open_timeout * 2, self._config.max_reset_timeout)
            self._open()

    def release(self, permit: Permit) -> None:
        """Give back an admitted call without a verdict (cancelled, nothing sent)."""
        if not permit.spent:
            self._settle(permit)

    def half_open_now(self) -> None:
        """End an open period early: the destination was seen listening again.

        The next call is the single half-open probe; if it fails, the circuit
        re-opens with the usual growing period, so a false hope costs one call.
        """
        if self.state is BreakerState.OPEN:
            self._successes = 0
            self._transition(BreakerState.HALF_OPEN)

    def reset(self) -> None:
        """Close the circuit and forget all counts (manual retry); outstanding permits go stale."""
        self._failures = 0
        self._successes = 0
        self._open_timeout = self._config.reset_timeout
        self._epoch += 1
        self._probe = None
        self._transition(BreakerState.CLOSED)

    # --- high-level API ---------------------------------------------------------------

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Async context manager around one call.

        Raises :class:`CircuitOpenError` when refused. A :class:`DeliveryError`
        escaping the block is recorded (and re-raised); any other exception,
        including ``CancelledError``, only releases the slot.
        """
        permit = self.allow()
        if permit is None:
            raise CircuitOpenError(
                self.seconds_until_half_open(),
                probe_busy=self._state is BreakerState.HALF_OPEN,
            )
        try:
            yield
        except DeliveryError as err:
            self.record_failure(permit, err)
            raise
        except BaseException:
            self.release(permit)
            raise
        else:
            self.record_success(permit)

    async def call[T](self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``await fn()`` under :meth:`guard` and return its result."""
        async with self.guard():
            return await fn()

    # --- internals ----------------------------------------------------------------------

    def _settle(self, permit: Permit) -> bool:
        """Spend ``permit``; return whether its result may change the state.

        It may only when it was admitted in the current state period and, in
        half-open, when it is the permit holding the probe slot (which it frees).
        """
        permit.spent = True
        self._maybe_half_open()
        if permit.epoch != self._epoch:
            return False
        if self._state is BreakerState.HALF_OPEN:
            if self._probe is not permit:
                return False
            self._probe = None
            return True
        return self._state is BreakerState.CLOSED

    def _open(self) -> None:
        reopening = self._state is BreakerState.HALF_OPEN
        self._opened_count += 1
        self._opened_at = self._clock.monotonic()
        self._successes = 0
        self._transition(BreakerState.OPEN, entered=self._opened_at)
        # The uploader logs the outage once; the breaker's own steps are detail.
        if reopening:
            _LOGGER.debug(
                "Circuit breaker %s probe failed; open for %.0f s", self._name, self._open_timeout
            )
        else:
            _LOGGER.debug(
                "Circuit breaker %s opened for %.0f s after %d consecutive failures",
                self._name,
                self._open_timeout,
                self._failures,
            )

    def _maybe_half_open(self) -> None:
        if self._state is BreakerState.OPEN:
            deadline = self._opened_at + self._open_timeout
            if self._clock.monotonic() >= deadline:
                self._successes = 0
                # The state began when the period elapsed, not when someone looked.
                self._transition(BreakerState.HALF_OPEN, entered=deadline)

    def _transition(self, new: BreakerState, *, entered: float | None = None) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        self._epoch += 1
        self._probe = None
        self._entered = self._clock.monotonic() if entered is None else entered
        _LOGGER.debug("Circuit breaker %s: %s -> %s", self._name, old, new)
        if self._listener is not None:
            try:
                self._listener(old, new)
            except Exception:
                _LOGGER.exception("Circuit breaker listener failed")
