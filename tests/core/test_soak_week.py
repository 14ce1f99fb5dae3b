"""A week-long outage, simulated: a default-size spool filled with 7 days at 50 events/s.

Behind the ``soak`` marker (excluded by default; ``scripts/test --soak`` runs it).
"""

import asyncio
from pathlib import Path
import time

import aiohttp
import pytest

from custom_components.ha_ingestor.const import DEFAULT_SPOOL_MAX_MB, SPOOL_ENCODED_PER_DISK_BYTE
from custom_components.ha_ingestor.core.spool import Spool
from tests.core.test_pipeline import Harness
from tests.core.typical_home import TypicalHome
from tests.servers import InfluxV1Server

RATE = 50
HOUR = 3600 * RATE  # events per simulated hour
DAYS = 7
MiB = 1024 * 1024


def hour_template() -> tuple[list[int], list[bytes]]:
    """One hour of a typical home's lines: times, and each line without its timestamp."""
    lines = TypicalHome(rate=RATE).lines(HOUR)
    assert len(lines) == HOUR
    return [t for t, _ in lines], [p[: p.rindex(b" ") + 1] for _, p in lines]


def fill(path: Path) -> tuple[int, int]:
    """Append a week of flushes of 50 lines (one a second on a fake clock); return (appended, dropped)."""
    times, prefixes = hour_template()
    now = [1_800_000_000.0]
    spool = Spool(
        path,
        max_bytes=DEFAULT_SPOOL_MAX_MB * MiB * SPOOL_ENCODED_PER_DISK_BYTE,
        max_disk_bytes=DEFAULT_SPOOL_MAX_MB * MiB,
        # NORMAL: an fsync per flush would only make this test take an hour longer;
        # what is stored, and its size, do not depend on it.
        synchronous="NORMAL",
        clock=lambda: now[0],
    )
    spool.open()
    appended = dropped = 0
    try:
        for hour in range(24 * DAYS):
            offset = hour * 3600 * 1_000_000_000
            for start in range(0, HOUR, RATE):
                flush = [
                    (t + offset, prefix + str(t + offset).encode())
                    for t, prefix in zip(
                        times[start : start + RATE], prefixes[start : start + RATE], strict=True
                    )
                ]
                dropped += spool.append(flush).dropped
                appended += len(flush)
                now[0] += 1.0
        stats = spool.stats()
        assert stats.pending_count + dropped == appended
    finally:
        spool.close()
    return appended, dropped


async def count_all(server: InfluxV1Server, db: str) -> int:
    """Points in every measurement (each point has ``value`` or, for lights, ``state``)."""
    total = 0
    for measurement in ("W", "kWh", "°C", "%"):
        rows = await server.aquery(f'SELECT count("value") FROM "{measurement}"', db)
        total += int(rows[0]["count"]) if rows else 0
    rooms = ["kitchen", "living_room", "bedroom", "bathroom", "office", "hallway", "garage"]
    for room in rooms:
        for measurement, field in (
            (f"binary_sensor.{room}_motion", "value"),
            (f"light.{room}", "state"),
        ):
            rows = await server.aquery(f'SELECT count("{field}") FROM "{measurement}"', db)
            total += int(rows[0]["count"]) if rows else 0
    return total


@pytest.mark.soak
async def test_week_outage_fits_the_default_spool_and_drains(
    http_session: aiohttp.ClientSession,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    tmp_path: Path,
) -> None:
    """7 days at 50 events/s (30 240 000 typical lines, ~173 B each) while InfluxDB is down.

    Filled through the spool's own append, one flush of 50 lines per simulated
    second (a fake clock), into a real SQLite file with the default limits
    (512 MiB on disk). Figures: dropped = 0; the file holds all 30 240 000
    points in less than 512 MiB; then the core pipeline's uploader drains it
    into a real InfluxDB 1.6.7 and the count there is 30 240 000 (lost = 0).
    Run time here: 890 s (filling 190 s, draining 691 s, on 2 shared cores); the
    file held the week in 401 MiB (13.9 B per point).
    """
    path = tmp_path / "spool.sqlite"
    started = time.monotonic()
    appended, dropped = await asyncio.to_thread(fill, path)
    filled = time.monotonic() - started
    assert appended == 24 * DAYS * HOUR == 30_240_000
    assert dropped == 0
    size = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert size < DEFAULT_SPOOL_MAX_MB * MiB
    h = Harness(http_session, path, [influxdb_v1.url], influx_db, timeout=120.0)
    await h.start()
    try:
        deadline = time.monotonic() + 3 * 3600
        while h.pending() != 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(1.0)
    finally:
        await h.stop()
    drained = time.monotonic() - started - filled
    assert h.resilience.metrics.events_sent == appended
    assert await count_all(influxdb_v1, influx_db) == appended
    print(
        f"week: {appended} points in {size / MiB:.0f} MiB ({size / appended:.1f} B/point);"
        f" filled in {filled:.0f} s, drained in {drained:.0f} s"
    )
