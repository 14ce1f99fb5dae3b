"""How long the spool holds: the measured event rate, bytes per event on disk, hours left."""

from pathlib import Path

import aiohttp
import pytest

from custom_components.ha_ingestor.core.pipeline import TYPICAL_DISK_BYTES_PER_EVENT
from tests.core.test_pipeline import Harness, record

MiB = 1024 * 1024


async def test_outlook_from_the_measured_rate(
    http_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """50 events a minute for 10 minutes (fake clock), nothing delivered.

    Figures: rate = 500 events / 540 s; capacity = 512 MiB / (rate x 14.5 B) in
    hours; time until full = the room left / the same; unknown before a minute.
    """
    h = Harness(http_session, tmp_path / "spool.sqlite", ["http://127.0.0.1:9"], "db")
    h.spool.max_disk_bytes = 512 * MiB
    await h.pipeline.async_open()
    try:
        assert h.pipeline.spool_outlook() == {}
        for minute in range(10):
            for i in range(50):
                h.pipeline.capture(record(minute * 50 + i))
            await h.pipeline.flush()
            if minute == 0:
                assert h.pipeline.event_rate() is None
            if minute < 9:
                h.clock.advance(60)
        rate = h.pipeline.event_rate()
        assert rate == pytest.approx(500 / 540)  # counted from the first look, at 0 events
        stats = h.pipeline.stats
        assert stats is not None
        assert 0 < stats.disk_bytes < stats.pending_bytes
        hourly = rate * TYPICAL_DISK_BYTES_PER_EVENT * 3600
        assert h.pipeline.spool_outlook() == {
            "spool_capacity_hours": round(512 * MiB / hourly, 1),
            "spool_full_in_hours": round((512 * MiB - stats.disk_bytes) / hourly, 1),
        }
    finally:
        await h.pipeline.async_close()


async def test_outlook_uses_the_measured_size_from_1000_points(
    http_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Below 1 000 spooled points the typical 14.5 B a point; from 1 000 on, the spool's
    own bytes / points, and the outlook follows it.
    """
    h = Harness(http_session, tmp_path / "spool.sqlite", ["http://127.0.0.1:9"], "db")
    h.spool.max_disk_bytes = 512 * MiB
    await h.pipeline.async_open()
    try:
        for i in range(999):
            h.pipeline.capture(record(i))
        await h.pipeline.flush()
        assert h.pipeline.disk_bytes_per_event() == TYPICAL_DISK_BYTES_PER_EVENT == 14.5
        h.clock.advance(60)
        h.pipeline.capture(record(999))
        await h.pipeline.flush()
        stats = h.pipeline.stats
        assert stats is not None
        assert stats.pending_count == 1000
        measured = stats.disk_bytes / 1000
        assert measured != TYPICAL_DISK_BYTES_PER_EVENT
        assert h.pipeline.disk_bytes_per_event() == measured
        rate = h.pipeline.event_rate()
        assert rate is not None
        assert h.pipeline.spool_outlook()["spool_capacity_hours"] == round(
            512 * MiB / (rate * measured * 3600), 1
        )
    finally:
        await h.pipeline.async_close()
