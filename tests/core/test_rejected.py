"""A destination that refuses every point is a setup fault, not a backlog to quarantine.

Real parts: the SQLite spool, InfluxDB 1.6.7, and the fault proxy answering
like nginx does when plain HTTP reaches its HTTPS port (no real server answers
400 to everything on demand). Retry and re-check delays run on a FakeClock.
"""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from custom_components.ha_ingestor.core.errors import ErrorCategory
from custom_components.ha_ingestor.core.resilience import PAUSE_RECHECK_MIN
from custom_components.ha_ingestor.core.state import ConnectionState
from custom_components.ha_ingestor.core.uploader import bisect_budget
from tests.core.test_pipeline import BASE_NS, Harness, count_points, humid, record
from tests.proxy import FaultProxy, Mode
from tests.servers import InfluxV1Server

N = 40
_NGINX_PAGE = (
    b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>"
    b"\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>The plain HTTP "
    b"request was sent to HTTPS port</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
    b"</html>\r\n"
)
NGINX_400 = (
    b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_NGINX_PAGE), _NGINX_PAGE)
)


def counted_writes(h: Harness) -> list[int]:
    """The size of every request the harness's sink sends from now on (in points)."""
    sink = h.pipeline.uploader._endpoints[0].sink
    write = sink.write
    sizes: list[int] = []

    async def counting(payloads: Sequence[bytes]) -> None:
        sizes.append(len(payloads))
        await write(payloads)

    sink.write = counting  # type: ignore[method-assign]
    return sizes


async def test_destination_refusing_everything_pauses_and_keeps_every_row(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """nginx answering 400 to plain HTTP: 40 points, 20 requests, quarantined 0, kept 40.

    Figures: requests sent for the batch = bisect_budget(40) = 20 (instead of
    2 * 40 - 1 = 79 and 40 quarantined); state paused with cause ``rejected``,
    never ``active``, last success never set; the error names the status and
    the server's words. After the proxy forwards again, the first re-check
    (60 s +/- 20 %, fake) delivers all 40: lost 0, quarantined 0.
    """
    async with FaultProxy(influxdb_v1.port) as proxy:
        proxy.set_mode(Mode.ANSWER, answer=NGINX_400)
        requests: list[Mode] = []
        proxy.on_request = requests.append
        h = Harness(http_session, tmp_path / "spool.sqlite", [proxy.url], influx_db)
        states: list[ConnectionState] = []
        h.resilience.state_machine.set_listener(lambda t: states.append(t.state))
        await h.start()
        try:
            await h.capture_flushed(N)
            await h.until(lambda: h.resilience.paused and h.clock.next_deadline() is not None)
            assert len(requests) == bisect_budget(N) == 20
            assert h.resilience.paused_reason is ErrorCategory.REJECTED
            assert h.resilience.metrics.points_quarantined == 0
            assert h.pending() == N
            assert ConnectionState.ACTIVE not in states
            assert h.resilience.last_success_wall is None
            err = h.resilience.last_error
            assert err is not None
            assert err.status == 400
            assert "HTTP 400" in err.message
            assert "The plain HTTP request was sent to HTTPS port" in err.message
            assert "<" not in err.message
            recheck = h.resilience.next_retry_in
            assert recheck is not None
            assert PAUSE_RECHECK_MIN * 0.8 <= recheck <= PAUSE_RECHECK_MIN * 1.2

            proxy.set_mode(Mode.PASS)
            fixed = h.clock.monotonic()
            await h.until(h.drained)
            assert h.clock.monotonic() - fixed <= PAUSE_RECHECK_MIN * 1.2
        finally:
            await h.stop()
    assert h.resilience.metrics.points_quarantined == 0
    assert h.resilience.metrics.events_sent == N
    assert await count_points(influxdb_v1, influx_db) == N


async def test_field_type_conflict_on_every_point_is_a_setup_fault(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """InfluxDB 1.6.7 refusing all 16 points ("value" is a string in "°C"): 0 quarantined.

    Figures: requests <= bisect_budget(16) = 16, quarantined 0, kept 16, paused
    with cause ``rejected`` and InfluxDB's own words in the error.
    """
    status, _ = await influxdb_v1.awrite(
        influx_db, f'°C,domain=sensor,entity_id=x value="text" {BASE_NS - 1}'.encode()
    )
    assert status == 204
    async with FaultProxy(influxdb_v1.port) as proxy:
        h = Harness(http_session, tmp_path / "spool.sqlite", [proxy.url], influx_db)
        sizes = counted_writes(h)
        await h.start()
        try:
            await h.capture_flushed(16)
            await h.until(lambda: h.resilience.paused and h.clock.next_deadline() is not None)
            assert proxy.connections >= 1
            assert 1 <= len(sizes) <= bisect_budget(16) == 16
            assert h.resilience.paused_reason is ErrorCategory.REJECTED
            assert h.resilience.metrics.points_quarantined == 0
            assert h.pending() == 16
            err = h.resilience.last_error
            assert err is not None
            assert "field type conflict" in err.message
        finally:
            await h.stop()


async def test_mixed_batch_quarantines_exactly_the_bad_points(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """40 points, 4 spread ones conflicting (InfluxDB 1.6.7): quarantined 4, delivered 36.

    Figures: 35 requests over 2 attempts: 18 for the batch of 40 (within
    bisect_budget(40) = 20; two bad points found, the right half left
    unexplored), then 17 for those 20 points, sent at once (no backoff) as
    the next head batch (budget 18); state ends active; lost 0.
    """
    status, _ = await influxdb_v1.awrite(
        influx_db, f'%,domain=sensor,entity_id=humid value="text" {BASE_NS - 1}'.encode()
    )
    assert status == 204
    bad = {3, 17, 26, 38}
    async with FaultProxy(influxdb_v1.port) as proxy:
        h = Harness(http_session, tmp_path / "spool.sqlite", [proxy.url], influx_db)
        sizes = counted_writes(h)
        await h.start()
        try:
            for i in range(N):
                h.pipeline.capture(humid(i) if i in bad else record(i))
            start = h.clock.monotonic()
            await h.pipeline.flush()
            await h.until(h.drained)
            assert h.clock.monotonic() == start  # no backoff at any point
            dead = await asyncio.to_thread(h.spool.dead_letters)
        finally:
            await h.stop()
    assert sorted(d.time_ns for d in dead) == sorted(BASE_NS + i * 1_000_000_000 for i in bad)
    assert all("field type conflict" in d.reason for d in dead)
    assert h.resilience.metrics.points_quarantined == 4
    assert h.resilience.paused_reason is None
    assert len(sizes) == 35, str(sizes)
    assert sizes[18] == 20  # the second attempt: the unexplored half
    assert await count_points(influxdb_v1, influx_db) == N - 4


async def test_refusals_in_batches_of_one_point(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """Low traffic (one point per batch) against nginx's 400.

    Figures: refusing from the start: paused after 1 request, quarantined 0.
    Refusing after it accepted 5 points: the first refused point is taken for
    bad data (quarantined 1), the second batch in a row pauses (quarantined
    still 1, kept 1); lost 0 either way.
    """
    async with FaultProxy(influxdb_v1.port) as proxy:
        proxy.set_mode(Mode.ANSWER, answer=NGINX_400)
        requests: list[Mode] = []
        proxy.on_request = requests.append
        h = Harness(http_session, tmp_path / "a.sqlite", [proxy.url], influx_db, batch_points=1)
        await h.start()
        try:
            await h.capture_flushed(1)
            await h.until(lambda: h.resilience.paused and h.clock.next_deadline() is not None)
            assert len(requests) == 1
            assert h.resilience.paused_reason is ErrorCategory.REJECTED
            assert h.resilience.metrics.points_quarantined == 0
            assert h.pending() == 1
        finally:
            await h.stop()

        proxy.set_mode(Mode.PASS)
        h = Harness(http_session, tmp_path / "b.sqlite", [proxy.url], influx_db, batch_points=5)
        await h.start()
        try:
            await h.capture_flushed(5)
            await h.until(h.drained)
            proxy.set_mode(Mode.ANSWER, answer=NGINX_400)
            for i in (5, 6):
                h.pipeline.capture(record(i))
                await h.pipeline.flush()
                await h.until(
                    lambda: h.resilience.paused or h.resilience.metrics.points_quarantined == 1
                )
            await h.until(lambda: h.resilience.paused and h.clock.next_deadline() is not None)
            assert h.resilience.metrics.points_quarantined == 1
            assert h.pending() == 1
            assert h.resilience.paused_reason is ErrorCategory.REJECTED
        finally:
            await h.stop()
    # Lost 0: the 7 points are 5 delivered, 1 quarantined, 1 kept.
    assert await count_points(influxdb_v1, influx_db) == 5
