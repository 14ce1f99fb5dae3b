"""Tests for the circuit breaker."""

import asyncio

import pytest

from custom_components.ha_ingestor.core.breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
)
from custom_components.ha_ingestor.core.clock import FakeClock
from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.retry import BreakerConfig

NET = DeliveryError(ErrorCategory.NETWORK, "connection refused")


def make(
    clock: FakeClock,
    *,
    threshold: int = 3,
    reset: float = 10.0,
    successes: int = 2,
    max_reset: float = 35.0,
    enabled: bool = True,
) -> CircuitBreaker:
    return CircuitBreaker(
        BreakerConfig(
            enabled=enabled,
            failure_threshold=threshold,
            reset_timeout=reset,
            success_threshold=successes,
            max_reset_timeout=max_reset,
        ),
        clock,
        name="test",
    )


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.config.failure_threshold):
        assert breaker.allow()
        breaker.record_failure(NET)


def test_closed_to_open_after_threshold() -> None:
    clock = FakeClock()
    b = make(clock)
    assert b.state is BreakerState.CLOSED
    assert b.enabled
    for i in range(2):
        assert b.allow()
        b.record_failure(NET)
        assert b.failure_count == i + 1
        assert b.state is BreakerState.CLOSED
    assert b.allow()
    b.record_failure(ErrorCategory.TIMEOUT)
    assert b.state is BreakerState.OPEN
    assert b.opened_count == 1
    assert not b.allow()
    assert b.refused_count == 1
    assert b.seconds_until_half_open() == 10.0
    clock.advance(4)
    assert b.seconds_until_half_open() == 6.0
    assert b.time_in_state() == 4.0


def test_success_resets_failure_count_in_closed() -> None:
    b = make(FakeClock())
    b.record_failure(NET)
    b.record_failure(NET)
    b.record_success()
    assert b.failure_count == 0
    b.record_failure(NET)
    b.record_failure(NET)
    assert b.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "category",
    [ErrorCategory.AUTH, ErrorCategory.TLS, ErrorCategory.NOT_FOUND, ErrorCategory.BAD_DATA,
     ErrorCategory.TOO_LARGE, ErrorCategory.STORAGE],
)  # fmt: skip
def test_non_transient_neither_trips_nor_resets(category: ErrorCategory) -> None:
    b = make(FakeClock())
    b.record_failure(NET)
    b.record_failure(NET)
    for _ in range(10):
        b.record_failure(DeliveryError(category, "x"))
    assert b.failure_count == 2
    assert b.state is BreakerState.CLOSED
    b.record_failure(NET)
    assert b.state is BreakerState.OPEN


def test_open_to_half_open_after_timeout_and_time_in_state() -> None:
    clock = FakeClock()
    b = make(clock)
    trip(b)
    clock.advance(10)
    assert b.seconds_until_half_open() == 0.0
    assert b.state is BreakerState.HALF_OPEN
    clock.advance(5)
    # Time in half-open counts from when the open period elapsed.
    assert b.time_in_state() == 5.0


def test_half_open_single_probe_then_close() -> None:
    clock = FakeClock()
    b = make(clock, successes=2)
    trip(b)
    clock.advance(10)
    assert b.allow()
    assert b.probe_in_flight
    assert not b.allow()  # second caller refused while probing
    b.record_success()
    assert b.state is BreakerState.HALF_OPEN
    assert b.success_count == 1
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert b.failure_count == 0
    assert b.open_timeout == 10.0


def test_probe_failure_reopens_with_growing_timeout() -> None:
    clock = FakeClock()
    b = make(clock, reset=10, max_reset=35)
    trip(b)
    expected = [20.0, 35.0, 35.0]
    for timeout in expected:
        clock.advance(b.seconds_until_half_open())
        assert b.allow()
        b.record_failure(NET)
        assert b.state is BreakerState.OPEN
        assert b.open_timeout == timeout
        assert b.seconds_until_half_open() == timeout
    assert b.opened_count == 4
    # A success after a long outage resets the open period.
    clock.advance(35)
    for _ in range(2):
        assert b.allow()
        b.record_success()
    assert b.state is BreakerState.CLOSED
    trip(b)
    assert b.open_timeout == 10.0


def test_probe_success_then_failure_reopens() -> None:
    clock = FakeClock()
    b = make(clock, successes=3)
    trip(b)
    clock.advance(10)
    assert b.allow()
    b.record_success()
    assert b.allow()
    b.record_failure(NET)
    assert b.state is BreakerState.OPEN
    clock.advance(20)
    assert b.state is BreakerState.HALF_OPEN
    assert b.success_count == 0


def test_non_transient_probe_releases_slot() -> None:
    clock = FakeClock()
    b = make(clock)
    trip(b)
    clock.advance(10)
    assert b.allow()
    b.record_failure(DeliveryError(ErrorCategory.BAD_DATA, "bad"))
    assert b.state is BreakerState.HALF_OPEN
    assert not b.probe_in_flight
    assert b.allow()


def test_results_while_open_change_nothing() -> None:
    clock = FakeClock()
    b = make(clock)
    trip(b)
    b.record_failure(NET)
    b.record_success()
    assert b.state is BreakerState.OPEN
    assert b.seconds_until_half_open() == 10.0
    # Results in half-open without a probe (stale calls) are ignored too.
    clock.advance(10)
    b.record_success()
    b.record_failure(NET)
    assert b.state is BreakerState.HALF_OPEN
    assert b.success_count == 0


def test_release_and_reset() -> None:
    clock = FakeClock()
    b = make(clock)
    trip(b)
    clock.advance(10)
    assert b.allow()
    b.release()
    assert not b.probe_in_flight
    b.release()  # harmless twice
    b.reset()
    assert b.state is BreakerState.CLOSED
    assert b.failure_count == 0
    assert b.allow()
    b.release()  # no-op in closed
    b.reset()  # reset while closed is fine


def test_disabled_breaker_always_allows() -> None:
    clock = FakeClock()
    b = make(clock, enabled=False)
    assert not b.enabled
    for _ in range(100):
        assert b.allow()
        b.record_failure(NET)
    assert b.state is BreakerState.CLOSED
    assert b.failure_count == 100
    assert b.seconds_until_half_open() == 0.0
    assert b.opened_count == 0


def test_listener_and_as_dict() -> None:
    clock = FakeClock()
    seen: list[tuple[BreakerState, BreakerState]] = []
    b = CircuitBreaker(
        BreakerConfig(
            failure_threshold=1, reset_timeout=5, success_threshold=1, max_reset_timeout=5
        ),
        clock,
        listener=lambda old, new: seen.append((old, new)),
    )
    b.record_failure(NET)
    clock.advance(5)
    assert b.allow()
    b.record_success()
    assert seen == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    d = b.as_dict()
    assert d["state"] == "closed"
    assert d["opened_count"] == 1
    assert d["total_failures"] == 1
    assert d["total_successes"] == 1


def test_listener_errors_are_contained(caplog: pytest.LogCaptureFixture) -> None:
    def boom(old: BreakerState, new: BreakerState) -> None:
        raise RuntimeError("listener bug")

    b = CircuitBreaker(BreakerConfig(failure_threshold=1), FakeClock(), listener=boom)
    b.record_failure(NET)
    assert b.state is BreakerState.OPEN
    assert "listener failed" in caplog.text


async def test_call_success_and_failure() -> None:
    clock = FakeClock()
    b = make(clock, threshold=2)

    async def ok() -> int:
        return 42

    async def fail() -> int:
        raise NET

    assert await b.call(ok) == 42
    for _ in range(2):
        with pytest.raises(DeliveryError):
            await b.call(fail)
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        await b.call(ok)
    assert info.value.retry_in == 10.0
    assert not info.value.probe_busy
    assert "retry in" in str(info.value)


async def test_unexpected_exception_is_not_a_failure() -> None:
    b = make(FakeClock(), threshold=1)

    async def bug() -> None:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        await b.call(bug)
    assert b.failure_count == 0
    assert b.state is BreakerState.CLOSED


async def test_exactly_one_probe_under_concurrency() -> None:
    clock = FakeClock()
    b = make(clock, successes=1)
    trip(b)
    clock.advance(10)
    gate = asyncio.Event()
    entered = 0
    refusals: list[CircuitOpenError] = []

    async def probe() -> str:
        nonlocal entered
        entered += 1
        await gate.wait()
        return "ok"

    async def caller() -> str:
        try:
            return await b.call(probe)
        except CircuitOpenError as err:
            refusals.append(err)
            return "refused"

    tasks = [asyncio.create_task(caller()) for _ in range(100)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert entered == 1
    assert b.probe_in_flight
    gate.set()
    results = await asyncio.gather(*tasks)
    assert results.count("ok") == 1
    assert results.count("refused") == 99
    assert all(err.probe_busy for err in refusals)
    assert "probe is in flight" in str(refusals[0])
    assert b.state is BreakerState.CLOSED


async def test_cancelled_probe_releases_slot() -> None:
    clock = FakeClock()
    b = make(clock)
    trip(b)
    clock.advance(10)

    async def hang() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(b.call(hang))
    await asyncio.sleep(0)
    assert b.probe_in_flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not b.probe_in_flight
    assert b.state is BreakerState.HALF_OPEN  # cancellation is no verdict
    assert b.allow()


async def test_guard_context_manager() -> None:
    clock = FakeClock()
    b = make(clock, threshold=1)
    async with b.guard():
        pass
    assert b.as_dict()["total_successes"] == 1
    with pytest.raises(DeliveryError):
        async with b.guard():
            raise NET
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        async with b.guard():
            pass  # pragma: no cover


def test_half_open_now_ends_the_open_period_early() -> None:
    """A reachability probe's verdict: open -> half-open at once; one trial call."""
    clock = FakeClock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=1, reset_timeout=60), clock)
    b.half_open_now()  # closed: nothing to do
    assert b.state is BreakerState.CLOSED
    b.record_failure(ErrorCategory.NETWORK)
    assert b.state is BreakerState.OPEN
    clock.advance(1)
    b.half_open_now()
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()
    assert not b.allow()  # still exactly one probe at a time
    b.record_failure(ErrorCategory.NETWORK)
    assert b.state is BreakerState.OPEN
    assert b.seconds_until_half_open() == 120  # the failed trial grows the period
