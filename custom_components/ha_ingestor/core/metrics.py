"""Counters, gauges and bounded summaries of one destination.

Memory is O(1) in the number of events and attempts: counters are integers,
summaries keep exact count/sum/min/max/last plus a fixed-size ring of recent
samples for percentiles, and "recent" counts use fixed-width time buckets
covering a bounded horizon.
"""

from collections import Counter, deque
import math
from typing import Any

from .clock import Clock
from .errors import ErrorCategory


class Summary:
    """Streaming summary: exact aggregates plus percentiles over recent samples."""

    def __init__(self, size: int = 256) -> None:
        """Keep at most ``size`` recent samples for percentiles."""
        if size < 1:
            raise ValueError("size must be at least 1")
        self._ring: deque[float] = deque(maxlen=size)
        self.count = 0
        self.sum = 0.0
        self.min: float | None = None
        self.max: float | None = None
        self.last: float | None = None

    def observe(self, value: float) -> None:
        """Add one sample."""
        self.count += 1
        self.sum += value
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)
        self.last = value
        self._ring.append(value)

    @property
    def retained(self) -> int:
        """Samples currently kept for percentiles (bounded by ``size``)."""
        return len(self._ring)

    def percentile(self, pct: float) -> float | None:
        """Nearest-rank percentile (0..100) over the retained samples."""
        if not self._ring:
            return None
        ordered = sorted(self._ring)
        rank = max(1, math.ceil(pct / 100 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]

    def as_dict(self) -> dict[str, Any]:
        """Diagnostics form."""
        return {
            "count": self.count,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "last": self.last,
            "mean": self.sum / self.count if self.count else None,
            "p50": self.percentile(50),
            "p95": self.percentile(95),
        }


class WindowCounter:
    """Counts in fixed-width time buckets; answers "how many in the last N s"."""

    def __init__(self, clock: Clock, *, horizon: float = 3600.0, bucket: float = 60.0) -> None:
        """Keep ``horizon`` seconds of history in ``bucket``-second buckets."""
        if bucket <= 0 or horizon < bucket:
            raise ValueError("need bucket > 0 and horizon >= bucket")
        self._clock = clock
        self._bucket = bucket
        self._horizon = horizon
        self._buckets: deque[list[int]] = deque(maxlen=math.ceil(horizon / bucket) + 1)
        self.total = 0

    @property
    def horizon(self) -> float:
        """Longest window that can be answered."""
        return self._horizon

    @property
    def bucket_count(self) -> int:
        """Buckets currently kept (bounded)."""
        return len(self._buckets)

    def add(self, n: int = 1) -> None:
        """Count ``n`` occurrences now."""
        if n <= 0:
            return
        self.total += n
        index = int(self._clock.monotonic() // self._bucket)
        if self._buckets and self._buckets[-1][0] == index:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([index, n])

    def recent(self, window: float | None = None) -> int:
        """Occurrences within the last ``window`` seconds (bucket granularity)."""
        span = self._horizon if window is None else min(window, self._horizon)
        oldest = int((self._clock.monotonic() - span) // self._bucket) + 1
        return sum(count for index, count in self._buckets if index >= oldest)


class Metrics:
    """All numbers one destination's pipeline reports.

    Counters: attempts, successes, failures by :class:`ErrorCategory`,
    events_received, events_sent, events_dropped, points_quarantined.
    Gauges: retry stage, attempt, consecutive failures, connection state and
    time in it, time since the last success. Summaries: retry delays and time
    to recovery. :class:`~.resilience.Resilience` feeds the attempt-related
    parts; the listener/spool/uploader feed the event counters.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        summary_size: int = 256,
        recent_horizon: float = 3600.0,
        recent_bucket: float = 60.0,
    ) -> None:
        """Create empty metrics on ``clock``."""
        self._clock = clock
        self.attempts = 0
        self.successes = 0
        self.failures: Counter[ErrorCategory] = Counter()
        self.events_received = 0
        self.events_sent = 0
        self.events_dropped = 0
        self.points_quarantined = 0
        self.retry_delays = Summary(summary_size)
        self.time_to_recovery = Summary(summary_size)
        self.recent_dropped = WindowCounter(clock, horizon=recent_horizon, bucket=recent_bucket)
        self.recent_quarantined = WindowCounter(clock, horizon=recent_horizon, bucket=recent_bucket)
        # Gauges
        self.stage: str | None = None
        self.attempt = 0
        self.consecutive_failures = 0
        self.state: str | None = None
        self._state_entered = clock.monotonic()
        self._last_success: float | None = None
        self._last_event: float | None = None

    # --- feeding ---------------------------------------------------------------------

    def record_attempt(self) -> None:
        """Count a finished delivery attempt."""
        self.attempts += 1

    def record_success(self, points: int = 0) -> None:
        """Count a successful attempt that delivered ``points`` points."""
        self.successes += 1
        self.events_sent += max(0, points)
        self._last_success = self._clock.monotonic()

    def record_failure(self, category: ErrorCategory) -> None:
        """Count a failed attempt by category."""
        self.failures[category] += 1

    def record_retry_delay(self, seconds: float) -> None:
        """Observe a scheduled retry delay."""
        self.retry_delays.observe(seconds)

    def record_recovery(self, seconds: float) -> None:
        """Observe the time from the first failure of an outage to the success."""
        self.time_to_recovery.observe(seconds)

    def add_events_received(self, n: int = 1) -> None:
        """Count events accepted from Home Assistant."""
        self.events_received += n
        self._last_event = self._clock.monotonic()

    def add_events_sent(self, n: int) -> None:
        """Count points delivered outside :meth:`record_success`."""
        self.events_sent += n

    def add_events_dropped(self, n: int = 1) -> None:
        """Count events lost (memory limits, spool failure)."""
        self.events_dropped += n
        self.recent_dropped.add(n)

    def add_points_quarantined(self, n: int = 1) -> None:
        """Count points moved to the dead-letter table."""
        self.points_quarantined += n
        self.recent_quarantined.add(n)

    def set_retry(self, stage: str | None, attempt: int, consecutive_failures: int) -> None:
        """Update the retry gauges."""
        self.stage = stage
        self.attempt = attempt
        self.consecutive_failures = consecutive_failures

    def set_state(self, state: str) -> None:
        """Update the connection state gauge (restarts time in state on change)."""
        if state != self.state:
            self.state = state
            self._state_entered = self._clock.monotonic()

    # --- reading -----------------------------------------------------------------------

    @property
    def total_failures(self) -> int:
        """Failures of every category."""
        return self.failures.total()

    def time_in_state(self) -> float:
        """Seconds since the connection state gauge last changed."""
        return max(0.0, self._clock.monotonic() - self._state_entered)

    def since_last_success(self) -> float | None:
        """Seconds since the last success, ``None`` if never."""
        if self._last_success is None:
            return None
        return max(0.0, self._clock.monotonic() - self._last_success)

    def since_last_event(self) -> float | None:
        """Seconds since events were last received, ``None`` if never."""
        if self._last_event is None:
            return None
        return max(0.0, self._clock.monotonic() - self._last_event)

    def as_dict(self) -> dict[str, Any]:
        """Diagnostics snapshot (JSON friendly)."""
        return {
            "counters": {
                "attempts": self.attempts,
                "successes": self.successes,
                "failures": self.total_failures,
                "failures_by_category": {
                    cat.value: self.failures[cat] for cat in ErrorCategory if self.failures[cat]
                },
                "events_received": self.events_received,
                "events_sent": self.events_sent,
                "events_dropped": self.events_dropped,
                "points_quarantined": self.points_quarantined,
            },
            "gauges": {
                "state": self.state,
                "stage": self.stage,
                "attempt": self.attempt,
                "consecutive_failures": self.consecutive_failures,
                "time_in_state": self.time_in_state(),
                "since_last_success": self.since_last_success(),
                "since_last_event": self.since_last_event(),
                "recent_dropped": self.recent_dropped.recent(),
                "recent_quarantined": self.recent_quarantined.recent(),
            },
            "summaries": {
                "retry_delay_seconds": self.retry_delays.as_dict(),
                "time_to_recovery_seconds": self.time_to_recovery.as_dict(),
            },
        }
