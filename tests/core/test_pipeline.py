"""The core pipeline (memory batch -> encoder -> spool -> uploader) against real InfluxDB.

Retry delays run on a FakeClock; the network and the SQLite spool are real.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
import contextlib
from pathlib import Path
import random
import ssl
from typing import Any

import aiohttp
import pytest

from custom_components.ha_ingestor.core.breaker import BreakerConfig, CircuitBreaker
from custom_components.ha_ingestor.core.encoder import (
    EncoderConfig,
    EventRecord,
    LineProtocolEncoder,
)
from custom_components.ha_ingestor.core.errors import ErrorCategory
from custom_components.ha_ingestor.core.pipeline import Pipeline, PipelineConfig
from custom_components.ha_ingestor.core.resilience import Resilience
from custom_components.ha_ingestor.core.retry import build_policy
from custom_components.ha_ingestor.core.sinks import InfluxV1Target, create_sink
from custom_components.ha_ingestor.core.spool import Spool
from custom_components.ha_ingestor.core.state import ConnectionState
from custom_components.ha_ingestor.core.uploader import Endpoint, Uploader
from tests.core.fake_time import FakeClock, advance_until
from tests.core.test_pipeline_store import spooled_uploader
from tests.servers import InfluxV1Server, free_port

BASE_NS = 1_700_000_000_000_000_000


def record(i: int, *, entity: str = "sensor.temp", value: str | None = None) -> EventRecord:
    """A numeric state change one second after the previous one."""
    return EventRecord(
        entity_id=entity,
        state=value if value is not None else str(20 + i / 10),
        attributes={"unit_of_measurement": "°C", "friendly_name": "Temp"},
        time_ns=BASE_NS + i * 1_000_000_000,
        last_changed_ns=BASE_NS + i * 1_000_000_000,
    )


def humid(i: int) -> EventRecord:
    """A humidity point at :func:`record` ``i``'s time: refused where ``%`` holds text."""
    return EventRecord(
        entity_id="sensor.humid",
        state="40",
        attributes={"unit_of_measurement": "%"},
        time_ns=BASE_NS + i * 1_000_000_000,
        last_changed_ns=BASE_NS + i * 1_000_000_000,
    )


async def run_sync(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking spool work in a thread, as HA's executor does."""
    return await asyncio.to_thread(fn, *args)


class Harness:
    """A pipeline on a fake clock, plus helpers to drive it."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        spool_path: Path,
        urls: Sequence[str],
        database: str,
        *,
        preset: str = "infinite",
        overrides: dict[str, Any] | None = None,
        batch_points: int = 5000,
        timeout: float = 5.0,
        ssl_context: ssl.SSLContext | bool = True,
        endpoint_breaker: BreakerConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``endpoint_breaker``: the fallback URLs' breakers (default: the preset's)."""
        self.clock = FakeClock()
        target = InfluxV1Target(url=urls[0], database=database)
        policy = build_policy(preset, overrides or {})
        self.resilience = Resilience(policy, self.clock, rng=rng)
        breaker = endpoint_breaker or policy.breaker
        endpoints = [
            Endpoint(
                sink=create_sink(target, session, url=url, timeout=timeout, ssl=ssl_context),
                breaker=CircuitBreaker(breaker, self.clock) if len(urls) > 1 else None,
            )
            for url in urls
        ]
        self.endpoints = endpoints
        self.spool = Spool(spool_path)
        self.pipeline = Pipeline(
            encoder=LineProtocolEncoder(EncoderConfig()),
            spool=self.spool,
            endpoints=endpoints,
            resilience=self.resilience,
            clock=self.clock,
            run_sync=run_sync,
            convert=lambda item: item,
            config=PipelineConfig(batch_points=batch_points),
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pipeline.async_open()
        self.task = asyncio.create_task(self.pipeline.run_uploader())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        await self.pipeline.async_close()

    async def until(self, condition: Callable[[], bool], *, limit: int = 2000) -> None:
        """Let real I/O happen and move the fake clock to the next timer until ``condition``."""
        await advance_until(self.clock, condition, limit=limit)

    async def capture_flushed(self, n: int) -> None:
        """Capture ``n`` points (:func:`record`) and flush them to the spool."""
        for i in range(n):
            self.pipeline.capture(record(i))
        await self.pipeline.flush()

    def pending(self) -> int:
        stats = self.pipeline.stats
        return -1 if stats is None else stats.pending_count

    def drained(self) -> bool:
        """Spool empty and the last write's verdict recorded (not just its delete)."""
        return self.pending() == 0 and self.resilience.state is ConnectionState.ACTIVE


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def count_points(server: InfluxV1Server, db: str, measurement: str = "°C") -> int:
    rows = await server.aquery(f'SELECT count("value") FROM "{measurement}"', db)
    return int(rows[0]["count"]) if rows else 0


async def test_delivers_every_point_once(
    session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """Captured records land in InfluxDB with their own timestamps and values."""
    h = Harness(session, tmp_path / "spool.sqlite", [influxdb_v1.url], influx_db, batch_points=7)
    await h.start()
    for i in range(50):
        h.pipeline.capture(record(i))
    await h.pipeline.flush()
    await h.until(h.drained)
    await h.stop()
    rows = await influxdb_v1.aquery('SELECT "value", entity_id FROM "°C"', influx_db)
    assert [r["time"] for r in rows] == [BASE_NS + i * 1_000_000_000 for i in range(50)]
    assert [r["value"] for r in rows] == [20 + i / 10 for i in range(50)]
    assert {r["entity_id"] for r in rows} == {"temp"}
    assert h.resilience.metrics.events_sent == 50
    assert h.resilience.state is ConnectionState.ACTIVE


async def test_outage_keeps_everything_and_drains_after(
    session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """With the server down, points stay spooled through the retry stages; none lost after."""
    h = Harness(session, tmp_path / "spool.sqlite", [influxdb_v1.url], influx_db, timeout=2)
    await h.start()
    influxdb_v1.stop()
    try:
        for i in range(30):
            h.pipeline.capture(record(i))
        await h.pipeline.flush()
        await h.until(lambda: h.resilience.state is ConnectionState.RETRYING_MODERATE)
        assert h.pending() == 30
        assert h.resilience.last_error_category is ErrorCategory.NETWORK
        for i in range(30, 40):
            h.pipeline.capture(record(i))
        await h.pipeline.flush()
        assert h.pending() == 40
    finally:
        influxdb_v1.start()
    await h.until(h.drained)
    await h.stop()
    assert await count_points(influxdb_v1, influx_db) == 40
    assert h.resilience.state is ConnectionState.ACTIVE


async def test_backlog_survives_restart(
    session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """Points spooled during an outage are delivered by the next process (HA restart)."""
    closed = f"http://127.0.0.1:{free_port()}"
    first = Harness(session, tmp_path / "spool.sqlite", [closed], influx_db, timeout=1)
    await first.start()
    for i in range(25):
        first.pipeline.capture(record(i))
    await first.pipeline.flush()
    await first.until(lambda: first.resilience.consecutive_failures >= 2)
    await first.stop()

    second = Harness(session, tmp_path / "spool.sqlite", [influxdb_v1.url], influx_db)
    await second.start()
    await second.until(second.drained)
    await second.stop()
    assert await count_points(influxdb_v1, influx_db) == 25


async def test_bad_point_is_quarantined_rest_delivered(
    session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """A real field-type conflict (400) in one point of 16: only that point is quarantined.

    The conflict is on a measurement of its own ("%", where "value" is a string
    field); a conflict on the batch's own measurement makes InfluxDB refuse
    every point, which is a setup fault (see tests/core/test_rejected.py).
    """
    status, _ = await influxdb_v1.awrite(
        influx_db, f'%,domain=sensor,entity_id=humid value="text" {BASE_NS - 1}'.encode()
    )
    assert status == 204
    h = Harness(session, tmp_path / "spool.sqlite", [influxdb_v1.url], influx_db)
    await h.start()
    for i in range(16):
        h.pipeline.capture(humid(i) if i == 11 else record(i))
    await h.pipeline.flush()
    await h.until(h.drained)
    dead = await asyncio.to_thread(h.spool.dead_letters)
    await h.stop()
    assert await count_points(influxdb_v1, influx_db) == 15
    assert len(dead) == 1
    assert dead[0].category == ErrorCategory.BAD_DATA
    assert "field type conflict" in dead[0].reason
    assert h.resilience.metrics.points_quarantined == 1
    assert h.resilience.state is ConnectionState.ACTIVE


async def test_too_large_batches_are_split(
    session: aiohttp.ClientSession,
    influxdb_v1_small_body: InfluxV1Server,
    tmp_path: Path,
) -> None:
    """A real 413 (max-body-size 256 B) splits batches until each fits."""
    db = "split"
    await influxdb_v1_small_body.acreate_database(db)
    h = Harness(session, tmp_path / "spool.sqlite", [influxdb_v1_small_body.url], db)
    await h.start()
    for i in range(20):
        h.pipeline.capture(record(i))
    await h.pipeline.flush()
    await h.until(h.drained)
    await h.stop()
    assert await count_points(influxdb_v1_small_body, db) == 20
    assert h.resilience.metrics.points_quarantined == 0


async def test_missing_database_pauses_until_manual_retry(
    session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, tmp_path: Path
) -> None:
    """404 database not found pauses delivery, keeps the data, resumes after a fix."""
    db = "created_later"
    await influxdb_v1.adrop_database(db)
    h = Harness(session, tmp_path / "spool.sqlite", [influxdb_v1.url], db)
    await h.start()
    for i in range(5):
        h.pipeline.capture(record(i))
    await h.pipeline.flush()
    await h.until(lambda: h.resilience.state is ConnectionState.PAUSED)
    assert h.resilience.paused_reason is ErrorCategory.NOT_FOUND
    assert h.pending() == 5
    await influxdb_v1.acreate_database(db)
    h.pipeline.retry_now()
    await h.until(h.drained)
    await h.stop()
    assert await count_points(influxdb_v1, db) == 5
    await influxdb_v1.adrop_database(db)


async def test_fallback_endpoint_takes_over(
    session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """With the primary URL refusing connections, the fallback URL delivers."""
    closed = f"http://127.0.0.1:{free_port()}"
    h = Harness(session, tmp_path / "spool.sqlite", [closed, influxdb_v1.url], influx_db)
    await h.start()
    for i in range(10):
        h.pipeline.capture(record(i))
    await h.pipeline.flush()
    await h.until(h.drained)
    await h.stop()
    assert h.pipeline.uploader.active_endpoint.startswith(influxdb_v1.url)
    assert await count_points(influxdb_v1, influx_db) == 10


async def test_cancel_mid_write_loses_nothing(
    session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """Cancelling the uploader while a write hangs (SIGSTOPped server) keeps the rows.

    The paused server may still store the write after SIGCONT; the resend then
    overwrites the same points, so the count stays exact.
    """
    h = Harness(session, tmp_path / "spool.sqlite", [influxdb_v1.url], influx_db, timeout=30)
    await h.start()
    influxdb_v1.pause()
    try:
        for i in range(12):
            h.pipeline.capture(record(i))
        await h.pipeline.flush()
        await asyncio.sleep(0.3)
        await h.stop()
    finally:
        influxdb_v1.resume()
    again = Harness(session, tmp_path / "spool.sqlite", [influxdb_v1.url], influx_db)
    await again.start()
    assert again.pending() == 12
    await again.until(again.drained)
    await again.stop()
    assert await count_points(influxdb_v1, influx_db) == 12


class _ExplodingSink:
    """A sink raising a non-DeliveryError: a bug a real server cannot provoke."""

    endpoint = "http://bug.invalid"

    def __init__(self) -> None:
        self.calls = 0

    async def prepare(self, payloads: Sequence[bytes]) -> None:
        """Nothing to encode ahead."""

    async def write(self, payloads: Sequence[bytes]) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("boom")


async def test_unexpected_error_does_not_kill_the_loop(tmp_path: Path) -> None:
    """An unexpected exception is logged and retried; the loop survives (fake sink, see class)."""
    clock = FakeClock()
    res = Resilience(build_policy("infinite", {}), clock)
    up, spool = spooled_uploader(
        tmp_path / "s.sqlite", [Endpoint(sink=_ExplodingSink())], res, clock, run_sync=run_sync
    )
    task = asyncio.create_task(up.run_once())
    for _ in range(200):
        await asyncio.sleep(0.005)
        if task.done():
            break
        deadline = clock.next_deadline()
        if deadline is not None:
            clock.advance(deadline - clock.monotonic())
    assert await task is False
    assert res.last_error_category is ErrorCategory.SERVER
    assert await up.run_once() is True
    assert spool.stats().pending_count == 0
    spool.close()
    with pytest.raises(ValueError, match="endpoint"):
        Uploader(
            endpoints=[],
            spool=spool,
            run_sync=run_sync,
            resilience=res,
            clock=clock,
            max_points=1,
            max_bytes=1,
        )


async def test_backlog_leaves_out_rows_delivered_but_not_deleted_yet(
    session: aiohttp.ClientSession, influxdb_v1: InfluxV1Server, influx_db: str, tmp_path: Path
) -> None:
    """Accepted rows are deleted with the next spool write; the backlog drops at delivery."""
    h = Harness(session, tmp_path / "spool.sqlite", [influxdb_v1.url], influx_db)
    # The write is held until the test says so, so that the next flush job can be
    # "running" exactly while the destination accepts (no race with the uploader).
    sink = h.endpoints[0].sink
    write = sink.write
    writing = asyncio.Event()
    release = asyncio.Event()

    async def held_write(payloads: Sequence[bytes]) -> None:
        writing.set()
        await release.wait()
        await write(payloads)

    sink.write = held_write  # type: ignore[method-assign]
    await h.start()
    await h.capture_flushed(20)
    await h.until(writing.is_set)
    assert h.pipeline.backlog == 20
    # As while the next flush job runs: the uploader waits for its rows instead of
    # reading the spool, so the delete of what it delivered waits too.
    h.pipeline.uploader.expect_handoff(True)
    release.set()
    await h.until(lambda: h.resilience.metrics.events_sent == 20)
    assert h.pending() == 20  # still spooled ...
    assert h.pipeline.uploader.undeleted == 20
    assert h.pipeline.backlog == 0  # ... but not waiting
    h.pipeline.uploader.expect_handoff(False)
    await h.until(lambda: h.pending() == 0)
    assert h.pipeline.backlog == 0
    assert h.pipeline.uploader.undeleted == 0
    await h.stop()
    assert await count_points(influxdb_v1, influx_db) == 20
