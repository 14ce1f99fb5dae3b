"""One immutable picture of an entry's state: what entities, repairs and system health show.

The runtime takes a snapshot whenever something changed and publishes it at a
throttled cadence (see ``coordinator.py``). Readers get plain values: they never
reach into the pipeline, so every reader shows the same facts taken at the same
moment.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
import math

from .core.errors import ErrorCategory
from .core.health import DUE_NOW, HealthStatus, HealthTolerances
from .core.pipeline import Pipeline
from .core.retry import RetryStage
from .core.state import ConnectionState
from .redact import scrub_text

#: State of an ENUM sensor with nothing to report (no retry scheduled, no current error).
NONE = "none"
#: Health states (HA's own "unknown" stands for "not known yet", so it is not one).
HEALTH_OPTIONS = [status.value for status in HealthStatus if status is not HealthStatus.UNKNOWN]
CONNECTION_OPTIONS = [state.value for state in ConnectionState]
RETRY_STAGE_OPTIONS = [NONE, *(stage.value for stage in RetryStage)]
ERROR_CATEGORY_OPTIONS = [NONE, *(category.value for category in ErrorCategory)]
#: Health states that are a problem: not ``healthy`` and not ``unknown`` (a restart
#: must not trigger problem automations).
PROBLEM_STATES = frozenset(HEALTH_OPTIONS) - {HealthStatus.HEALTHY.value}


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSnapshot:
    """One URL (without credentials) and its breaker, with fallback URLs."""

    url: str
    breaker_state: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolSnapshot:
    """What the spool reported after its last operation."""

    dead_letter_count: int
    dead_letter_dropped: int
    storage_failed: bool
    last_storage_error: str | None
    last_corrupt_at: float | None
    last_salvaged: int
    last_salvage_lost: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillSnapshot:
    """Progress of the latest backfill."""

    status: str
    percent: float
    position: datetime | None
    states: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestorSnapshot:
    """Everything shown about one entry, as of ``taken_at``.

    ``backlog`` and ``oldest_pending_age`` count only overdue points (waiting
    longer than ``overdue_after``): points in the normal flush-and-send cycle are
    not a backlog. ``pending`` counts every point not yet confirmed.
    """

    taken_at: float
    health: str
    reason: str
    recommendations: tuple[str, ...]
    connection_state: str
    paused_reason: str | None
    retry_stage: str | None
    consecutive_failures: int
    next_retry: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_error_category: str | None
    outage_started: float | None
    pending: int
    backlog: int
    oldest_pending_age: int
    overdue_after: float
    recent_dropped: int
    events_sent: int
    events_dropped: int
    spool: SpoolSnapshot | None
    #: Hours the spool's disk limit holds at the measured event rate, and the hours
    #: left if nothing were delivered from now on; None while the rate is unknown.
    spool_capacity_hours: float | None
    spool_full_in_hours: float | None
    endpoints: tuple[EndpointSnapshot, ...]
    backfill: BackfillSnapshot | None

    @property
    def problem(self) -> bool:
        """Whether the health calls for attention."""
        return self.health in PROBLEM_STATES

    @property
    def connected(self) -> bool:
        """Whether the last write succeeded."""
        return self.connection_state == ConnectionState.ACTIVE.value


def _timestamp(wall: float | None, *, up: bool = False) -> datetime | None:
    # Whole seconds, so a value recomputed from two clocks does not change every time;
    # a future time rounds up, so it is never shown as already past.
    if wall is None:
        return None
    return datetime.fromtimestamp(math.ceil(wall) if up else round(wall), UTC)


def oldest_pending_age(pipeline: Pipeline, now: float) -> float | None:
    """Age of the oldest point not yet confirmed; None when there is none in the spool.

    Rows the destination accepted stay spooled until the next write deletes them:
    when every spooled row is such a row, the spool's oldest time is theirs, and
    what waits is the memory batch, younger than a flush interval.
    """
    stats = pipeline.stats
    if (
        stats is None
        or stats.oldest_time_ns is None
        or pipeline.backlog == 0
        or stats.pending_count <= pipeline.uploader.undeleted
    ):
        return None
    return max(0.0, now - stats.oldest_time_ns / 1e9)


def take_snapshot(
    pipeline: Pipeline,
    *,
    tolerances: HealthTolerances,
    secrets: list[str],
    backfill: BackfillSnapshot | None,
    now: float,
) -> IngestorSnapshot:
    """Assess health and gather every fact readers show, at ``now`` (wall seconds)."""
    resilience = pipeline.resilience
    stats = pipeline.stats
    pending = pipeline.backlog
    age = oldest_pending_age(pipeline, now)
    report = resilience.health(
        tolerances,
        backlog_size=pending,
        backlog_oldest_age=age,
        storage_failure=stats is not None and stats.storage_failed,
    )
    inputs = report.inputs
    overdue_after = tolerances.stalled_after or 0.0
    overdue = age is not None and age > overdue_after
    # An error is current until a write succeeds after it.
    error_wall = resilience.last_error_wall
    success_wall = resilience.last_success_wall
    current_error = error_wall is not None and (success_wall is None or error_wall > success_wall)
    next_in = inputs.next_retry_in
    metrics = resilience.metrics
    endpoints = pipeline.uploader.endpoint_states()
    outlook = pipeline.spool_outlook()
    return IngestorSnapshot(
        taken_at=now,
        health=report.status.value,
        reason=scrub_text(report.reason, secrets),
        recommendations=tuple(scrub_text(tip, secrets) for tip in report.recommendations),
        connection_state=inputs.connection_state.value,
        paused_reason=None if inputs.paused_reason is None else inputs.paused_reason.value,
        retry_stage=None if inputs.retry_stage is None else inputs.retry_stage.value,
        consecutive_failures=inputs.consecutive_failures,
        # Due (or in flight): no future time to show, and never a past one.
        next_retry=None
        if next_in is None or next_in < DUE_NOW
        else _timestamp(now + next_in, up=True),
        last_success=_timestamp(success_wall),
        last_error=(
            scrub_text(inputs.last_error, secrets)
            if current_error and inputs.last_error is not None
            else None
        ),
        last_error_category=(
            inputs.last_error_category.value
            if current_error and inputs.last_error_category is not None
            else None
        ),
        outage_started=resilience.outage_started_wall,
        pending=pending,
        backlog=pending if overdue else 0,
        oldest_pending_age=round(age) if overdue and age is not None else 0,
        overdue_after=overdue_after,
        recent_dropped=inputs.recent_dropped,
        events_sent=metrics.events_sent,
        events_dropped=metrics.events_dropped,
        spool=None
        if stats is None
        else SpoolSnapshot(
            dead_letter_count=stats.dead_letter_count,
            dead_letter_dropped=stats.dead_letter_dropped,
            storage_failed=stats.storage_failed,
            last_storage_error=None
            if stats.last_storage_error is None
            else scrub_text(stats.last_storage_error, secrets),
            last_corrupt_at=stats.last_corrupt_at,
            last_salvaged=stats.last_salvaged,
            last_salvage_lost=stats.last_salvage_lost,
        ),
        spool_capacity_hours=outlook.get("spool_capacity_hours"),
        spool_full_in_hours=outlook.get("spool_full_in_hours"),
        # With one URL there is nothing to tell apart.
        endpoints=()
        if len(endpoints) < 2
        else tuple(
            EndpointSnapshot(url=scrub_text(e["url"], secrets), breaker_state=e["breaker_state"])
            for e in endpoints
        ),
        backfill=backfill,
    )
