"""Cancelling the uploader (unload, FINAL_WRITE) stops it wherever the cancellation lands.

A sink that is down keeps the uploader in its backoff; a wake-up (new data from a flush)
ends that wait, which then cancels its helper tasks. The cancellation of the uploader
task is sent on each loop iteration of that window in turn.
"""

import asyncio
from collections.abc import Sequence
from pathlib import Path
import random

import pytest

from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.resilience import Resilience
from custom_components.ha_ingestor.core.retry import build_policy
from custom_components.ha_ingestor.core.uploader import Endpoint
from tests.core.fake_time import FakeClock
from tests.core.test_pipeline_store import spooled_uploader


class DownSink:
    """Answers every write with 503 (the retry backoff sleeps on the fake clock)."""

    endpoint = "http://down"

    def __init__(self) -> None:
        self.writes = 0

    async def prepare(self, payloads: Sequence[bytes]) -> None:
        """Nothing to encode ahead."""

    async def write(self, payloads: Sequence[bytes]) -> None:
        self.writes += 1
        raise DeliveryError(ErrorCategory.SERVER, "busy", status=503)


@pytest.mark.parametrize("iterations", range(8))
async def test_cancel_after_a_wake_up_stops_the_uploader(tmp_path: Path, iterations: int) -> None:
    """Cancelled 0 to 7 loop iterations after a wake-up: the task ends cancelled.

    Figures: the uploader task is done and cancelled within 1 s (real time, the fake clock
    never moves), 1 write was sent, and 0 helper tasks are left running.
    """
    clock = FakeClock()
    sink = DownSink()
    uploader, spool = spooled_uploader(
        tmp_path / "s.sqlite",
        [Endpoint(sink=sink)],
        Resilience(build_policy("infinite", {}), clock, rng=random.Random(1)),
        clock,
    )
    before = asyncio.all_tasks()
    task = asyncio.ensure_future(uploader.run())
    for _ in range(100):
        await asyncio.sleep(0)
        if clock.pending_sleepers:
            break
    assert clock.pending_sleepers == 1  # in its backoff after the failed write
    uploader.wake()
    for _ in range(iterations):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait([task], timeout=1)
    assert task.cancelled()
    assert sink.writes == 1
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()
    spool.close()
