"""Tests for the resilience facade, including the seed scenarios end to end."""

import asyncio
from collections.abc import Callable
import gc
import json
import logging
import math
import random
import time
import tracemalloc

import pytest

from custom_components.ha_ingestor.core.breaker import BreakerState
from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.health import HealthStatus, HealthTolerances
from custom_components.ha_ingestor.core.metrics import Metrics
from custom_components.ha_ingestor.core.resilience import (
    PAUSE_RECHECK_MIN,
    PROBE_BUSY_WAIT,
    STORAGE_RETRY_MIN,
    Resilience,
)
from custom_components.ha_ingestor.core.retry import RetryStage, build_policy
from custom_components.ha_ingestor.core.state import ConnectionState, Transition
from tests.core.fake_time import FakeClock

NET = DeliveryError(ErrorCategory.NETWORK, "connection refused")
AUTH = DeliveryError(ErrorCategory.AUTH, "401 unauthorized", status=401)
BAD = DeliveryError(ErrorCategory.BAD_DATA, "400 bad line", status=400)
BIG = DeliveryError(ErrorCategory.TOO_LARGE, "413", status=413)
DISK = DeliveryError(ErrorCategory.STORAGE, "disk I/O error")
HOUR = 3600.0
NO_JITTER = {"jitter": "none"}


def make(
    preset: str = "infinite", clock: FakeClock | None = None, **overrides: object
) -> tuple[Resilience, FakeClock]:
    clock = clock or FakeClock()
    res = Resilience(build_policy(preset, overrides), clock, rng=random.Random(42), name="test")
    return res, clock


def drive(
    res: Resilience,
    clock: FakeClock,
    seconds: float,
    up: Callable[[float], bool] = lambda _t: False,
    *,
    send_interval: float = 1.0,
    on_status: Callable[[HealthStatus], None] | None = None,
) -> int:
    """Simulate the uploader for ``seconds``; returns the number of attempts."""
    end = clock.monotonic() + seconds
    attempts = 0
    while clock.monotonic() < end:
        wait = res.before_attempt()
        if math.isinf(wait):
            break
        if wait > 0:
            clock.advance(min(wait, end - clock.monotonic()))
            continue
        attempts += 1
        if up(clock.monotonic()):
            res.on_success(points=10)
            clock.advance(min(send_interval, end - clock.monotonic()))
        else:
            res.on_failure(NET)
        if on_status is not None:
            on_status(res.health(seconds_since_last_event=0).status)
    return attempts


def test_startup_without_network() -> None:
    res, clock = make()
    assert res.state is ConnectionState.DISCONNECTED
    assert res.health().status is HealthStatus.UNKNOWN
    assert res.before_attempt() == 0.0
    assert res.state is ConnectionState.CONNECTING
    assert res.health().status is HealthStatus.UNKNOWN
    delay = res.on_failure(NET)
    assert delay is not None
    assert 0.8 <= delay <= 1.2
    assert res.state is ConnectionState.RETRYING_RAPID
    assert res.stage is RetryStage.RAPID
    assert res.attempt == 1
    assert res.next_retry_in == pytest.approx(delay)
    assert res.next_retry_in == pytest.approx(delay)
    assert res.before_attempt() == pytest.approx(delay)  # not yet
    report = res.health()
    assert report.status is HealthStatus.WAITING
    assert report.inputs.last_error_category is ErrorCategory.NETWORK
    assert report.inputs.next_retry_wall == pytest.approx(clock.time() + delay)
    assert res.last_success_wall is None


def test_recovery_from_persistent_within_five_minutes() -> None:
    res, clock = make(**NO_JITTER)
    drive(res, clock, 30 * 60)
    assert res.state is ConnectionState.RETRYING_PERSISTENT
    assert res.health().status is HealthStatus.WAITING
    outage_start = clock.monotonic() - 30 * 60
    recovered_at = clock.monotonic()
    drive(res, clock, 10 * 60, up=lambda _t: True)
    assert res.state is ConnectionState.ACTIVE
    assert res.last_success_wall is not None
    first_success = res.metrics.time_to_recovery.last
    assert first_success is not None
    # The first success came within 5 minutes of the network coming back.
    assert first_success - (recovered_at - outage_start) <= 300
    report = res.health(seconds_since_last_event=1)
    assert report.status is HealthStatus.HEALTHY
    assert res.consecutive_failures == 0
    assert res.stage is None
    assert res.next_retry_in is None


def test_infinite_retry_two_hours_never_stops() -> None:
    res, clock = make()
    statuses: set[HealthStatus] = set()
    attempts = drive(res, clock, 2 * HOUR, on_status=statuses.add)
    assert statuses <= {HealthStatus.WAITING, HealthStatus.CIRCUIT_OPEN}
    assert not res.halted
    assert not res.gave_up
    assert res.state in (ConnectionState.RETRYING_PERSISTENT, ConnectionState.CIRCUIT_OPEN)
    assert attempts > 50
    # Attempts keep coming: the next one is at most the longest open period away.
    assert res.next_retry_in is not None
    assert res.next_retry_in <= 600 * 1.2


def test_infinite_retry_without_breaker_stays_waiting() -> None:
    res, clock = make(breaker_enabled=False)
    drive(res, clock, 2 * HOUR)
    assert res.state is ConnectionState.RETRYING_PERSISTENT
    assert res.health().status is HealthStatus.WAITING
    assert res.breaker.opened_count == 0


def test_circuit_breaker_activation_and_recovery() -> None:
    res, clock = make(**NO_JITTER)
    for _ in range(49):
        assert res.before_attempt() == 0.0
        delay = res.on_failure(NET)
        assert delay is not None
        clock.advance(delay)
    assert res.breaker_state is BreakerState.CLOSED
    assert res.before_attempt() == 0.0
    delay = res.on_failure(NET)
    assert res.breaker_state is BreakerState.OPEN
    assert res.state is ConnectionState.CIRCUIT_OPEN
    assert delay == 240.0  # service pauses for 4 minutes
    report = res.health()
    assert report.status is HealthStatus.CIRCUIT_OPEN
    assert "Next attempt in 4 min" in report.reason
    clock.advance(239)
    assert res.before_attempt() == pytest.approx(1.0)
    clock.advance(1)
    # Half-open: one probe goes; it succeeds.
    assert res.before_attempt() == 0.0
    assert res.breaker_state is BreakerState.HALF_OPEN
    res.on_success(points=5)
    assert res.state is ConnectionState.ACTIVE
    assert res.health(seconds_since_last_event=0).status is HealthStatus.HEALTHY
    for _ in range(2):
        assert res.before_attempt() == 0.0
        res.on_success()
    assert res.breaker_state is BreakerState.CLOSED
    assert res.metrics.time_to_recovery.count == 1


def test_failed_probe_reopens_longer() -> None:
    res, clock = make(**NO_JITTER, breaker_failure_threshold=3)
    for _ in range(3):
        res.before_attempt()
        delay = res.on_failure(NET)
        assert delay is not None
        clock.advance(delay)
    assert res.state is ConnectionState.CIRCUIT_OPEN
    assert res.before_attempt() == 0.0  # open period over: this is the probe
    assert res.before_attempt() == PROBE_BUSY_WAIT  # probe slot taken
    delay = res.on_failure(NET)
    assert delay == 270.0  # open period doubled, capped at 270 (the 5 min recovery bound)
    assert res.state is ConnectionState.CIRCUIT_OPEN
    assert res.breaker.opened_count == 2


def test_retry_stage_progression() -> None:
    res, clock = make(**NO_JITTER)
    seen: list[ConnectionState] = []
    delays: list[float] = []
    for _ in range(35):
        assert res.before_attempt() == 0.0
        delay = res.on_failure(NET)
        assert delay is not None
        delays.append(delay)
        if not seen or seen[-1] is not res.state:
            seen.append(res.state)
        clock.advance(delay)
    assert seen == [
        ConnectionState.RETRYING_RAPID,
        ConnectionState.RETRYING_MODERATE,
        ConnectionState.RETRYING_PERSISTENT,
    ]
    assert delays == sorted(delays)  # delays increase
    assert [t.state for t in res.state_machine.history] == [
        ConnectionState.DISCONNECTED,
        ConnectionState.CONNECTING,
        *seen,
    ]
    assert res.metrics.as_dict()["gauges"]["stage"] == "persistent"
    assert res.metrics.retry_delays.count == 35


def test_transient_failure_recovered_within_rapid_stage() -> None:
    res, clock = make()
    drive(res, clock, 60, up=lambda _t: True)
    assert res.state is ConnectionState.ACTIVE
    outage_from, outage_to = clock.monotonic(), clock.monotonic() + 10
    drive(res, clock, 120, up=lambda t: not outage_from <= t < outage_to)
    assert res.state is ConnectionState.ACTIVE
    states = [t.state for t in res.state_machine.history]
    assert ConnectionState.RETRYING_RAPID in states
    assert ConnectionState.RETRYING_MODERATE not in states
    recovery = res.metrics.time_to_recovery.last
    assert recovery is not None
    assert 10 <= recovery <= 30  # reconnects within 30 s
    assert res.health(seconds_since_last_event=0).status is HealthStatus.HEALTHY


def test_limited_preset_gives_up_and_manual_retry_resumes() -> None:
    res, clock = make("limited", **NO_JITTER)
    attempts = drive(res, clock, HOUR)
    assert attempts == 11  # first attempt + 10 rapid retries
    assert res.state is ConnectionState.STOPPED
    assert res.gave_up
    assert res.halted
    assert res.before_attempt() == math.inf
    assert res.next_retry_in is None
    report = res.health()
    assert report.status is HealthStatus.UNHEALTHY
    assert report.inputs.gave_up
    assert "Gave up after 11 failed attempts" in report.reason
    res.manual_retry()
    assert res.state is ConnectionState.CONNECTING
    assert not res.gave_up
    assert res.before_attempt() == 0.0
    assert res.on_failure(NET) == 1.0  # back to the first rapid delay
    clock.advance(1)
    assert res.before_attempt() == 0.0
    res.on_success()
    assert res.health(seconds_since_last_event=0).status is HealthStatus.HEALTHY


CONFIG_CATEGORIES = [
    ErrorCategory.AUTH,
    ErrorCategory.NOT_FOUND,
    ErrorCategory.TLS,
    ErrorCategory.REJECTED,
]


@pytest.mark.parametrize("category", CONFIG_CATEGORIES)
def test_config_fault_pauses_until_manual_retry(category: ErrorCategory) -> None:
    """A manual retry (after reauth / repair) leaves the pause at once."""
    res, _clock = make()
    res.before_attempt()
    res.on_failure(NET)
    failures = res.breaker.failure_count
    _clock.advance(10)
    assert res.before_attempt() == 0.0
    recheck = res.on_failure(DeliveryError(category, "config"))
    assert recheck is not None
    assert PAUSE_RECHECK_MIN * 0.8 <= recheck <= PAUSE_RECHECK_MIN * 1.2
    assert res.state is ConnectionState.PAUSED
    assert res.paused
    assert res.paused_reason is category
    assert res.breaker.failure_count == failures  # not a breaker failure
    assert res.before_attempt() == pytest.approx(recheck)
    report = res.health()
    assert report.status is HealthStatus.UNHEALTHY
    assert report.inputs.paused_reason is category
    res.manual_retry()
    assert res.state is ConnectionState.CONNECTING
    assert res.paused_reason is None
    assert res.breaker.failure_count == 0
    assert res.before_attempt() == 0.0
    res.on_success()
    assert res.state is ConnectionState.ACTIVE


@pytest.mark.parametrize("category", CONFIG_CATEGORIES)
def test_paused_rechecks_on_a_slow_backoff_and_resumes_by_itself(
    category: ErrorCategory,
) -> None:
    """Re-checks 60, 120, 240, 480, 900, 900 s apart (no jitter); the first success resumes.

    Figures: 6 failed re-checks over 2 700 s, the state stays paused (and the
    cause stays the config fault) between them, time to recovery after the
    destination is fixed = the re-check delay then pending (<= 900 s).
    """
    res, clock = make(**NO_JITTER)
    fault = DeliveryError(category, "config")
    assert res.before_attempt() == 0.0
    delays = [res.on_failure(fault)]
    for _ in range(5):
        wait = res.attempt_due_in()
        assert wait == delays[-1]
        assert res.before_attempt() == wait  # nothing is admitted before it is due
        clock.advance(wait)
        assert res.state is ConnectionState.PAUSED
        assert res.paused_reason is category
        assert res.before_attempt() == 0.0  # the re-check: a real write
        delays.append(res.on_failure(fault))
    assert delays == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0]
    assert res.metrics.failures[category] == 6
    clock.advance(900)
    assert res.before_attempt() == 0.0
    res.on_success(points=5)
    assert res.state is ConnectionState.ACTIVE
    assert res.paused_reason is None
    assert res.outage_started_wall is None
    # The next fault starts from the first re-check delay again.
    assert res.before_attempt() == 0.0
    assert res.on_failure(fault) == 60.0


def test_recheck_that_meets_a_transient_failure_retries_normally() -> None:
    """A re-check answered by a refusal (proxy restarting): ordinary retries, not paused."""
    res, clock = make(**NO_JITTER)
    res.before_attempt()
    res.on_failure(DeliveryError(ErrorCategory.TLS, "wrong certificate"))
    clock.advance(60)
    assert res.before_attempt() == 0.0
    assert res.on_failure(NET) == 1.0
    assert res.state is ConnectionState.RETRYING_RAPID
    assert res.paused_reason is None
    assert not res.paused


@pytest.mark.parametrize("err", [BAD, BIG])
def test_bad_data_and_too_large_do_not_advance(err: DeliveryError) -> None:
    res, clock = make(**NO_JITTER, breaker_failure_threshold=2)
    res.before_attempt()
    res.on_success()
    res.before_attempt()
    assert res.on_failure(NET) == 1.0
    clock.advance(1)
    for _ in range(10):
        assert res.before_attempt() == 0.0
        assert res.on_failure(err) == 0.0
    assert res.stage is RetryStage.RAPID
    assert res.attempt == 1
    assert res.breaker.failure_count == 1
    assert res.breaker_state is BreakerState.CLOSED
    assert res.metrics.failures[err.category] == 10
    assert res.last_error is err


def test_bad_data_probe_releases_slot() -> None:
    res, clock = make(**NO_JITTER, breaker_failure_threshold=1)
    res.before_attempt()
    clock.advance(res.on_failure(NET) or 0)
    assert res.breaker_state is BreakerState.HALF_OPEN
    assert res.before_attempt() == 0.0
    assert res.on_failure(BAD) == 0.0
    assert not res.breaker.probe_in_flight
    assert res.before_attempt() == 0.0


def test_storage_error_is_local() -> None:
    res, clock = make(**NO_JITTER)
    res.before_attempt()
    delay = res.on_failure(DISK)
    assert delay == max(STORAGE_RETRY_MIN, 1.0)
    assert res.stage is None
    assert res.consecutive_failures == 0
    assert res.before_attempt() == pytest.approx(delay)
    clock.advance(delay)
    assert res.before_attempt() == 0.0


def test_cancel_releases_probe() -> None:
    res, clock = make(**NO_JITTER, breaker_failure_threshold=1)
    res.before_attempt()
    clock.advance(res.on_failure(NET) or 0)
    assert res.before_attempt() == 0.0
    assert res.breaker.probe_in_flight
    res.on_cancel()
    assert not res.breaker.probe_in_flight
    assert res.state is ConnectionState.CIRCUIT_OPEN
    assert res.before_attempt() == 0.0


def test_retry_after_is_honoured() -> None:
    res, _clock = make(**NO_JITTER)
    res.before_attempt()
    err = DeliveryError(ErrorCategory.RATE_LIMITED, "429", status=429, retry_after=120)
    assert res.on_failure(err) == 120.0
    assert res.before_attempt() == 120.0
    huge = DeliveryError(ErrorCategory.RATE_LIMITED, "429", status=429, retry_after=1e6)
    assert res.on_failure(huge) == 270.0


def test_manual_retry_while_retrying_and_while_active() -> None:
    res, _clock = make(**NO_JITTER)
    res.manual_retry()  # disconnected: stays
    assert res.state is ConnectionState.DISCONNECTED
    res.before_attempt()
    res.on_failure(NET)
    assert res.before_attempt() > 0
    res.manual_retry()
    assert res.state is ConnectionState.CONNECTING
    assert res.before_attempt() == 0.0  # no wait after a manual retry
    assert res.health().status is HealthStatus.WAITING  # failures are still a fact
    res.on_success()
    res.manual_retry()
    assert res.state is ConnectionState.ACTIVE


def test_listener_metrics_and_diagnostics() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    seen: list[Transition] = []
    res = Resilience(
        build_policy("infinite", {}), clock, metrics, random.Random(1), listener=seen.append
    )
    assert res.metrics is metrics
    assert res.policy.preset == "infinite"
    assert res.schedule.failures == 0
    res.before_attempt()
    res.on_failure(NET)
    metrics.add_events_dropped(2)
    metrics.add_points_quarantined(1)
    assert [t.state for t in seen] == [
        ConnectionState.CONNECTING,
        ConnectionState.RETRYING_RAPID,
    ]
    fields = res.health_fields()
    assert fields["state"] == "retrying_rapid"
    assert fields["stage"] == "rapid"
    assert fields["last_error_category"] == "network"
    assert fields["breaker_state"] == "closed"
    assert res.last_error_wall == clock.time()
    diag = res.as_dict()
    json.dumps(diag)  # JSON friendly
    assert diag["policy"]["preset"] == "infinite"
    assert diag["metrics"]["gauges"]["state"] == "retrying_rapid"
    inputs = res.health_inputs(backlog_size=3, backlog_oldest_age=1.0, storage_failure=True)
    assert inputs.recent_dropped == 2
    assert inputs.recent_quarantined == 1
    assert inputs.storage_failure
    assert res.health().status is HealthStatus.WAITING
    # Empty engine: health fields with no error.
    fresh, _ = make()
    assert fresh.health_fields()["last_error"] is None
    assert fresh.health_fields()["stage"] is None
    assert fresh.next_retry_at_wall is None
    assert fresh.last_error_category is None


def test_seconds_since_last_event_defaults() -> None:
    res, clock = make()
    clock.advance(400)
    # No event yet: counted from start-up, so an idle HA shows as degraded
    # when an idle tolerance is set (off by default: then it is only a fact).
    res.before_attempt()
    res.on_success()
    assert res.health_inputs().seconds_since_last_event == 400
    assert res.health().status is HealthStatus.HEALTHY
    assert res.health(HealthTolerances(idle_events=300)).status is HealthStatus.DEGRADED
    res.metrics.add_events_received(3)
    clock.advance(5)
    assert res.health_inputs().seconds_since_last_event == 5
    assert res.health(HealthTolerances(idle_events=1)).status is HealthStatus.DEGRADED
    assert res.health().status is HealthStatus.HEALTHY


def test_day_long_outage_is_fast_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    # Captured log records would be the only thing growing; they are the test's, not ours.
    caplog.set_level(logging.ERROR)
    res, clock = make()
    tracemalloc.start()
    try:
        started = time.perf_counter()
        drive(res, clock, 24 * HOUR)
        assert res.state in (ConnectionState.RETRYING_PERSISTENT, ConnectionState.CIRCUIT_OPEN)
        drive(res, clock, HOUR, up=lambda _t: True, send_interval=10)
        gc.collect()
        baseline, _ = tracemalloc.get_traced_memory()
        # A second day-long outage must not grow memory.
        drive(res, clock, 24 * HOUR)
        drive(res, clock, HOUR, up=lambda _t: True, send_interval=10)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
        elapsed = time.perf_counter() - started
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert after - baseline < 64 * 1024
    assert res.state is ConnectionState.ACTIVE
    assert res.health(seconds_since_last_event=0).status is HealthStatus.HEALTHY
    m = res.metrics
    assert m.attempts > 1_000
    assert len(res.state_machine.history) <= 50
    assert m.retry_delays.retained <= 256
    assert m.retry_delays.count > 256
    assert m.time_to_recovery.count == 2
    assert m.time_to_recovery.min is not None
    assert m.time_to_recovery.min >= 24 * HOUR
    assert m.recent_dropped.bucket_count <= 61


async def test_async_uploader_loop() -> None:
    """Drive the facade as the uploader does: sleeps, pause, re-checks, resume, cancellation.

    Paused for an hour by a 401: 7 re-checks (60, 120, 240, 480, 900, 900, 900 s apart).
    """
    clock = FakeClock()
    res = Resilience(build_policy("infinite", NO_JITTER), clock, name="async")
    outcomes: list[DeliveryError | None] = [NET, NET, *[AUTH] * 8]
    gate = asyncio.Event()
    writes = 0

    async def write() -> None:
        nonlocal writes
        writes += 1
        if outcomes:
            outcome = outcomes.pop(0)
            if outcome is not None:
                raise outcome
            return
        await gate.wait()  # hang until cancelled

    async def uploader() -> None:
        while True:
            wait = res.before_attempt()
            if math.isinf(wait):
                await res.wait_until_resumed()
                continue
            if wait > 0:
                # Ask again at least once a second, as a woken uploader would.
                await clock.sleep(min(wait, 1.0))
                continue
            try:
                await write()
            except DeliveryError as err:
                res.on_failure(err)
                continue
            except asyncio.CancelledError:
                res.on_cancel()
                raise
            res.on_success()

    task = asyncio.create_task(uploader())
    await clock.run_for(10)
    assert writes == 3
    assert res.state is ConnectionState.PAUSED
    await clock.run_for(HOUR)
    assert writes == 3 + 7  # paused: only the slow re-checks
    assert res.state is ConnectionState.PAUSED
    outcomes[:] = [None]
    res.manual_retry()
    await clock.run_for(1)
    assert res.state is ConnectionState.ACTIVE
    assert writes == 12  # one success, then one hanging write
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not res.breaker.probe_in_flight


def test_outage_starts_at_the_first_failure_and_ends_at_a_success() -> None:
    """outage_started_wall: first failure's wall time, unmoved by retries, None after a success.

    Bad data and local storage errors are no outage; a config pause is one.
    """
    res, clock = make(**NO_JITTER)
    assert res.outage_started_wall is None
    res.before_attempt()
    res.on_success()
    clock.advance(7200)  # two quiet hours: no outage
    assert res.outage_started_wall is None
    assert res.before_attempt() == 0.0
    res.on_failure(BAD)
    res.on_failure(DISK)
    assert res.outage_started_wall is None
    clock.advance(1)
    first = clock.time()
    res.before_attempt()
    res.on_failure(NET)
    for _ in range(5):
        clock.advance(res.attempt_due_in())
        res.before_attempt()
        res.on_failure(NET)
    assert res.outage_started_wall == first
    assert res.outage_seconds() == clock.time() - first
    assert res.health_inputs().outage_seconds == clock.time() - first
    res.before_attempt()
    res.on_success()
    assert res.outage_started_wall is None
    assert res.outage_seconds() is None
    res.before_attempt()
    res.on_failure(AUTH)
    assert res.outage_started_wall == clock.time()
