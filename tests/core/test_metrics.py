"""Tests for metrics, summaries and windowed counters."""

import pytest

from custom_components.ha_ingestor.core.errors import ErrorCategory
from custom_components.ha_ingestor.core.metrics import Metrics, Summary, WindowCounter
from tests.core.fake_time import FakeClock


def test_summary_aggregates_and_percentiles() -> None:
    s = Summary(size=100)
    assert s.percentile(50) is None
    assert s.as_dict()["mean"] is None
    for v in range(1, 101):
        s.observe(float(v))
    d = s.as_dict()
    assert d["count"] == 100
    assert d["sum"] == 5050.0
    assert d["min"] == 1.0
    assert d["max"] == 100.0
    assert d["last"] == 100.0
    assert d["mean"] == 50.5
    assert d["p50"] == 50.0
    assert d["p95"] == 95.0
    assert s.percentile(0) == 1.0
    assert s.percentile(100) == 100.0


def test_summary_is_bounded() -> None:
    s = Summary(size=8)
    for v in range(100_000):
        s.observe(float(v))
    assert s.retained == 8
    assert s.count == 100_000
    assert s.min == 0.0
    assert s.percentile(50) == 99_995.0  # over the recent ring only
    with pytest.raises(ValueError, match="size"):
        Summary(size=0)


def test_window_counter() -> None:
    clock = FakeClock(start=0.0)
    w = WindowCounter(clock, horizon=600, bucket=60)
    assert w.horizon == 600
    w.add(0)  # ignored
    w.add(3)
    w.add(2)
    assert w.bucket_count == 1
    clock.advance(120)
    w.add(1)
    assert w.recent() == 6
    assert w.recent(60) == 1
    clock.advance(540)
    assert w.recent() == 1
    clock.advance(10_000)
    assert w.recent() == 0
    assert w.total == 6
    for _ in range(10_000):
        clock.advance(30)
        w.add()
    assert w.bucket_count <= 11
    assert w.recent(10_000) == w.recent(600)
    with pytest.raises(ValueError, match="bucket"):
        WindowCounter(clock, horizon=10, bucket=60)


def test_metrics_counters_gauges_and_dict() -> None:
    clock = FakeClock(start=0.0)
    m = Metrics(clock)
    assert m.since_last_success() is None
    assert m.since_last_event() is None
    m.add_events_received(5)
    m.record_attempt()
    m.record_failure(ErrorCategory.NETWORK)
    m.record_attempt()
    m.record_failure(ErrorCategory.NETWORK)
    m.record_attempt()
    m.record_failure(ErrorCategory.AUTH)
    m.record_retry_delay(1.0)
    m.record_retry_delay(3.0)
    m.set_retry("rapid", 2, 2)
    m.set_state("retrying_rapid")
    clock.advance(10)
    m.set_state("retrying_rapid")  # unchanged: keeps the time in state
    m.record_attempt()
    m.record_success(points=4)
    m.add_events_sent(1)
    m.record_recovery(10.0)
    m.add_events_dropped(2)
    m.add_points_quarantined(3)
    clock.advance(5)
    d = m.as_dict()
    assert d["counters"] == {
        "attempts": 4,
        "successes": 1,
        "failures": 3,
        "failures_by_category": {"network": 2, "auth": 1},
        "events_received": 5,
        "events_sent": 5,
        "events_dropped": 2,
        "points_quarantined": 3,
    }
    g = d["gauges"]
    assert g["state"] == "retrying_rapid"
    assert g["stage"] == "rapid"
    assert g["attempt"] == 2
    assert g["consecutive_failures"] == 2
    assert g["time_in_state"] == 15.0
    assert g["since_last_success"] == 5.0
    assert g["since_last_event"] == 15.0
    assert g["recent_dropped"] == 2
    assert g["recent_quarantined"] == 3
    assert d["summaries"]["retry_delay_seconds"]["max"] == 3.0
    assert d["summaries"]["time_to_recovery_seconds"]["last"] == 10.0
    assert m.total_failures == 3
