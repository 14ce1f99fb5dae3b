"""Health assessment: facts in, status + English reason + recommendations out.

Order of precedence (first match wins), so that the most actionable state
shows:

1. ``unhealthy``: the user must act (paused by auth / missing database or
   bucket / TLS fault, limited preset gave up, local storage failing).
2. ``circuit_open``: the breaker stopped attempts for a while.
3. ``waiting``: the destination is unreachable and retries are scheduled.
4. ``unknown``: never connected and no attempt finished yet.
5. ``degraded``: the destination works but something needs attention
   (backlog older than tolerance, events dropped or quarantined recently,
   no events from Home Assistant for longer than the idle tolerance, only
   when one is set: a narrow filter may legitimately match nothing for hours,
   so by default idle time is a fact in the report, not a problem).
6. ``healthy``.
"""

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from .errors import ErrorCategory
from .retry import RetryStage
from .state import ConnectionState


class HealthStatus(StrEnum):
    """Overall health of one destination."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    WAITING = "waiting"
    CIRCUIT_OPEN = "circuit_open"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthTolerances:
    """Thresholds above which a fact makes the destination degraded."""

    backlog_age: float = 300.0  # oldest unsent point, seconds
    idle_events: float | None = None  # no event from Home Assistant, seconds; None = off
    recent_window: float = 3600.0  # window of recent_dropped / recent_quarantined
    #: Points waiting this long with no write confirmed for as long: delivery is
    #: stalled (a hung destination answers nothing, so no failure is counted).
    stalled_after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthInputs:
    """Facts the pipeline gathers (see :meth:`.resilience.Resilience.health_inputs`).

    ``seconds_since_last_event`` should count from start-up when no event was
    received yet; ``None`` means unknown and never degrades.
    """

    connection_state: ConnectionState = ConnectionState.DISCONNECTED
    retry_stage: RetryStage | None = None
    retry_attempt: int = 0
    next_retry_monotonic: float | None = None
    next_retry_wall: float | None = None
    next_retry_in: float | None = None
    consecutive_failures: int = 0
    #: Seconds since the first failure of the current outage (None: no outage).
    outage_seconds: float | None = None
    last_success_wall: float | None = None
    #: Seconds since the last successful write (None: none yet).
    seconds_since_success: float | None = None
    last_error: str | None = None
    last_error_category: ErrorCategory | None = None
    seconds_since_last_event: float | None = None
    backlog_size: int = 0
    backlog_oldest_age: float | None = None
    recent_dropped: int = 0
    recent_quarantined: int = 0
    storage_failure: bool = False
    gave_up: bool = False
    paused_reason: ErrorCategory | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON friendly form (enums as their values)."""
        return {
            key: value.value if isinstance(value, StrEnum) else value
            for key, value in asdict(self).items()
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """Outcome of :func:`assess_health`."""

    status: HealthStatus
    reason: str
    recommendations: tuple[str, ...] = ()
    inputs: HealthInputs = field(default_factory=HealthInputs)
    tolerances: HealthTolerances = field(default_factory=HealthTolerances)

    def as_dict(self) -> dict[str, Any]:
        """Status, reason, recommendations and every input fact, flat."""
        return {
            "status": self.status.value,
            "reason": self.reason,
            "recommendations": list(self.recommendations),
            **self.inputs.as_dict(),
        }


def format_duration(seconds: float) -> str:
    """Short English duration: ``45 s``, ``3 min``, ``2 h 5 min``, ``1 d 3 h``."""
    total = round(max(0.0, seconds))
    if total < 60:
        return f"{total} s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


_CONFIG_REASONS: dict[ErrorCategory, tuple[str, tuple[str, ...]]] = {
    ErrorCategory.AUTH: (
        "The destination rejected the credentials",
        (
            "Reauthenticate the integration with a valid token or password",
            "Check the token's permissions on the database or bucket",
        ),
    ),
    ErrorCategory.NOT_FOUND: (
        "The database, bucket or organisation does not exist on the destination",
        (
            "Create the database or bucket on the destination",
            "Check the database, bucket and organisation names in the options",
        ),
    ),
    ErrorCategory.TLS: (
        "The TLS connection to the destination failed",
        (
            "Check the destination's certificate and its validity dates",
            "Disable certificate verification only for a server you trust",
        ),
    ),
    ErrorCategory.REJECTED: (
        "The destination refuses the data it is sent",
        (
            "Check the URL: a proxy may be answering plain HTTP sent to its HTTPS port",
            "Check the destination's logs for why it rejects the points",
        ),
    ),
}

_WAITING_TIPS: dict[ErrorCategory, tuple[str, ...]] = {
    ErrorCategory.NETWORK: (
        "Check that the destination server is running",
        "Verify network connectivity between Home Assistant and the destination",
    ),
    ErrorCategory.DNS: (
        "Check the destination host name",
        "Verify the DNS settings of the Home Assistant host",
    ),
    ErrorCategory.TIMEOUT: (
        "Check the destination's load and response time",
        "Verify network connectivity between Home Assistant and the destination",
    ),
    ErrorCategory.RATE_LIMITED: (
        "The destination is throttling writes; reduce the number of recorded entities",
    ),
    ErrorCategory.SERVER: ("Check the destination server's logs for errors",),
}

_DEFAULT_WAITING_TIPS = (
    "Check that the destination server is running",
    "Verify network connectivity between Home Assistant and the destination",
)


def _error_suffix(inputs: HealthInputs) -> str:
    return f": {inputs.last_error}" if inputs.last_error else ""


def _for_suffix(inputs: HealthInputs) -> str:
    if inputs.outage_seconds is None:
        return ""
    return f" for {format_duration(inputs.outage_seconds)}"


#: A retry due within this many seconds is reported as being attempted.
DUE_NOW = 1.0


def _retry_suffix(inputs: HealthInputs) -> str:
    if inputs.next_retry_in is None:
        return ""
    if inputs.next_retry_in < DUE_NOW:
        return " Attempting now."
    return f" Next attempt in {format_duration(inputs.next_retry_in)}."


type _Verdict = tuple[HealthStatus, str, tuple[str, ...]]

_GENERIC_PAUSE = (
    "Delivery is paused by a configuration problem",
    ("Check the integration options",),
)


def _unhealthy(inputs: HealthInputs) -> _Verdict | None:
    """Facts that need the user, most specific first."""
    if inputs.connection_state is ConnectionState.PAUSED or inputs.paused_reason is not None:
        category = inputs.paused_reason or inputs.last_error_category
        reason, tips = _CONFIG_REASONS.get(category, _GENERIC_PAUSE) if category else _GENERIC_PAUSE
        check = (
            ""
            if inputs.next_retry_in is None
            else " Checking again now."
            if inputs.next_retry_in < DUE_NOW
            else f" Checked again in {format_duration(inputs.next_retry_in)}."
        )
        return (
            HealthStatus.UNHEALTHY,
            (
                f"{reason}{_error_suffix(inputs)}. Delivery is paused{_for_suffix(inputs)}; "
                f"data is kept.{check}"
            ),
            (*tips, "Press the retry button after fixing the problem"),
        )
    if inputs.gave_up or inputs.connection_state is ConnectionState.STOPPED:
        return (
            HealthStatus.UNHEALTHY,
            (
                f"Gave up after {inputs.consecutive_failures} failed attempts"
                f"{_error_suffix(inputs)}. Data is kept until delivery resumes."
            ),
            (
                "Press the retry button to resume delivery",
                "Use the infinite retry preset to keep retrying automatically",
            ),
        )
    if inputs.storage_failure:
        return (
            HealthStatus.UNHEALTHY,
            "The local spool cannot write to disk; unsent data is only held in memory",
            (
                "Check free disk space on the Home Assistant host",
                "Check the permissions of the Home Assistant configuration directory",
            ),
        )
    return None


def _degradations(inputs: HealthInputs, tol: HealthTolerances) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if _stalled(inputs, tol):
        since = inputs.seconds_since_success
        problems.append(
            (
                (
                    f"No write has been confirmed for {format_duration(since or 0.0)}; "
                    f"{inputs.backlog_size} points are waiting"
                ),
                "The destination may be hung or overloaded; check its logs and load",
            )
        )
    elif inputs.backlog_oldest_age is not None and inputs.backlog_oldest_age > tol.backlog_age:
        problems.append(
            (
                (
                    f"{inputs.backlog_size} points are waiting, the oldest for "
                    f"{format_duration(inputs.backlog_oldest_age)}"
                ),
                "The destination may be too slow for the event rate; check its performance",
            )
        )
    window = format_duration(tol.recent_window)
    if inputs.recent_dropped > 0:
        problems.append(
            (
                f"{inputs.recent_dropped} events were dropped in the last {window}",
                "Check the spool size limits and free disk space",
            )
        )
    if inputs.recent_quarantined > 0:
        problems.append(
            (
                (
                    f"{inputs.recent_quarantined} points were rejected by the destination "
                    f"in the last {window}"
                ),
                "Review the quarantined points in the diagnostics",
            )
        )
    idle = inputs.seconds_since_last_event
    if idle is not None and tol.idle_events is not None and idle > tol.idle_events:
        problems.append(
            (
                f"No events received from Home Assistant for {format_duration(idle)}",
                "Check the entity filter in the integration options",
            )
        )
    return problems


def _stalled(inputs: HealthInputs, tol: HealthTolerances) -> bool:
    """Points are overdue and nothing was confirmed meanwhile (a hung destination)."""
    limit = tol.stalled_after
    return (
        limit is not None
        and inputs.backlog_size > 0
        and inputs.backlog_oldest_age is not None
        and inputs.backlog_oldest_age > limit
        and inputs.seconds_since_success is not None
        and inputs.seconds_since_success > limit
    )


def assess_health(inputs: HealthInputs, tolerances: HealthTolerances | None = None) -> HealthReport:
    """Classify ``inputs`` into a :class:`HealthReport` (see module docstring)."""
    tol = tolerances or HealthTolerances()
    status, reason, recommendations = _assess(inputs, tol)
    return HealthReport(
        status=status,
        reason=reason,
        recommendations=recommendations,
        inputs=inputs,
        tolerances=tol,
    )


def _assess(inputs: HealthInputs, tol: HealthTolerances) -> _Verdict:
    unhealthy = _unhealthy(inputs)
    if unhealthy is not None:
        return unhealthy
    state = inputs.connection_state
    tips = _WAITING_TIPS.get(
        inputs.last_error_category or ErrorCategory.NETWORK, _DEFAULT_WAITING_TIPS
    )

    if state is ConnectionState.CIRCUIT_OPEN:
        return (
            HealthStatus.CIRCUIT_OPEN,
            (
                f"Too many consecutive failures ({inputs.consecutive_failures}); attempts are "
                f"suspended to let the destination recover{_error_suffix(inputs)}."
                f"{_retry_suffix(inputs)} Data is kept."
            ),
            tips,
        )

    failing = inputs.consecutive_failures > 0
    if state.retrying or (failing and state is not ConnectionState.ACTIVE):
        stage = f" ({inputs.retry_stage.value} stage)" if inputs.retry_stage else ""
        return (
            HealthStatus.WAITING,
            (
                f"Cannot reach the destination{_for_suffix(inputs)}{_error_suffix(inputs)}. "
                f"Retrying{stage}, "
                f"attempt {inputs.retry_attempt}.{_retry_suffix(inputs)} Data is kept."
            ),
            tips,
        )

    never_connected = inputs.last_success_wall is None
    if never_connected and state in (ConnectionState.DISCONNECTED, ConnectionState.CONNECTING):
        reason = (
            "Connecting to the destination"
            if state is ConnectionState.CONNECTING
            else "Not connected to the destination yet"
        )
        return HealthStatus.UNKNOWN, reason, ()

    problems = _degradations(inputs, tol)
    if problems:
        return (
            HealthStatus.DEGRADED,
            "; ".join(p for p, _ in problems) + ".",
            tuple(tip for _, tip in problems),
        )
    return HealthStatus.HEALTHY, "Delivering data to the destination", ()
