"""Tests for the connection state machine."""

import pytest

from custom_components.ha_ingestor.core.retry import RetryStage
from custom_components.ha_ingestor.core.state import (
    ConnectionState,
    ConnectionStateMachine,
    Transition,
)
from tests.core.fake_time import FakeClock


def test_initial_state_and_time_in_state() -> None:
    clock = FakeClock(start=100.0, wall_offset=1_000.0)
    sm = ConnectionStateMachine(clock)
    assert sm.state is ConnectionState.DISCONNECTED
    assert sm.previous is None
    assert sm.entered_monotonic == 100.0
    assert sm.entered_wall == 1_100.0
    clock.advance(7)
    assert sm.time_in_state() == 7.0
    assert sm.history_size == 50


def test_transitions_record_previous_times_and_reason() -> None:
    clock = FakeClock(start=0.0, wall_offset=10.0)
    seen: list[Transition] = []
    sm = ConnectionStateMachine(clock, listener=seen.append)
    clock.advance(1)
    assert sm.transition(ConnectionState.CONNECTING, "first attempt")
    clock.advance(2)
    assert sm.transition(ConnectionState.RETRYING_RAPID, "network")
    assert not sm.transition(ConnectionState.RETRYING_RAPID, "network")  # no-op
    assert sm.state is ConnectionState.RETRYING_RAPID
    assert sm.previous is ConnectionState.CONNECTING
    assert sm.entered_monotonic == 3.0
    assert sm.entered_wall == 13.0
    assert sm.current.reason == "network"
    assert [t.state for t in seen] == [ConnectionState.CONNECTING, ConnectionState.RETRYING_RAPID]
    assert [t.state for t in sm.history] == [
        ConnectionState.DISCONNECTED,
        ConnectionState.CONNECTING,
        ConnectionState.RETRYING_RAPID,
    ]
    d = sm.as_dict()
    assert d["state"] == "retrying_rapid"
    assert d["previous"] == "connecting"
    assert d["history"][0]["previous"] is None
    assert d["history"][2] == {
        "state": "retrying_rapid",
        "previous": "connecting",
        "monotonic": 3.0,
        "wall": 13.0,
        "reason": "network",
    }


def test_history_is_bounded() -> None:
    clock = FakeClock()
    sm = ConnectionStateMachine(clock, history_size=5)
    for i in range(1_000):
        sm.transition(ConnectionState.ACTIVE if i % 2 else ConnectionState.RETRYING_RAPID)
    assert len(sm.history) == 5
    assert sm.history_size == 5
    with pytest.raises(ValueError, match="history_size"):
        ConnectionStateMachine(clock, history_size=0)


def test_listener_errors_are_contained(caplog: pytest.LogCaptureFixture) -> None:
    def boom(t: Transition) -> None:
        raise RuntimeError("bug")

    sm = ConnectionStateMachine(FakeClock(), initial=ConnectionState.ACTIVE, listener=boom)
    assert sm.transition(ConnectionState.RETRYING_RAPID)
    assert "listener failed" in caplog.text
    sm.set_listener(None)
    assert sm.transition(ConnectionState.ACTIVE)


def test_state_helpers() -> None:
    assert ConnectionState.for_stage(RetryStage.RAPID) is ConnectionState.RETRYING_RAPID
    assert ConnectionState.for_stage(RetryStage.MODERATE) is ConnectionState.RETRYING_MODERATE
    assert ConnectionState.for_stage(RetryStage.PERSISTENT) is ConnectionState.RETRYING_PERSISTENT
    assert {s for s in ConnectionState if s.retrying} == {
        ConnectionState.RETRYING_RAPID,
        ConnectionState.RETRYING_MODERATE,
        ConnectionState.RETRYING_PERSISTENT,
    }
    assert {s for s in ConnectionState if s.halted} == {
        ConnectionState.PAUSED,
        ConnectionState.STOPPED,
    }
