"""Delivery comes back by itself: paused re-checks, fallback URLs, backoff without reads.

Real parts: the SQLite spool, InfluxDB 1.6.7, the TCP/TLS fault proxy (its TLS
certificates are generated here with ``cryptography``). Delays run on a
FakeClock, the faults on real sockets.
"""

import asyncio
from collections.abc import Callable
import logging
from pathlib import Path
import random
import ssl
from typing import Any, Self

import aiohttp
import pytest

from custom_components.ha_ingestor.core.breaker import BreakerState
from custom_components.ha_ingestor.core.errors import ErrorCategory
from custom_components.ha_ingestor.core.resilience import PAUSE_RECHECK_MIN
from custom_components.ha_ingestor.core.uploader import ENDPOINT_BREAKER
from tests.core.test_pipeline import Harness, count_points, record
from tests.proxy import FaultProxy, Mode
from tests.servers import InfluxV1Server
from tests.tls import make_pki

N = 40
NOT_FOUND_404 = (
    b"HTTP/1.1 404 Not Found\r\nServer: nginx\r\nContent-Type: text/html\r\n"
    b"Content-Length: 9\r\n\r\nnot found"
)


class Rig(Harness):
    """A pipeline on a fake clock with optional TLS trust and fallback URLs (``async with``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """:class:`Harness` with batches of 10, the URLs' own breakers and a fixed jitter."""
        defaults = {"batch_points": 10, "endpoint_breaker": ENDPOINT_BREAKER}
        super().__init__(*args, **(defaults | kwargs), rng=random.Random(5))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def parked(self, condition: Callable[[], bool]) -> None:
        """Until ``condition`` holds while the uploader sleeps (no attempt in flight)."""
        await self.until(lambda: condition() and self.clock.next_deadline() is not None)

    async def capture(self, start: int, n: int) -> None:
        for i in range(start, start + n):
            self.pipeline.capture(record(i))
        await self.pipeline.flush()


# --- certificates ----------------------------------------------------------------------


def tls_contexts(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext]:
    """(client trusting a throwaway CA, server cert of that CA, self-signed wrong server cert)."""
    pki = make_pki(tmp)
    client = ssl.create_default_context(cafile=pki.ca_cert)
    return client, pki.server_context(trusted=True), pki.server_context(trusted=False)


# --- item: paused by a config-class answer, resumed without a person ---------------------


async def test_404_for_5_seconds_resumes_by_itself(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """A reverse proxy answering 404 for 5 s: paused, then the re-check delivers all 40.

    Figures: lost 0 (40 in InfluxDB), quarantined 0, one pause, time to
    recover after the proxy is right again = the first re-check, <= 72 s
    (60 s +/- 20 %), no manual retry.
    """
    async with (
        FaultProxy(influxdb_v1.port) as proxy,
        Rig(http_session, tmp_path / "s.sqlite", [proxy.url], influx_db) as rig,
    ):
        proxy.set_mode(Mode.ANSWER, answer=NOT_FOUND_404)
        await rig.capture(0, N)
        await rig.parked(lambda: rig.resilience.paused)
        began = rig.clock.monotonic()
        assert rig.resilience.paused_reason is ErrorCategory.NOT_FOUND
        assert rig.pending() == N
        await rig.clock.run_for(5)
        assert rig.resilience.paused  # the re-check is not due yet
        proxy.set_mode(Mode.PASS)
        fixed = rig.clock.monotonic()
        await rig.until(rig.drained)
        recovered = rig.clock.monotonic() - fixed
        assert fixed - began == 5
        assert recovered <= PAUSE_RECHECK_MIN * 1.2
    assert rig.resilience.metrics.points_quarantined == 0
    assert rig.resilience.metrics.failures[ErrorCategory.NOT_FOUND] == 1
    assert await count_points(influxdb_v1, influx_db) == N


async def test_wrong_certificate_for_5_seconds_resumes_by_itself(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """A TLS proxy presenting a self-signed certificate for 5 s, verification on.

    Figures: 40 points delivered through the proxy's trusted certificate, then
    the wrong one appears: paused with cause ``tls``; 5 s later the right one
    is back and the first re-check (<= 72 s later) delivers the next 40: lost 0.
    """
    client, good, wrong = tls_contexts(tmp_path)
    async with FaultProxy(influxdb_v1.port) as proxy:
        proxy.tls = good
        async with Rig(
            http_session, tmp_path / "s.sqlite", [proxy.url], influx_db, ssl_context=client
        ) as rig:
            await rig.capture(0, N)
            await rig.until(rig.drained)
            proxy.tls = wrong
            proxy.set_mode(Mode.PASS)  # drops pooled connections: the next one handshakes
            await rig.capture(N, N)
            await rig.parked(lambda: rig.resilience.paused)
            assert rig.resilience.paused_reason is ErrorCategory.TLS
            assert proxy.handshake_failures >= 1
            await rig.clock.run_for(5)
            proxy.tls = good
            fixed = rig.clock.monotonic()
            await rig.until(rig.drained)
            assert rig.clock.monotonic() - fixed <= PAUSE_RECHECK_MIN * 1.2
    assert rig.resilience.metrics.failures[ErrorCategory.TLS] == 1
    assert await count_points(influxdb_v1, influx_db) == 2 * N


# --- item: a backoff costs no spool reads ------------------------------------------------


async def test_backoff_reads_the_spool_only_when_an_attempt_is_due(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """503 for 3 attempts while 5 points are flushed every fake second.

    Figures: from the first failed attempt on, 9 flushes of 5 points cost 2 spool
    reads, one for each later attempt (not one per flush: a wake-up during a
    backoff reads nothing). Then lost 0. Reads are counted from the
    first attempt: when the uploader's start-up read of the empty spool happens
    depends on the machine's speed.
    """
    answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    async with (
        FaultProxy(influxdb_v1.port) as proxy,
        Rig(
            http_session,
            tmp_path / "s.sqlite",
            [proxy.url],
            influx_db,
            overrides={"rapid_base_delay": 4.0, "rapid_max_delay": 4.0, "jitter": "none"},
        ) as rig,
    ):
        attempts: list[Mode] = []
        proxy.set_mode(Mode.ANSWER, answer=answer)
        proxy.on_request = attempts.append
        reads = 0
        advance = rig.spool.advance

        def counting(*args: Any) -> Any:
            nonlocal reads
            if attempts:
                reads += 1
            return advance(*args)

        rig.spool.advance = counting  # type: ignore[method-assign]
        sent = 0
        while len(attempts) < 3:
            await rig.capture(sent, 5)
            sent += 5
            await asyncio.sleep(0.05)  # the uploader's real I/O
            rig.clock.advance(1.0)
        await asyncio.sleep(0.05)
        assert sent >= 40
        assert len(attempts) == 3
        assert reads == 2
        proxy.set_mode(Mode.PASS)
        await rig.until(rig.drained)
    assert await count_points(influxdb_v1, influx_db) == sent


# --- item: fallback URLs switch back to the primary ---------------------------------------


async def test_blackholed_primary_costs_two_timeouts_then_switches_back(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """Primary (proxy) blackholed, fallback = InfluxDB itself; then the primary returns.

    Figures: 100 points in 10 batches during the blackhole cost 2 primary
    timeouts (the breaker opens after 2), every batch lands through the
    fallback; 60 s later the primary gets a batch again and is used from its
    first success; lost 0, duplicated 0.
    """
    async with (
        FaultProxy(influxdb_v1.port, mode=Mode.BLACKHOLE) as proxy,
        Rig(
            http_session,
            tmp_path / "s.sqlite",
            [proxy.url, influxdb_v1.url],
            influx_db,
            timeout=0.3,
        ) as rig,
    ):
        primary = rig.endpoints[0].breaker
        assert primary is not None
        await rig.capture(0, 100)
        await rig.until(rig.drained)
        assert proxy.connections == 2
        assert primary.state is BreakerState.OPEN
        assert rig.pipeline.uploader.active_endpoint == influxdb_v1.url
        states = rig.resilience.as_dict()["endpoints"]
        assert [e["breaker_state"] for e in states] == ["open", "closed"]
        assert all("@" not in e["url"] for e in states)

        proxy.set_mode(Mode.PASS)
        await rig.clock.run_for(60)
        await rig.capture(100, 10)
        await rig.until(rig.drained)
        assert primary.state is BreakerState.CLOSED
        assert rig.pipeline.uploader.active_endpoint == proxy.url
        assert proxy.connections == 3
    assert await count_points(influxdb_v1, influx_db) == 110


# --- item: the largest Retry-After among the URLs tried ----------------------------------


async def test_longest_retry_after_of_the_urls_tried_is_honoured(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """Primary 429 Retry-After: 30, fallback 503 without one: the next attempt waits 30 s.

    Figures: 1 request to each URL, then nothing for 30 fake seconds (the rapid
    stage alone would retry after ~1 s); then both forward again: lost 0.
    """
    throttled = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n"
    failing = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    async with (
        FaultProxy(influxdb_v1.port) as primary,
        FaultProxy(influxdb_v1.port) as fallback,
        Rig(http_session, tmp_path / "s.sqlite", [primary.url, fallback.url], influx_db) as rig,
    ):
        primary.set_mode(Mode.ANSWER, answer=throttled)
        fallback.set_mode(Mode.ANSWER, answer=failing)
        seen: list[str] = []
        primary.on_request = lambda _m: seen.append("primary")
        fallback.on_request = lambda _m: seen.append("fallback")
        await rig.capture(0, 10)
        await rig.parked(lambda: rig.resilience.consecutive_failures == 1)
        assert seen == ["primary", "fallback"]
        err = rig.resilience.last_error
        assert err is not None
        assert err.category is ErrorCategory.SERVER
        assert err.retry_after == 30
        assert rig.resilience.next_retry_in == 30
        await rig.clock.run_for(29)
        assert seen == ["primary", "fallback"]
        primary.set_mode(Mode.PASS)
        fallback.set_mode(Mode.PASS)
        await rig.until(rig.drained)
        assert rig.clock.monotonic() - 1000.0 >= 30
    assert await count_points(influxdb_v1, influx_db) == 10


# --- issue 16: one line when the destination goes, one when it is back ---------------------


async def test_an_outage_logs_one_line_when_it_starts_and_one_when_it_ends(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Connections reset for 12 attempts: 2 INFO lines in all, no WARNING or ERROR."""
    caplog.set_level(logging.DEBUG, logger="custom_components.ha_ingestor")
    async with (
        FaultProxy(influxdb_v1.port, mode=Mode.RESET) as proxy,
        Rig(http_session, tmp_path / "s.sqlite", [proxy.url], influx_db) as rig,
    ):
        rig.pipeline.uploader._probe = None  # plain backoff: every retry is a real attempt
        await rig.capture(0, 10)
        await rig.parked(lambda: rig.resilience.consecutive_failures >= 12)
        proxy.set_mode(Mode.PASS)
        await rig.until(rig.drained)
    ours = [r for r in caplog.records if r.name.startswith("custom_components.ha_ingestor")]
    assert [r for r in ours if r.levelno >= logging.WARNING] == []
    infos = [r.getMessage() for r in ours if r.levelno == logging.INFO]
    assert len(infos) == 2, infos
    assert "unavailable" in infos[0]
    assert "resumed after" in infos[1]
