"""The throttled log: one line per cause per interval, with the count held back."""

import logging

import pytest

from custom_components.ha_ingestor.core.logthrottle import ThrottledLog


def test_one_line_per_cause_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """1 000 rejections in one interval log 1 line; the next interval's line says 999."""
    now = [0.0]
    throttle = ThrottledLog(logging.getLogger("t"), interval=60.0, monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        logged = sum(throttle.warning("reject", "point rejected: %s", i) for i in range(1000))
        assert logged == 1
        assert throttle.warning("other", "another cause")
        now[0] = 61.0
        assert throttle.warning("reject", "point rejected: %s", "x")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "point rejected: 0",
        "another cause",
        "point rejected: x (and 999 more like it in the last 60 s)",
    ]


def test_forget_lets_the_next_line_through() -> None:
    """After forget(), the same cause logs again at once."""
    throttle = ThrottledLog(logging.getLogger("t"), interval=60.0, monotonic=lambda: 0.0)
    assert throttle.warning("c", "m")
    assert not throttle.warning("c", "m")
    throttle.forget("c")
    assert throttle.warning("c", "m")
