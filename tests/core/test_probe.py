"""Reachability probing: delivery resumes about a second after the server returns.

Retry delays run on a FakeClock; InfluxDB 1.6.7, the TCP proxy and the SQLite
spool are real, except in the two tests marked as using a fake sink.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
import contextlib
import itertools
import math
from pathlib import Path
import random
from typing import Any

import aiohttp
import pytest

from custom_components.ha_ingestor.core.breaker import BreakerState, CircuitBreaker
from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.probe import probe_address, tcp_reachable
from custom_components.ha_ingestor.core.resilience import Resilience
from custom_components.ha_ingestor.core.retry import build_policy
from custom_components.ha_ingestor.core.sinks import InfluxV1Target, create_sink
from custom_components.ha_ingestor.core.spool import Spool
from custom_components.ha_ingestor.core.state import ConnectionState
from custom_components.ha_ingestor.core.uploader import (
    PROBE_INTERVAL,
    Endpoint,
    Probe,
    Sink,
    Uploader,
)
from tests.core.fake_time import FakeClock, advance_until
from tests.core.test_pipeline import BASE_NS, count_points, run_sync
from tests.core.test_pipeline_store import spooled_uploader
from tests.proxy import FaultProxy, Mode
from tests.servers import InfluxV1Server, free_port

N = 20


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8086", ("127.0.0.1", 8086)),
        ("https://influx.example:8443/prefix/", ("influx.example", 8443)),
        ("http://influx.example/db", ("influx.example", 80)),
        ("https://[::1]/", ("::1", 443)),
        ("HTTPS://Host.example", ("host.example", 443)),
        ("fake://x", None),
        ("http://127.0.0.1:99999", None),
        ("not a url", None),
        ("", None),
    ],
)
def test_probe_address(url: str, expected: tuple[str, int] | None) -> None:
    assert probe_address(url) == expected


async def test_tcp_reachable(socket_enabled: None) -> None:
    """True for a listening port, False for a closed one or a URL without an address."""
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await tcp_reachable(f"http://127.0.0.1:{port}/x")
    finally:
        server.close()
        await server.wait_closed()
    assert not await tcp_reachable(f"http://127.0.0.1:{free_port()}")
    assert not await tcp_reachable("fake://nowhere")


class _Recording:
    """Wraps a real sink; notes the fake-clock time of every write attempt."""

    def __init__(self, sink: Sink, clock: FakeClock) -> None:
        self.endpoint = sink.endpoint
        self._sink = sink
        self._clock = clock
        self.attempts: list[float] = []

    async def prepare(self, payloads: Sequence[bytes]) -> None:
        """Nothing to encode ahead."""

    async def write(self, payloads: Sequence[bytes]) -> None:
        self.attempts.append(self._clock.monotonic())
        await self._sink.write(payloads)


class Rig:
    """One uploader on a fake clock with a seeded jitter, writing ``N`` spooled points."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        spool_path: Path,
        url: str,
        database: str,
        *,
        probe: Probe | None = tcp_reachable,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.clock = FakeClock()
        policy = build_policy("infinite", overrides or {})
        self.resilience = Resilience(policy, self.clock, rng=random.Random(7))
        sink = create_sink(InfluxV1Target(url=url, database=database), session, url=url, timeout=2)
        self.sink = _Recording(sink, self.clock)
        self.spool = Spool(spool_path)
        self.spool.open()
        self.spool.append(
            [
                (
                    BASE_NS + i * 1_000_000_000,
                    f"°C,domain=sensor,entity_id=temp value={i} {BASE_NS + i * 1_000_000_000}".encode(),
                )
                for i in range(N)
            ]
        )
        self.uploader = Uploader(
            endpoints=[Endpoint(sink=self.sink)],
            spool=self.spool,
            run_sync=run_sync,
            resilience=self.resilience,
            clock=self.clock,
            max_points=1000,
            max_bytes=1 << 20,
            probe=probe,
        )
        self.task: asyncio.Task[None] | None = None

    def pending(self) -> int:
        return self.spool.stats().pending_count

    async def until(self, condition: Callable[[], bool], *, limit: int = 3000) -> None:
        """Let real I/O happen; move the fake clock to the next timer until ``condition``."""
        await advance_until(self.clock, condition, limit=limit)

    async def parked(self) -> None:
        """Until the uploader sleeps on the fake clock (no attempt in flight)."""
        for _ in range(300):
            await asyncio.sleep(0.01)
            if self.clock.next_deadline() is not None:
                return
        raise AssertionError("uploader never parked")


@contextlib.asynccontextmanager
async def running(rig: Rig) -> AsyncIterator[Rig]:
    rig.task = asyncio.create_task(rig.uploader.run())
    try:
        yield rig
    finally:
        rig.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rig.task
        rig.spool.close()


async def test_server_return_is_noticed_within_a_probe_interval(
    http_session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """Figure: recovery <= 1 fake second after the server returns, not the scheduled delay.

    InfluxDB is stopped (connections refused) long enough for the breaker
    (threshold lowered to 5) to open and a half-open trial to fail, so the next
    scheduled retry is many seconds away; it is started again, and the first probe (TCP connect
    only, once a second) half-opens the breaker and retries at once: lost = 0,
    duplicated = 0.
    """
    rig = Rig(
        http_session,
        tmp_path / "spool.sqlite",
        influxdb_v1.url,
        influx_db,
        overrides={"breaker_failure_threshold": 5},
    )
    influxdb_v1.stop()
    try:
        async with running(rig):
            await rig.until(
                lambda: (
                    rig.resilience.consecutive_failures >= 6
                    and rig.resilience.breaker_state is BreakerState.OPEN
                )
            )
            await rig.parked()
            assert rig.resilience.last_error_category is ErrorCategory.NETWORK
            assert rig.resilience.breaker_state is BreakerState.OPEN
            scheduled = rig.resilience.next_retry_in
            assert scheduled is not None
            assert scheduled > 3 * PROBE_INTERVAL
            assert rig.pending() == N

            influxdb_v1.start()
            returned = rig.clock.monotonic()
            await rig.until(
                lambda: rig.pending() == 0 and rig.resilience.state is ConnectionState.ACTIVE
            )
            recovery = rig.clock.monotonic() - returned
    finally:
        influxdb_v1.start()  # idempotent when already running
    assert recovery <= PROBE_INTERVAL
    assert recovery < scheduled
    # One success so far: the breaker counts it towards closing (half-open).
    assert rig.resilience.breaker_state is BreakerState.HALF_OPEN
    assert await count_points(influxdb_v1, influx_db) == N


async def _attempts_behind_resetting_proxy(
    session: aiohttp.ClientSession,
    proxy: FaultProxy,
    database: str,
    spool_path: Path,
    probe: Probe | None,
) -> list[float]:
    rig = Rig(session, spool_path, proxy.url, database, probe=probe)
    start = rig.clock.monotonic()
    async with running(rig):
        await rig.until(lambda: rig.clock.monotonic() - start >= 600)
        await rig.parked()
        assert rig.resilience.last_error_category is ErrorCategory.NETWORK
        assert rig.pending() == N
    return rig.sink.attempts


async def test_port_open_but_writes_reset_costs_one_extra_attempt(
    http_session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """A proxy that accepts TCP but resets every request: probing cannot hammer it.

    The probe succeeds (the port is open), the attempt it triggers fails, and
    probing stays off until the next success. Figure: over 600 fake seconds,
    attempts with probing = attempts with plain backoff + at most 1 (same seeded
    jitter), instead of one per second.
    """
    async with FaultProxy(influxdb_v1.port, mode=Mode.RESET) as proxy:
        with_probe = await _attempts_behind_resetting_proxy(
            http_session, proxy, influx_db, tmp_path / "a.sqlite", tcp_reachable
        )
        without = await _attempts_behind_resetting_proxy(
            http_session, proxy, influx_db, tmp_path / "b.sqlite", None
        )
    assert len(without) < 60  # the staged schedule, nowhere near one a second
    assert len(without) <= len(with_probe) <= len(without) + 1


class _FailingSink:
    """Always fails with ``category``: a fake sink for probe bookkeeping only."""

    endpoint = "http://127.0.0.1:9"

    def __init__(self, category: ErrorCategory) -> None:
        self.category = category

    async def prepare(self, payloads: Sequence[bytes]) -> None:
        """Nothing to encode ahead."""

    async def write(self, payloads: Sequence[bytes]) -> None:
        raise DeliveryError(self.category, "fake")


@contextlib.asynccontextmanager
async def fake_uploader(
    tmp_path: Path, res: Resilience, clock: FakeClock, endpoints: list[Endpoint], probe: Probe
) -> AsyncIterator[Uploader]:
    """An uploader over fake sinks with one spooled point, running until the block ends."""
    up, spool = spooled_uploader(
        tmp_path / "s.sqlite", endpoints, res, clock, run_sync=run_sync, probe=probe
    )
    task = asyncio.create_task(up.run())
    try:
        yield up
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        spool.close()


@pytest.mark.parametrize(
    ("category", "probes_expected"),
    [
        (ErrorCategory.NETWORK, True),
        (ErrorCategory.DNS, True),
        (ErrorCategory.TIMEOUT, False),
        (ErrorCategory.SERVER, False),
        (ErrorCategory.RATE_LIMITED, False),
    ],
)
async def test_only_refusals_are_probed(
    tmp_path: Path, category: ErrorCategory, probes_expected: bool
) -> None:
    """Fake sink and probe (bookkeeping only): which failures start probing, and how often.

    A hung server (timeout) or one answering 5xx/429 accepts TCP connections all
    the same, so a probe would say nothing; only refusals and DNS failures are
    probed, once per PROBE_INTERVAL while the backoff lasts.
    """
    clock = FakeClock()
    res = Resilience(build_policy("infinite", {}), clock, rng=random.Random(3))
    probes: list[float] = []

    async def probe(url: str) -> bool:
        assert url == "http://127.0.0.1:9"
        probes.append(clock.monotonic())
        return False

    endpoints = [Endpoint(sink=_FailingSink(category))]
    async with fake_uploader(tmp_path, res, clock, endpoints, probe):
        start = clock.monotonic()
        await advance_until(clock, lambda: clock.monotonic() - start >= 120, step=0.005)
    if not probes_expected:
        assert probes == []
        return
    assert len(probes) > 60  # about one per second of backoff
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert min(gaps) >= PROBE_INTERVAL - 1e-9


def test_on_reachable_only_cuts_a_pending_wait() -> None:
    """Nothing to cut short before a failure, when paused, or once the wait is over."""
    clock = FakeClock()
    res = Resilience(build_policy("infinite", {}), clock, rng=random.Random(1))
    assert not res.on_reachable()  # no failure yet
    assert res.before_attempt() == 0
    delay = res.on_failure(DeliveryError(ErrorCategory.NETWORK, "refused"))
    assert delay is not None
    assert delay > 0
    assert res.on_reachable()
    assert res.before_attempt() == 0
    res.on_failure(DeliveryError(ErrorCategory.NETWORK, "refused"))
    clock.advance(1000)
    assert not res.on_reachable()  # already due
    assert res.before_attempt() == 0
    res.on_failure(DeliveryError(ErrorCategory.AUTH, "401"))
    assert not res.on_reachable()  # paused: a port that answers says nothing of a 401
    assert 0 < res.before_attempt() < math.inf  # the slow re-check


class _RefusingSink:
    """Refuses like a stopped server; a fake for the fallback bookkeeping only."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.writes = 0
        self.up = False

    async def prepare(self, payloads: Sequence[bytes]) -> None:
        """Nothing to encode ahead."""

    async def write(self, payloads: Sequence[bytes]) -> None:
        self.writes += 1
        if not self.up:
            raise DeliveryError(ErrorCategory.NETWORK, "refused")


async def test_probe_half_opens_the_fallback_that_answers(tmp_path: Path) -> None:
    """Fake sinks and probe (fallback bookkeeping only): the endpoint seen back gets the trial.

    Both endpoints refuse until their breakers open (threshold 1, 300 s). Then
    the fallback comes back: the probe asks the primary (no) and the fallback
    (yes), half-opens the fallback's breaker and the batch goes there within a
    probe interval, while the primary's breaker stays open.
    """
    clock = FakeClock()
    policy = build_policy("infinite", {"breaker_failure_threshold": 1})
    res = Resilience(policy, clock, rng=random.Random(5))
    primary, fallback = _RefusingSink("http://primary:1"), _RefusingSink("http://fallback:2")
    endpoints = [
        Endpoint(sink=primary, breaker=CircuitBreaker(policy.breaker, clock)),
        Endpoint(sink=fallback, breaker=CircuitBreaker(policy.breaker, clock)),
    ]
    asked: list[str] = []

    async def probe(url: str) -> bool:
        asked.append(url)
        return url == fallback.endpoint and fallback.up

    async with fake_uploader(tmp_path, res, clock, endpoints, probe) as up:
        await advance_until(
            clock,
            lambda: all(
                e.breaker is not None and e.breaker.state is BreakerState.OPEN for e in endpoints
            ),
            limit=500,
        )
        assert (primary.writes, fallback.writes) == (1, 1)
        fallback.up = True
        back = clock.monotonic()
        await advance_until(
            clock,
            lambda: primary.writes + fallback.writes == 3 and res.state is ConnectionState.ACTIVE,
            limit=500,
        )
        assert res.state is ConnectionState.ACTIVE
        assert clock.monotonic() - back <= PROBE_INTERVAL
    assert asked[-2:] == [primary.endpoint, fallback.endpoint]
    assert (primary.writes, fallback.writes) == (1, 2)
    assert endpoints[0].breaker is not None
    assert endpoints[0].breaker.state is BreakerState.OPEN
    assert up.active_endpoint == fallback.endpoint
