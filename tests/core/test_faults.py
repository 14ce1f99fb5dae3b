"""Fault injection against the real InfluxDB 1.6.7 fixture: network, HTTP, disk, input.

The pipeline is the core one from ``tests.core.test_pipeline`` (``Harness``):
retry delays run on a FakeClock, the network (through ``tests.proxy.FaultProxy``),
the SQLite spool and InfluxDB are real.
"""

import asyncio
from collections.abc import Callable
import itertools
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, event, given, settings, strategies as st
import pytest

from custom_components.ha_ingestor.core.encoder import EventRecord
from custom_components.ha_ingestor.core.errors import ErrorCategory
from custom_components.ha_ingestor.core.state import ConnectionState
from tests.core.fake_time import advance_until
from tests.core.test_pipeline import BASE_NS, Harness, count_points, record
from tests.proxy import FaultProxy, Mode
from tests.servers import InfluxV1Server, unique_name

N = 40


async def park(h: Harness, condition: Callable[[], bool]) -> None:
    """Until ``condition`` holds while the uploader sleeps on the fake clock.

    So no attempt is in flight when the test changes the fault.
    """
    await advance_until(h.clock, lambda: condition() and h.clock.next_deadline() is not None)


async def times_in_db(server: InfluxV1Server, db: str) -> list[int]:
    rows = await server.aquery('SELECT "value" FROM "°C"', db)
    return [int(r["time"]) for r in rows]


# --- 1. TCP faults -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "delay", "timeout", "expected"),
    [
        pytest.param(Mode.RESET, 0.0, 5.0, ErrorCategory.NETWORK, id="reset"),
        pytest.param(Mode.BLACKHOLE, 0.0, 0.3, ErrorCategory.TIMEOUT, id="blackhole"),
        pytest.param(Mode.SLOW, 1.0, 0.3, ErrorCategory.TIMEOUT, id="slow-timeout"),
    ],
)
async def test_tcp_fault_then_pass_delivers_everything_once(
    *,
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
    mode: Mode,
    delay: float,
    timeout: float,
    expected: ErrorCategory,
) -> None:
    """40 points sent through a faulty proxy: lost = 0, duplicated = 0, spool left = 0.

    During the fault the spool keeps all 40 (nothing deleted without a 2xx) and the
    recorded category is NETWORK for an RST, TIMEOUT for a blackhole (0.3 s sink
    timeout) and TIMEOUT for a link delaying each chunk 1 s (0.3 s timeout; the
    late request may still reach InfluxDB, the resend overwrites it: still
    exactly 40). Recovery after the fault is lifted = the retry delay already
    scheduled (fake seconds), with no further failure; for the reset, at most
    that (the reachability probe may find the port answering sooner).
    """
    async with FaultProxy(influxdb_v1.port, mode=mode) as proxy:
        proxy.delay = delay
        h = Harness(
            http_session, tmp_path / "spool.sqlite", [proxy.url], influx_db, timeout=timeout
        )
        await h.start()
        try:
            await h.capture_flushed(N)
            await park(h, lambda: h.resilience.consecutive_failures >= 2)
            assert h.resilience.last_error_category is expected
            assert h.pending() == N
            failures = h.resilience.consecutive_failures
            scheduled = h.resilience.next_retry_in
            assert scheduled is not None
            assert scheduled > 0

            proxy.set_mode(Mode.PASS)
            lifted = h.clock.monotonic()
            await h.until(h.drained)
            recovery = h.clock.monotonic() - lifted
        finally:
            await h.stop()
        if expected is ErrorCategory.NETWORK:
            # A refusal is probed (TCP connect once a second): the retry may come early.
            assert recovery <= scheduled + 1e-6
        else:
            assert recovery == pytest.approx(scheduled)
        assert h.resilience.metrics.time_to_recovery.count == 1
        assert sum(h.resilience.metrics.failures.values()) == failures
    assert proxy.active == 0
    assert h.pending() == 0
    assert h.resilience.metrics.events_sent == N
    assert await count_points(influxdb_v1, influx_db) == N
    assert await times_in_db(influxdb_v1, influx_db) == [
        BASE_NS + i * 1_000_000_000 for i in range(N)
    ]


async def test_slow_link_within_timeout_succeeds_without_error(
    http_session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """Each chunk delayed 20 ms with a 10 s timeout: failures = 0, lost = 0, duplicated = 0."""
    async with FaultProxy(influxdb_v1.port, mode=Mode.SLOW) as proxy:
        proxy.delay = 0.02
        h = Harness(
            http_session,
            tmp_path / "spool.sqlite",
            [proxy.url],
            influx_db,
            timeout=10,
            batch_points=10,
        )
        await h.start()
        try:
            await h.capture_flushed(N)
            await h.until(h.drained)
            proxy.set_mode(Mode.PASS)
        finally:
            await h.stop()
    assert proxy.active == 0
    assert h.resilience.last_error is None
    assert h.resilience.consecutive_failures == 0
    assert h.resilience.metrics.events_sent == N
    assert await count_points(influxdb_v1, influx_db) == N


# --- 2. 429 / 503 with Retry-After -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("429 Too Many Requests", ErrorCategory.RATE_LIMITED),
        ("503 Service Unavailable", ErrorCategory.SERVER),
    ],
)
async def test_retry_after_is_honoured_then_everything_lands_once(
    *,
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
    status: str,
    expected: ErrorCategory,
) -> None:
    """Retry-After: 7 -> every retry delay >= 7 fake seconds; then lost = 0, duplicated = 0.

    InfluxDB cannot answer 429/503 on demand, so the proxy answers the HTTP request
    itself (``Mode.ANSWER``) with ``HTTP/1.1 <status>\\r\\nRetry-After: 7\\r\\n
    Content-Length: 0`` and never forwards it. Three answered requests are at
    least 7 fake seconds apart on the wire; the engine's recorded retry delays
    are all >= 7 (the rapid stage alone would wait ~1-2 s).
    """
    answer = f"HTTP/1.1 {status}\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n".encode()
    async with FaultProxy(influxdb_v1.port) as proxy:
        proxy.set_mode(Mode.ANSWER, answer=answer)
        h = Harness(http_session, tmp_path / "spool.sqlite", [proxy.url], influx_db)
        seen: list[float] = []
        proxy.on_request = lambda _mode: seen.append(h.clock.monotonic())
        await h.start()
        try:
            await h.capture_flushed(N)
            await park(h, lambda: h.resilience.consecutive_failures >= 3)
            assert h.resilience.last_error_category is expected
            last_error = h.resilience.last_error
            assert last_error is not None
            assert last_error.retry_after == 7
            assert h.resilience.next_retry_in is not None
            assert h.resilience.next_retry_in >= 7
            delays = h.resilience.metrics.retry_delays
            assert delays.count == 3
            assert delays.min is not None
            assert delays.min >= 7
            assert len(seen) == 3
            assert all(b - a >= 7 for a, b in itertools.pairwise(seen))
            assert h.pending() == N

            proxy.set_mode(Mode.PASS)
            await h.until(h.drained)
        finally:
            await h.stop()
    assert proxy.active == 0
    assert h.pending() == 0
    assert h.resilience.metrics.events_sent == N
    assert await count_points(influxdb_v1, influx_db) == N


# --- 3. disk full ----------------------------------------------------------------------


async def test_disk_full_falls_back_to_memory_and_delivers_everything(
    http_session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """SQLite "database or disk is full" (PRAGMA max_page_count) mid-run.

    Figures: no exception reaches the caller, the spool runs in memory
    (storage_failed and in_memory), received = delivered + dropped with
    dropped = 0, lost = 0 (InfluxDB count exact), duplicated = 0.
    """
    h = Harness(http_session, tmp_path / "spool.sqlite", [influxdb_v1.url], influx_db)
    await h.start()
    try:
        # Some points go through the disk first.
        for i in range(10):
            h.pipeline.capture(record(i))
        await h.pipeline.flush()
        await h.until(h.drained)

        def cap_pages() -> int:
            disk = h.spool._disk  # the fault needs the real connection
            assert disk is not None
            with h.spool._lock:  # not while the uploader uses it
                pages: int = disk.conn.execute("PRAGMA page_count").fetchone()[0]
                disk.conn.execute(f"PRAGMA max_page_count = {pages}")
            return pages

        await asyncio.to_thread(cap_pages)
        # Enough points that their compressed segment needs new pages.
        for i in range(10, 10 + 3000):
            h.pipeline.capture(record(i, value=f"{i}.5"))
        result = await h.pipeline.flush()  # must not raise
        assert result is not None
        assert result.stored == 3000
        assert result.dropped == 0
        stats = h.pipeline.stats
        assert stats is not None
        assert stats.storage_failed
        assert stats.in_memory
        assert stats.last_storage_error is not None
        assert "full" in stats.last_storage_error

        # More points after the fail-over land in memory too.
        for i in range(3010, 3030):
            h.pipeline.capture(record(i))
        await h.pipeline.flush()
        await h.until(h.drained)
        assert h.spool.storage_failed
    finally:
        await h.stop()
    metrics = h.resilience.metrics
    assert metrics.events_received == 3030
    assert metrics.events_dropped == 0
    assert metrics.events_received == metrics.events_sent + metrics.events_dropped
    assert await count_points(influxdb_v1, influx_db) == 3030


# --- 4. bad input ----------------------------------------------------------------------


class _Broken:
    """An attribute value whose ``__str__`` and ``__format__`` raise.

    ``__repr__`` works so hypothesis can still report a falsifying example.
    """

    def __str__(self) -> str:
        raise RuntimeError("broken __str__")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("broken __format__")

    def __repr__(self) -> str:
        return "_Broken()"

    def __hash__(self) -> int:
        return 1


_WEIRD_TEXT = st.sampled_from(
    [
        "",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "1e400",
        "unknown",
        "unavailable",
        "on",
        "off",
        "\ud800",
        "a\ud800b",
        "\udfff\ud800",
        "line\nbreak",
        "cr\rlf\r\n",
        "tab\there",
        "\x00nul",
        "\x1b[31mansi",
        "#comment",
        "_reserved",
        "time",
        "a b,c=d",
        'quo"te',
        "back\\",
        "\\",
        "\u2028sep",
        "ä°C",
        str(2**64),
        str(-(2**63) - 1),
    ]
)
_TEXT = st.one_of(_WEIRD_TEXT, st.text(max_size=40))
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
    st.binary(max_size=20),
    st.just(_Broken()),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(_TEXT, inner, max_size=3),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
        st.sets(st.text(max_size=5), max_size=3),
        st.tuples(inner, inner),
    ),
    max_leaves=8,
)
_KEYS = st.one_of(
    _WEIRD_TEXT,
    st.sampled_from(["unit_of_measurement", "friendly_name", "value", "state", "#x", "_y"]),
    st.text(max_size=20),
)
_ENTITY_IDS = st.one_of(
    st.from_regex(r"[a-z_]{1,10}\.[a-z0-9_]{1,12}", fullmatch=True),
    _TEXT,
    _TEXT.map(lambda t: f"sensor.{t}"),
)
_STATES = st.one_of(
    _TEXT,
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(2**100), max_value=2**100).map(str),
)
_RECORD_PARTS = st.tuples(_ENTITY_IDS, _STATES, st.dictionaries(_KEYS, _VALUES, max_size=6))


def _records(parts: list[tuple[str, str, dict[str, Any]]]) -> list[EventRecord]:
    """Unique timestamps, so two points can never overwrite each other."""
    return [
        EventRecord(
            entity_id=entity_id,
            state=state,
            attributes=attributes,
            time_ns=BASE_NS + i * 1_000_000,
            last_changed_ns=BASE_NS + i * 1_000_000,
        )
        for i, (entity_id, state, attributes) in enumerate(parts)
    ]


async def _points_in(server: InfluxV1Server, db: str) -> int:
    """Points per measurement, summed.

    Not ``SELECT * FROM /.*/``: when a field has different types in different
    measurements, InfluxQL keeps one type and silently omits the other rows.
    """
    names = [row["name"] for row in await server.aquery("SHOW MEASUREMENTS", db)]
    total = 0
    for name in names:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        total += len(await server.aquery(f'SELECT * FROM "{quoted}"', db))
    return total


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(parts=st.lists(_RECORD_PARTS, min_size=1, max_size=12))
async def test_bad_input_never_crashes_and_every_record_is_accounted_for(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    tmp_path: Path,
    parts: list[tuple[str, str, dict[str, Any]]],
) -> None:
    """Hypothesis records (surrogates, NaN/inf, huge ints, control chars, odd keys/values).

    Figures per example: flush raises never; received = stored + skipped +
    rejected (dropped = 0); stored = points in InfluxDB + points the server
    refused (lost = 0); spool left = 0. The encoder quarantines what it cannot
    encode (attempts 0). The only thing InfluxDB may still refuse is a field-type
    conflict *between* points that the built-in-compatible schema cannot rule out
    (attribute ``x_str`` = 1 in one point, attribute ``x`` = "a" in another): those
    points, and only those, are bisected out and quarantined (attempts >= 1) while
    the rest of the batch lands; every error recorded is bad_data.
    """
    db = unique_name("fuzz")
    await influxdb_v1.acreate_database(db)
    h = Harness(http_session, tmp_path / f"{db}.sqlite", [influxdb_v1.url], db)
    await h.start()
    try:
        for item in _records(parts):
            h.pipeline.capture(item)
        result = await h.pipeline.flush()
        assert result is not None
        assert result.captured == len(parts)
        assert result.dropped == 0
        assert result.captured == result.stored + result.skipped + result.rejected
        event(f"stored: {'some' if result.stored else 'none'}")
        event(f"rejected: {'some' if result.rejected else 'none'}")
        await h.until(
            lambda: (
                h.pending() == 0
                and (result.stored == 0 or h.resilience.state is ConnectionState.ACTIVE)
            )
        )
        dead = await asyncio.to_thread(h.spool.dead_letters, 1000)
    finally:
        await h.stop()
    try:
        refused = [letter for letter in dead if letter.attempts > 0]
        encoder = [letter for letter in dead if letter.attempts == 0]
        event(f"refused by server: {'some' if refused else 'none'}")
        metrics = h.resilience.metrics
        assert set(metrics.failures) <= {ErrorCategory.BAD_DATA}
        if h.resilience.last_error is not None:
            assert h.resilience.last_error_category is ErrorCategory.BAD_DATA
        assert metrics.events_received == len(parts)
        assert len(encoder) == result.rejected
        assert metrics.points_quarantined == result.rejected + len(refused)
        assert metrics.events_sent == result.stored - len(refused)
        for letter in dead:
            assert letter.category == ErrorCategory.BAD_DATA
            assert letter.reason
        for letter in refused:
            assert "field type conflict" in letter.reason
        assert await _points_in(influxdb_v1, db) == result.stored - len(refused)
    finally:
        await influxdb_v1.adrop_database(db)
