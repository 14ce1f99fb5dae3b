"""Resilience facade: retry schedule + circuit breaker + connection state + metrics.

One :class:`Resilience` per destination endpoint. The uploader drives it::

    while True:
        if res.attempt_due_in() > 0:      # nothing is read while waiting
            ...                           # sleep (or wait_until_resumed on inf)
            continue
        batch = read()
        wait = res.before_attempt()
        if wait == math.inf:              # gave up (limited preset)
            await res.wait_until_resumed()
            continue
        if wait > 0:
            await clock.sleep(wait)       # may be woken early; just ask again
            continue
        try:
            await sink.write(batch)
        except DeliveryError as err:
            if err.kind in (ErrorKind.BAD_DATA, ErrorKind.TOO_LARGE):
                res.on_failure(err)       # returns 0.0: split / bisect now
                ...
            else:
                res.on_failure(err)       # schedules the retry (or pauses)
            continue
        except asyncio.CancelledError:
            res.on_cancel()
            raise
        res.on_success(points=len(batch))

Contract: every :meth:`Resilience.before_attempt` that returned ``0.0`` must be
followed by exactly one of :meth:`~Resilience.on_success`,
:meth:`~Resilience.on_failure` or :meth:`~Resilience.on_cancel` (also when
the uploader then finds nothing to send), because in half-open it holds the
breaker's only probe slot.

How each error kind is treated by :meth:`Resilience.on_failure`:

* transient (network, timeout, dns, rate limited, server): counts for the
  breaker, advances the retry schedule, honours Retry-After; returns the
  delay, or ``None`` when the limited preset gives up (state ``stopped``).
* config (auth, not found, TLS, rejected): state ``paused``; returns the
  delay of a slow re-check (:data:`PAUSE_RECHECK_MIN` doubling up to
  :data:`PAUSE_RECHECK_MAX`, jittered): a real write of the head batch, so a
  reverse proxy serving a 404 or its default certificate for a few seconds
  does not stop delivery until someone notices. The state stays ``paused``
  (and the reauth / repair stays raised) until a write succeeds;
  :meth:`Resilience.manual_retry` (after reauth/repair) tries at once.
* bad data / too large: the destination answered, so the batch, not the
  connection, is the problem. Stages and the breaker are untouched and
  ``0.0`` is returned: the uploader splits or bisects and goes on at once.
* storage (local spool failure): not the destination's fault; the breaker
  and stages are untouched and a short fixed delay is returned.
"""

import asyncio
from collections.abc import Callable
import math
import random
from typing import Any

from .breaker import BreakerState, CircuitBreaker, Permit
from .clock import Clock
from .errors import DeliveryError, ErrorCategory, ErrorKind
from .health import HealthInputs, HealthReport, HealthTolerances, assess_health
from .metrics import Metrics
from .retry import RetryPolicy, RetrySchedule, RetryStage, apply_jitter
from .state import ConnectionState, ConnectionStateMachine, Transition, TransitionListener

#: Wait returned while another task holds the half-open probe slot.
PROBE_BUSY_WAIT = 1.0
#: Shortest wait after a local storage error (never a hot loop).
STORAGE_RETRY_MIN = 1.0
#: First re-check of a destination paused by a configuration fault; each
#: further failed re-check doubles the wait up to :data:`PAUSE_RECHECK_MAX`
#: (before jitter).
PAUSE_RECHECK_MIN = 60.0
PAUSE_RECHECK_MAX = 900.0


class Resilience:
    """Decides when the uploader may write and records what happened."""

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Clock,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        *,
        name: str = "",
        history_size: int = 50,
        listener: TransitionListener | None = None,
    ) -> None:
        """Create the engine; ``listener`` sees every connection state transition."""
        self._policy = policy
        self._clock = clock
        self._name = name
        self._metrics = metrics if metrics is not None else Metrics(clock)
        # Jitter is not security sensitive; a plain PRNG is what we want.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._schedule = RetrySchedule(policy, self._rng)
        self._breaker = CircuitBreaker(policy.breaker, clock, name=name)
        self._listener = listener
        self._machine = ConnectionStateMachine(
            clock, history_size=history_size, listener=self._on_transition
        )
        self._metrics.set_state(self._machine.state.value)
        self._started = clock.monotonic()
        self._consecutive_failures = 0
        self._next_retry_at: float | None = None
        self._last_error: DeliveryError | None = None
        self._last_error_wall: float | None = None
        self._last_success_monotonic: float | None = None
        self._last_success_wall: float | None = None
        self._outage_started: float | None = None
        self._outage_started_wall: float | None = None
        self._paused_reason: ErrorCategory | None = None
        self._rechecks = 0  # failed re-checks while paused, since the last success
        # Admission of the attempt in flight (holds the half-open probe slot).
        self._permit: Permit | None = None
        #: The uploader's URLs with their breakers, for diagnostics (set by it).
        self.endpoint_states: Callable[[], list[dict[str, Any]]] | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()

    # --- the uploader's calls ----------------------------------------------------------

    def attempt_due_in(self) -> float:
        """Seconds until an attempt may be made (0.0: now); takes nothing.

        The uploader asks this before reading the spool, so a backoff costs no
        reads. ``math.inf`` means given up: wait for :meth:`manual_retry`.
        """
        if self.gave_up:
            return math.inf
        now = self._clock.monotonic()
        if self._next_retry_at is not None and now < self._next_retry_at:
            return self._next_retry_at - now
        if self.paused and self._next_retry_at is None:
            return math.inf
        match self._breaker.state:
            case BreakerState.OPEN:
                self._circuit_open()
                return self._breaker.seconds_until_half_open() or PROBE_BUSY_WAIT
            case BreakerState.HALF_OPEN if self._breaker.probe_in_flight:
                return PROBE_BUSY_WAIT
        return 0.0

    def before_attempt(self) -> float:
        """Return 0.0 to attempt now, else the seconds to wait before asking again.

        ``math.inf`` means given up: wait for :meth:`manual_retry` (see
        :meth:`wait_until_resumed`). A positive wait comes from the scheduled
        retry (or paused re-check) time, an open circuit, or a busy half-open
        probe. 0.0 admits the attempt through the breaker: settle it with
        :meth:`on_success`, :meth:`on_failure` or :meth:`on_cancel`.
        """
        wait = self.attempt_due_in()
        if wait > 0:
            return wait
        if self._permit is not None:
            # An admission that was never settled: no verdict.
            self._breaker.release(self._permit)
        self._permit = self._breaker.allow()
        if self._permit is None:
            self._circuit_open()
            return self._breaker.seconds_until_half_open() or PROBE_BUSY_WAIT
        if self._machine.state is ConnectionState.DISCONNECTED:
            self._machine.transition(ConnectionState.CONNECTING, "first attempt")
        return 0.0

    def on_success(self, points: int = 0) -> None:
        """Record a successful write of ``points`` points; back to the first stage."""
        now = self._clock.monotonic()
        if (permit := self._take_permit()) is not None:
            self._breaker.record_success(permit)
        self._metrics.record_attempt()
        self._metrics.record_success(points)
        if self._outage_started is not None:
            self._metrics.record_recovery(now - self._outage_started)
            self._outage_started = None
        self._outage_started_wall = None
        self._rechecks = 0
        self._schedule.reset()
        self._consecutive_failures = 0
        self._next_retry_at = None
        self._paused_reason = None
        self._last_success_monotonic = now
        self._last_success_wall = self._clock.time()
        self._set_resumed(resumed=True)
        self._machine.transition(ConnectionState.ACTIVE, "write succeeded")
        self._update_gauges()

    def on_failure(self, err: DeliveryError) -> float | None:
        """Record a failed write; return the delay before the next attempt.

        ``None`` means no automatic retry: given up (limited preset). A config
        fault pauses and returns the delay of the next re-check. ``0.0`` for
        bad data / too large (split, bisect).
        """
        self._metrics.record_attempt()
        self._metrics.record_failure(err.category)
        self._last_error = err
        self._last_error_wall = self._clock.time()
        match err.kind:
            case ErrorKind.CONFIG:
                return self._pause(err)
            case ErrorKind.BAD_DATA | ErrorKind.TOO_LARGE:
                # The destination answered: the batch is at fault, not the link.
                self._release_permit()
                return 0.0
            case ErrorKind.STORAGE:
                self._release_permit()
                delay = max(STORAGE_RETRY_MIN, self._policy.stages[0].base_delay)
                self._next_retry_at = self._clock.monotonic() + delay
                return delay
            case _:
                return self._transient_failure(err)

    def on_cancel(self) -> None:
        """Record a cancelled attempt (or one that sent nothing): no verdict, free the slot."""
        self._release_permit()

    def on_reachable(self) -> bool:
        """Note that a connectivity probe found the destination listening again.

        Moves the scheduled retry (and an open circuit's half-open time) to now,
        so delivery resumes within a probe interval of the server's return
        instead of after the rest of a backoff delay. The stage is kept: if the
        attempt fails, backoff carries on from where it was. Returns whether a
        wait was cut short.
        """
        if self.halted or self._next_retry_at is None:
            return False
        now = self._clock.monotonic()
        if now >= self._next_retry_at and self._breaker.state is not BreakerState.OPEN:
            return False
        self._next_retry_at = now
        self._breaker.half_open_now()
        return True

    def manual_retry(self) -> None:
        """User asked to retry: leave paused / gave-up, reset stages and breaker."""
        self._schedule.reset()
        self._breaker.reset()
        self._paused_reason = None
        self._next_retry_at = None
        self._rechecks = 0
        state = self._machine.state
        if state.halted or state.retrying or state is ConnectionState.CIRCUIT_OPEN:
            self._machine.transition(ConnectionState.CONNECTING, "manual retry")
        self._set_resumed(resumed=True)
        self._update_gauges()

    async def wait_until_resumed(self) -> None:
        """Return once not paused / given up (immediately if already so)."""
        await self._resumed.wait()

    # --- facts ----------------------------------------------------------------------------

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy."""
        return self._policy

    @property
    def metrics(self) -> Metrics:
        """The metrics this engine feeds."""
        return self._metrics

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker."""
        return self._breaker

    @property
    def schedule(self) -> RetrySchedule:
        """The retry schedule."""
        return self._schedule

    @property
    def state_machine(self) -> ConnectionStateMachine:
        """The connection state machine (history, time in state)."""
        return self._machine

    @property
    def state(self) -> ConnectionState:
        """Current connection state."""
        return self._machine.state

    @property
    def stage(self) -> RetryStage | None:
        """Retry stage of the scheduled retry; ``None`` when not retrying."""
        return self._schedule.stage

    @property
    def attempt(self) -> int:
        """Retry attempt within the current stage (1-based; 0 when not retrying)."""
        return self._schedule.stage_attempt

    @property
    def consecutive_failures(self) -> int:
        """Transient failures since the last success (kept across manual retries)."""
        return self._consecutive_failures

    @property
    def next_retry_in(self) -> float | None:
        """Seconds until the next scheduled attempt, if any."""
        if self._next_retry_at is None:
            return None
        return max(0.0, self._next_retry_at - self._clock.monotonic())

    @property
    def next_retry_at_wall(self) -> float | None:
        """Wall time of the next scheduled attempt, if any (for display)."""
        wait = self.next_retry_in
        return None if wait is None else self._clock.time() + wait

    @property
    def last_error(self) -> DeliveryError | None:
        """The most recent delivery error."""
        return self._last_error

    @property
    def last_error_category(self) -> ErrorCategory | None:
        """Category of the most recent delivery error."""
        return None if self._last_error is None else self._last_error.category

    @property
    def last_error_wall(self) -> float | None:
        """Wall time of the most recent delivery error."""
        return self._last_error_wall

    @property
    def outage_started_wall(self) -> float | None:
        """Wall time of the first failure of the current outage; None when not in one.

        Set by the first transient or configuration failure after a success (or
        since start), cleared by the next success. Bad data, too-large batches
        and local storage errors are not outages of the destination.
        """
        return self._outage_started_wall

    def outage_seconds(self) -> float | None:
        """Seconds since the current outage began; None when not in one."""
        if self._outage_started_wall is None:
            return None
        return max(0.0, self._clock.time() - self._outage_started_wall)

    @property
    def last_success_wall(self) -> float | None:
        """Wall time of the last success."""
        return self._last_success_wall

    @property
    def paused(self) -> bool:
        """Whether a config fault paused delivery (re-checked on a slow backoff)."""
        return self._machine.state is ConnectionState.PAUSED

    @property
    def paused_reason(self) -> ErrorCategory | None:
        """Category of the config fault that paused delivery."""
        return self._paused_reason

    @property
    def gave_up(self) -> bool:
        """Whether the limited preset stopped retrying."""
        return self._machine.state is ConnectionState.STOPPED

    @property
    def halted(self) -> bool:
        """Whether paused or given up (only re-checks, or nothing, until :meth:`manual_retry`)."""
        return self._machine.state.halted

    @property
    def breaker_state(self) -> BreakerState:
        """State of the circuit breaker."""
        return self._breaker.state

    def health_inputs(
        self,
        *,
        seconds_since_last_event: float | None = None,
        backlog_size: int = 0,
        backlog_oldest_age: float | None = None,
        storage_failure: bool = False,
        recent_window: float = 3600.0,
    ) -> HealthInputs:
        """Fill :class:`HealthInputs` from this engine plus the pipeline's facts.

        ``seconds_since_last_event`` defaults to the metrics' last received
        event, or the time since this engine was created when none arrived.
        Recent dropped / quarantined counts come from the metrics.
        """
        if seconds_since_last_event is None:
            seconds_since_last_event = self._metrics.since_last_event()
        if seconds_since_last_event is None:
            seconds_since_last_event = self._clock.monotonic() - self._started
        err = self._last_error
        return HealthInputs(
            connection_state=self._machine.state,
            retry_stage=self.stage,
            retry_attempt=self.attempt,
            next_retry_monotonic=self._next_retry_at,
            next_retry_wall=self.next_retry_at_wall,
            next_retry_in=self.next_retry_in,
            consecutive_failures=self._consecutive_failures,
            outage_seconds=self.outage_seconds(),
            last_success_wall=self._last_success_wall,
            seconds_since_success=(
                None
                if self._last_success_monotonic is None
                else max(0.0, self._clock.monotonic() - self._last_success_monotonic)
            ),
            last_error=None if err is None else err.message,
            last_error_category=None if err is None else err.category,
            seconds_since_last_event=seconds_since_last_event,
            backlog_size=backlog_size,
            backlog_oldest_age=backlog_oldest_age,
            recent_dropped=self._metrics.recent_dropped.recent(recent_window),
            recent_quarantined=self._metrics.recent_quarantined.recent(recent_window),
            storage_failure=storage_failure,
            gave_up=self.gave_up,
            paused_reason=self._paused_reason,
        )

    def health(
        self,
        tolerances: HealthTolerances | None = None,
        *,
        seconds_since_last_event: float | None = None,
        backlog_size: int = 0,
        backlog_oldest_age: float | None = None,
        storage_failure: bool = False,
    ) -> HealthReport:
        """Assess health now (see :meth:`health_inputs` and :func:`assess_health`)."""
        tol = tolerances or HealthTolerances()
        inputs = self.health_inputs(
            seconds_since_last_event=seconds_since_last_event,
            backlog_size=backlog_size,
            backlog_oldest_age=backlog_oldest_age,
            storage_failure=storage_failure,
            recent_window=tol.recent_window,
        )
        return assess_health(inputs, tol)

    def health_fields(self) -> dict[str, Any]:
        """Attempt-related facts for entities (JSON friendly)."""
        return {
            "state": self.state.value,
            "stage": None if self.stage is None else self.stage.value,
            "attempt": self.attempt,
            "consecutive_failures": self._consecutive_failures,
            "next_retry_in": self.next_retry_in,
            "next_retry_at_wall": self.next_retry_at_wall,
            "last_error": None if self._last_error is None else self._last_error.message,
            "last_error_category": (
                None if self.last_error_category is None else self.last_error_category.value
            ),
            "last_error_wall": self._last_error_wall,
            "last_success_wall": self._last_success_wall,
            "outage_started_wall": self._outage_started_wall,
            "paused_reason": None if self._paused_reason is None else self._paused_reason.value,
            "gave_up": self.gave_up,
            "breaker_state": self.breaker_state.value,
        }

    def as_dict(self) -> dict[str, Any]:
        """Diagnostics snapshot: policy, state history, breaker, metrics."""
        return {
            "name": self._name,
            "policy": {"preset": self._policy.preset, **self._policy.to_flat()},
            **self.health_fields(),
            "connection": self._machine.as_dict(),
            "breaker": self._breaker.as_dict(),
            "endpoints": [] if self.endpoint_states is None else self.endpoint_states(),
            "metrics": self._metrics.as_dict(),
        }

    # --- internals ------------------------------------------------------------------------

    def _take_permit(self) -> Permit | None:
        """Return the admission of the attempt that just ended.

        Callers that skipped :meth:`before_attempt` get one now when the
        breaker allows, so their result still counts (or is refused, as a
        call while open would have been).
        """
        permit, self._permit = self._permit, None
        return permit if permit is not None else self._breaker.allow()

    def _release_permit(self) -> None:
        permit, self._permit = self._permit, None
        if permit is not None:
            self._breaker.release(permit)

    def _circuit_open(self) -> None:
        if not self.halted:
            self._machine.transition(ConnectionState.CIRCUIT_OPEN, "circuit breaker open")

    def _outage_began(self) -> None:
        if self._outage_started is None:
            self._outage_started = self._clock.monotonic()
        if self._outage_started_wall is None:
            self._outage_started_wall = self._clock.time()

    def _pause(self, err: DeliveryError) -> float:
        self._release_permit()
        self._outage_began()
        self._paused_reason = err.category
        self._rechecks += 1
        base = min(PAUSE_RECHECK_MIN * 2 ** min(self._rechecks - 1, 10), PAUSE_RECHECK_MAX)
        delay = apply_jitter(base, self._policy.jitter, self._rng)
        self._next_retry_at = self._clock.monotonic() + delay
        self._machine.transition(ConnectionState.PAUSED, f"{err.category}: {err.message}")
        self._update_gauges()
        return delay

    def _transient_failure(self, err: DeliveryError) -> float | None:
        now = self._clock.monotonic()
        if (permit := self._take_permit()) is not None:
            self._breaker.record_failure(permit, err)
        self._outage_began()
        # A re-check found the destination failing differently: ordinary retries now.
        self._paused_reason = None
        self._consecutive_failures += 1
        delay = self._schedule.next_delay(err.retry_after)
        if delay is None:
            self._next_retry_at = None
            self._set_resumed(resumed=False)
            self._machine.transition(ConnectionState.STOPPED, "retry limit reached")
            self._update_gauges()
            return None
        stage = self._schedule.stage
        assert stage is not None  # next_delay() just scheduled a retry
        if self._breaker.state is BreakerState.OPEN:
            delay = max(delay, self._breaker.seconds_until_half_open())
            self._machine.transition(ConnectionState.CIRCUIT_OPEN, f"{err.category}")
        else:
            self._machine.transition(ConnectionState.for_stage(stage), f"{err.category}")
        self._metrics.record_retry_delay(delay)
        self._next_retry_at = now + delay
        self._update_gauges()
        return delay

    def _set_resumed(self, *, resumed: bool) -> None:
        if resumed:
            self._resumed.set()
        else:
            self._resumed.clear()

    def _update_gauges(self) -> None:
        stage = self._schedule.stage
        self._metrics.set_retry(
            None if stage is None else stage.value,
            self._schedule.stage_attempt,
            self._consecutive_failures,
        )

    def _on_transition(self, transition: Transition) -> None:
        self._metrics.set_state(transition.state.value)
        if self._listener is not None:
            self._listener(transition)
