"""Tests for the health assessment."""

from dataclasses import replace
from typing import Any

import pytest

from custom_components.ha_ingestor.core.errors import ErrorCategory
from custom_components.ha_ingestor.core.health import (
    HealthInputs,
    HealthReport,
    HealthStatus,
    HealthTolerances,
    assess_health,
    format_duration,
)
from custom_components.ha_ingestor.core.retry import RetryStage
from custom_components.ha_ingestor.core.state import ConnectionState

ACTIVE = HealthInputs(
    connection_state=ConnectionState.ACTIVE,
    last_success_wall=1_700_000_000.0,
    seconds_since_last_event=5.0,
)


def active(**changes: Any) -> HealthInputs:
    return replace(ACTIVE, **changes)


def test_healthy() -> None:
    report = assess_health(ACTIVE)
    assert report.status is HealthStatus.HEALTHY
    assert report.reason == "Delivering data to the destination"
    assert report.recommendations == ()
    assert report.inputs is ACTIVE
    assert report.tolerances == HealthTolerances()


def test_unknown_before_any_attempt() -> None:
    report = assess_health(HealthInputs())
    assert report.status is HealthStatus.UNKNOWN
    assert "Not connected" in report.reason
    connecting = assess_health(HealthInputs(connection_state=ConnectionState.CONNECTING))
    assert connecting.status is HealthStatus.UNKNOWN
    assert connecting.reason == "Connecting to the destination"


def test_waiting_while_retrying() -> None:
    inputs = HealthInputs(
        connection_state=ConnectionState.RETRYING_MODERATE,
        retry_stage=RetryStage.MODERATE,
        retry_attempt=5,
        next_retry_in=23.4,
        consecutive_failures=15,
        last_error="connection refused",
        last_error_category=ErrorCategory.NETWORK,
    )
    report = assess_health(inputs)
    assert report.status is HealthStatus.WAITING
    assert report.reason == (
        "Cannot reach the destination: connection refused. Retrying (moderate stage), "
        "attempt 5. Next attempt in 23 s. Data is kept."
    )
    assert "Check that the destination server is running" in report.recommendations


@pytest.mark.parametrize(
    ("category", "tip"),
    [
        (ErrorCategory.DNS, "Check the destination host name"),
        (ErrorCategory.TIMEOUT, "Check the destination's load and response time"),
        (ErrorCategory.SERVER, "Check the destination server's logs for errors"),
        (ErrorCategory.RATE_LIMITED, "throttling"),
        (ErrorCategory.BAD_DATA, "Check that the destination server is running"),
        (None, "Verify network connectivity"),
    ],
)
def test_waiting_recommendations_by_category(category: ErrorCategory | None, tip: str) -> None:
    report = assess_health(
        HealthInputs(
            connection_state=ConnectionState.RETRYING_RAPID,
            consecutive_failures=1,
            last_error_category=category,
        )
    )
    assert report.status is HealthStatus.WAITING
    assert "Retrying, attempt 0." in report.reason
    assert any(tip in r for r in report.recommendations)


def test_waiting_when_connecting_after_failures() -> None:
    report = assess_health(
        HealthInputs(connection_state=ConnectionState.CONNECTING, consecutive_failures=3)
    )
    assert report.status is HealthStatus.WAITING


def test_circuit_open() -> None:
    report = assess_health(
        HealthInputs(
            connection_state=ConnectionState.CIRCUIT_OPEN,
            consecutive_failures=50,
            next_retry_in=300,
            last_error="timed out",
            last_error_category=ErrorCategory.TIMEOUT,
        )
    )
    assert report.status is HealthStatus.CIRCUIT_OPEN
    assert "Too many consecutive failures (50)" in report.reason
    assert "Next attempt in 5 min" in report.reason
    assert report.recommendations


@pytest.mark.parametrize(
    ("category", "words"),
    [
        (ErrorCategory.AUTH, "rejected the credentials"),
        (ErrorCategory.NOT_FOUND, "does not exist"),
        (ErrorCategory.TLS, "TLS"),
        (ErrorCategory.REJECTED, "refuses the data it is sent"),
        (ErrorCategory.SERVER, "configuration problem"),
        (None, "configuration problem"),
    ],
)
def test_unhealthy_when_paused(category: ErrorCategory | None, words: str) -> None:
    report = assess_health(
        HealthInputs(
            connection_state=ConnectionState.PAUSED,
            paused_reason=category,
            last_error="401 Unauthorized" if category else None,
        )
    )
    assert report.status is HealthStatus.UNHEALTHY
    assert words in report.reason
    assert "paused" in report.reason
    assert report.recommendations[-1] == "Press the retry button after fixing the problem"


def test_paused_reason_from_last_error_category() -> None:
    report = assess_health(
        HealthInputs(
            connection_state=ConnectionState.PAUSED,
            last_error_category=ErrorCategory.NOT_FOUND,
        )
    )
    assert "does not exist" in report.reason


def test_unhealthy_wins_over_everything() -> None:
    report = assess_health(
        HealthInputs(
            connection_state=ConnectionState.CIRCUIT_OPEN,
            paused_reason=ErrorCategory.AUTH,
            storage_failure=True,
        )
    )
    assert report.status is HealthStatus.UNHEALTHY


def test_unhealthy_gave_up() -> None:
    for inputs in (
        HealthInputs(connection_state=ConnectionState.STOPPED, consecutive_failures=11),
        HealthInputs(gave_up=True, consecutive_failures=11, last_error="refused"),
    ):
        report = assess_health(inputs)
        assert report.status is HealthStatus.UNHEALTHY
        assert report.reason.startswith("Gave up after 11 failed attempts")
        assert "Press the retry button to resume delivery" in report.recommendations


def test_unhealthy_storage_failure() -> None:
    report = assess_health(active(storage_failure=True))
    assert report.status is HealthStatus.UNHEALTHY
    assert "disk" in report.reason


def test_degraded_reasons_combine() -> None:
    tol = HealthTolerances(backlog_age=60, idle_events=120, recent_window=900)
    report = assess_health(
        active(
            backlog_size=1234,
            backlog_oldest_age=400,
            recent_dropped=3,
            recent_quarantined=2,
            seconds_since_last_event=7_300,
        ),
        tol,
    )
    assert report.status is HealthStatus.DEGRADED
    assert report.tolerances is tol
    assert report.reason == (
        "1234 points are waiting, the oldest for 6 min; 3 events were dropped in the last "
        "15 min; 2 points were rejected by the destination in the last 15 min; "
        "No events received from Home Assistant for 2 h 1 min."
    )
    assert len(report.recommendations) == 4


@pytest.mark.parametrize(
    "changes",
    [
        {"backlog_oldest_age": 301.0, "backlog_size": 10},
        {"recent_dropped": 1},
        {"recent_quarantined": 1},
        {"seconds_since_last_event": 301.0},
    ],
)
def test_each_degradation_alone(changes: dict[str, Any]) -> None:
    tol = HealthTolerances(idle_events=300)
    assert assess_health(active(**changes), tol).status is HealthStatus.DEGRADED


def test_no_events_is_informational_unless_a_tolerance_is_set() -> None:
    """A narrow filter matching nothing for a day is healthy by default (idle off)."""
    quiet = active(seconds_since_last_event=86_400.0)
    report = assess_health(quiet)
    assert report.status is HealthStatus.HEALTHY
    assert report.as_dict()["seconds_since_last_event"] == 86_400.0
    assert assess_health(quiet, HealthTolerances(idle_events=3600)).status is (
        HealthStatus.DEGRADED
    )


def test_outage_length_is_in_the_reasons() -> None:
    """Waiting and paused reasons say how long the outage has lasted (from its first failure)."""
    waiting = assess_health(
        HealthInputs(
            connection_state=ConnectionState.RETRYING_PERSISTENT,
            consecutive_failures=40,
            outage_seconds=7200.0,
            last_error="connection refused",
        )
    )
    assert waiting.reason.startswith("Cannot reach the destination for 2 h: connection refused.")
    paused = assess_health(
        HealthInputs(
            connection_state=ConnectionState.PAUSED,
            paused_reason=ErrorCategory.TLS,
            outage_seconds=600.0,
            next_retry_in=120.0,
        )
    )
    assert "Delivery is paused for 10 min; data is kept. Checked again in 2 min." in (paused.reason)


def test_within_tolerance_is_healthy() -> None:
    report = assess_health(
        active(backlog_size=10, backlog_oldest_age=299.0, seconds_since_last_event=299.0),
        HealthTolerances(idle_events=300),
    )
    assert report.status is HealthStatus.HEALTHY
    assert assess_health(active(seconds_since_last_event=None)).status is HealthStatus.HEALTHY


def test_report_as_dict_echoes_inputs() -> None:
    inputs = HealthInputs(
        connection_state=ConnectionState.RETRYING_RAPID,
        retry_stage=RetryStage.RAPID,
        retry_attempt=2,
        consecutive_failures=2,
        last_error_category=ErrorCategory.DNS,
        paused_reason=None,
    )
    d = assess_health(inputs).as_dict()
    assert d["status"] == "waiting"
    assert d["connection_state"] == "retrying_rapid"
    assert d["retry_stage"] == "rapid"
    assert d["last_error_category"] == "dns"
    assert isinstance(d["recommendations"], list)
    assert set(HealthInputs().as_dict()) <= set(d)
    assert HealthReport(status=HealthStatus.UNKNOWN, reason="x").inputs == HealthInputs()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-1, "0 s"),
        (45.4, "45 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (3660, "1 h 1 min"),
        (86_400, "1 d"),
        (90_000, "1 d 1 h"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


STALL = HealthTolerances(stalled_after=10.0)


@pytest.mark.parametrize(
    ("oldest", "since_success", "status"),
    [
        (12.0, 12.0, HealthStatus.DEGRADED),  # overdue and nothing confirmed: stalled
        (8.0, 12.0, HealthStatus.HEALTHY),  # nothing overdue yet
        (12.0, 2.0, HealthStatus.HEALTHY),  # a backfill's old points, delivering fine
        (12.0, None, HealthStatus.HEALTHY),  # never delivered: not a stall of delivery
    ],
)
def test_stalled_delivery(oldest: float, since_success: float | None, status: HealthStatus) -> None:
    """Overdue points with no write confirmed for as long: degraded before any failure."""
    inputs = active(backlog_size=7, backlog_oldest_age=oldest, seconds_since_success=since_success)
    report = assess_health(inputs, STALL)
    assert report.status is status
    if status is HealthStatus.DEGRADED:
        assert report.reason == "No write has been confirmed for 12 s; 7 points are waiting."


def test_stall_off_by_default() -> None:
    inputs = active(backlog_size=7, backlog_oldest_age=100.0, seconds_since_success=100.0)
    assert assess_health(inputs).status is HealthStatus.HEALTHY


@pytest.mark.parametrize(
    ("next_in", "suffix"),
    [(0.0, "Attempting now."), (0.4, "Attempting now."), (3.0, "Next attempt in 3 s.")],
)
def test_retry_due_reads_attempting_now(next_in: float, suffix: str) -> None:
    """A retry that is due is never announced as a time already past."""
    inputs = active(
        connection_state=ConnectionState.RETRYING_RAPID,
        consecutive_failures=1,
        retry_stage=RetryStage.RAPID,
        retry_attempt=1,
        next_retry_in=next_in,
    )
    assert suffix in assess_health(inputs).reason
