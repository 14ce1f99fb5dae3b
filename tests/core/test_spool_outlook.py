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
