"""Tests for the circuit breaker."""

import asyncio

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.ha_ingestor.core.breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    Permit,
)
from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.retry import BreakerConfig
from tests.core.fake_time import FakeClock

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


def admit(breaker: CircuitBreaker) -> Permit:
    """A permit the breaker must grant."""
    permit = breaker.allow()
    assert permit is not None
    return permit


def fail(breaker: CircuitBreaker, err: DeliveryError | ErrorCategory = NET) -> None:
    """One admitted call that failed."""
    permit = breaker.allow()
    assert permit is not None
    breaker.record_failure(permit, err)


def succeed(breaker: CircuitBreaker) -> None:
    """One admitted call that succeeded."""
    permit = breaker.allow()
    assert permit is not None
    breaker.record_success(permit)


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.config.failure_threshold):
        p = admit(breaker)
        breaker.record_failure(p, NET)


def test_closed_to_open_after_threshold() -> None:
    clock = FakeClock()
    b = make(clock)
    assert b.state is BreakerState.CLOSED
    assert b.enabled
    for i in range(2):
        p = admit(b)
        b.record_failure(p, NET)
        assert b.failure_count == i + 1
        assert b.state is BreakerState.CLOSED
    p = admit(b)
    b.record_failure(p, ErrorCategory.TIMEOUT)
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
    fail(b)
    fail(b)
    succeed(b)
    assert b.failure_count == 0
    fail(b)
    fail(b)
    assert b.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "category",
    [ErrorCategory.AUTH, ErrorCategory.TLS, ErrorCategory.NOT_FOUND, ErrorCategory.BAD_DATA,
     ErrorCategory.TOO_LARGE, ErrorCategory.STORAGE],
)  # fmt: skip
def test_non_transient_neither_trips_nor_resets(category: ErrorCategory) -> None:
    b = make(FakeClock())
    fail(b)
    fail(b)
    for _ in range(10):
        fail(b, DeliveryError(category, "x"))
    assert b.failure_count == 2
    assert b.state is BreakerState.CLOSED
    fail(b)
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
    probe = admit(b)
    assert b.probe_in_flight
    assert not b.allow()  # second caller refused while probing
    b.record_success(probe)
    assert b.state is BreakerState.HALF_OPEN
    assert b.success_count == 1
    p = admit(b)
    b.record_success(p)
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
        p = admit(b)
        b.record_failure(p, NET)
        assert b.state is BreakerState.OPEN
        assert b.open_timeout == timeout
        assert b.seconds_until_half_open() == timeout
    assert b.opened_count == 4
    # A success after a long outage resets the open period.
    clock.advance(35)
    for _ in range(2):
        p = admit(b)
        b.record_success(p)
    assert b.state is BreakerState.CLOSED
    trip(b)
    assert b.open_timeout == 10.0


def test_probe_success_then_failure_reopens() -> None:
    clock = FakeClock()
    b = make(clock, successes=3)
    trip(b)
    clock.advance(10)
    p = admit(b)
    b.record_success(p)
    p = admit(b)
    b.record_failure(p, NET)
    assert b.state is BreakerState.OPEN
    clock.advance(20)
    assert b.state is BreakerState.HALF_OPEN
    assert b.success_count == 0


def test_non_transient_probe_releases_slot() -> None:
    clock = FakeClock()
    b = make(clock)
    trip(b)
    clock.advance(10)
    p = admit(b)
    b.record_failure(p, DeliveryError(ErrorCategory.BAD_DATA, "bad"))
    assert b.state is BreakerState.HALF_OPEN
    assert not b.probe_in_flight
    assert b.allow()


def test_results_while_open_change_nothing() -> None:
    """Calls admitted before the circuit opened report late: statistics only."""
    clock = FakeClock()
    b = make(clock)
    late = [b.allow(), b.allow()]
    trip(b)
    assert late[0] is not None
    assert late[1] is not None
    b.record_failure(late[0], NET)
    b.record_success(late[1])
    assert b.state is BreakerState.OPEN
    assert b.seconds_until_half_open() == 10.0
    assert b.as_dict()["total_successes"] == 1
    # A stale permit stays stale in half-open: it neither takes nor frees the slot.
    stale = b.allow()
    assert stale is None
    clock.advance(10)
    probe = admit(b)
    b.record_success(late[1])  # spent already: ignored entirely
    assert b.success_count == 0
    assert b.probe_in_flight
    b.release(probe)


def test_stale_probe_cannot_close_or_admit_a_second_probe() -> None:
    """A probe of an earlier half-open period reports after the circuit moved on."""
    clock = FakeClock()
    b = make(clock, successes=1)
    trip(b)
    clock.advance(10)
    old_probe = b.allow()
    assert old_probe is not None
    b.reset()  # manual reset while the probe is out
    trip(b)
    clock.advance(10)
    probe = b.allow()
    assert probe is not None
    # The old probe's verdicts change nothing and do not free the new probe's slot.
    b.record_success(old_probe)
    assert b.state is BreakerState.HALF_OPEN
    b.release(old_probe)
    assert b.allow() is None
    b.record_failure(probe, NET)
    assert b.state is BreakerState.OPEN


def test_release_and_reset() -> None:
    clock = FakeClock()
    b = make(clock)
    trip(b)
    clock.advance(10)
    p = admit(b)
    b.release(p)
    assert not b.probe_in_flight
    b.release(p)  # harmless twice
    b.reset()
    assert b.state is BreakerState.CLOSED
    assert b.failure_count == 0
    p = admit(b)
    b.release(p)  # no verdict in closed
    b.reset()  # reset while closed is fine


def test_disabled_breaker_always_allows() -> None:
    clock = FakeClock()
    b = make(clock, enabled=False)
    assert not b.enabled
    for _ in range(100):
        p = admit(b)
        b.record_failure(p, NET)
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
    fail(b)
    clock.advance(5)
    p = admit(b)
    b.record_success(p)
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
    fail(b)
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
    fail(b, ErrorCategory.NETWORK)
    assert b.state is BreakerState.OPEN
    clock.advance(1)
    b.half_open_now()
    assert b.state is BreakerState.HALF_OPEN
    probe = admit(b)
    assert not b.allow()  # still exactly one probe at a time
    b.record_failure(probe, ErrorCategory.NETWORK)
    assert b.state is BreakerState.OPEN
    assert b.seconds_until_half_open() == 120  # the failed trial grows the period


# --- property: permits under any interleaving ---------------------------------------------

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("allow"), st.just(0)),
        st.tuples(
            st.sampled_from(["success", "failure", "bad_data", "release"]), st.integers(0, 7)
        ),
        st.tuples(st.just("advance"), st.sampled_from([1.0, 5.0, 10.0, 40.0])),
        st.tuples(st.sampled_from(["reset", "half_open_now"]), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(ops=_OPS, successes=st.integers(1, 3))
def test_permits_hold_under_random_interleavings(
    ops: list[tuple[str, float]], successes: int
) -> None:
    """Random interleavings of admissions, late results, time, resets (400 runs).

    Invariants after every step: at most one unsettled probe permit exists and
    it is the one the breaker holds; the circuit closes from half-open only on
    the result of the permit holding the probe slot; settling a permit twice,
    or settling a permit of an earlier state period, changes neither the state
    nor the slot.
    """
    clock = FakeClock()
    b = make(clock, threshold=2, successes=successes)
    out: list[Permit] = []
    for op, arg in ops:
        before = b.state
        holder = b._probe
        if op == "allow":
            permit = b.allow()
            if permit is not None:
                out.append(permit)
            continue
        if op == "advance":
            clock.advance(arg)
            continue
        if op == "reset":
            b.reset()
            continue
        if op == "half_open_now":
            b.half_open_now()
            continue
        if not out:
            continue
        permit = out[int(arg) % len(out)]
        was_spent = permit.spent
        current = permit.epoch == b._epoch and (not permit.probe or holder is permit)
        match op:
            case "success":
                b.record_success(permit)
            case "failure":
                b.record_failure(permit, NET)
            case "bad_data":
                b.record_failure(permit, ErrorCategory.BAD_DATA)
            case _:
                b.release(permit)
        assert permit.spent
        if was_spent or not current:
            assert b.state is before
            assert b._probe is holder
        if before is BreakerState.HALF_OPEN and b.state is BreakerState.CLOSED:
            assert permit is holder
            assert op == "success"
        live_probes = [p for p in out if p.probe and not p.spent and p.epoch == b._epoch]
        assert len(live_probes) <= 1
        if b.state is BreakerState.HALF_OPEN:
            assert live_probes == ([b._probe] if b._probe is not None else [])
        else:
            assert b._probe is None
