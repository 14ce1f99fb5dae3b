"""Pipeline._store converts while encoding: bad items are quarantined in order."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from custom_components.ha_ingestor.core.encoder import (
    EncoderConfig,
    EventRecord,
    LineProtocolEncoder,
)
from custom_components.ha_ingestor.core.pipeline import Pipeline, PipelineConfig, RunSync
from custom_components.ha_ingestor.core.resilience import Resilience
from custom_components.ha_ingestor.core.retry import build_policy
from custom_components.ha_ingestor.core.spool import Spool
from custom_components.ha_ingestor.core.uploader import Endpoint, Probe, Uploader
from tests.core.fake_time import FakeClock


class NeverSink:
    endpoint = "http://never"

    async def prepare(self, payloads: Sequence[bytes]) -> None:
        """Nothing to encode ahead."""

    async def write(self, payloads: Sequence[bytes]) -> None:
        raise AssertionError("not used")


async def run_sync(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def convert(item: Any) -> EventRecord | None:
    if item == "boom":
        raise ValueError("bad item")
    if item is None:
        return None
    return EventRecord(
        entity_id=item[0], state=item[1], attributes={}, time_ns=item[2], last_changed_ns=item[2]
    )


def offline_pipeline(
    spool: Spool,
    *,
    run_sync: RunSync = run_sync,
    convert: Callable[[Any], Any] = lambda item: item,
    config: PipelineConfig | None = None,
    clock: FakeClock | None = None,
) -> Pipeline:
    """A pipeline on a fake clock whose sink is never reached: what it stores is exercised."""
    clock = clock or FakeClock()
    return Pipeline(
        encoder=LineProtocolEncoder(EncoderConfig()),
        spool=spool,
        endpoints=[Endpoint(sink=NeverSink())],
        resilience=Resilience(build_policy("infinite", {}), clock),
        clock=clock,
        run_sync=run_sync,
        convert=convert,
        config=config,
    )


def spooled_uploader(
    spool_path: Path,
    endpoints: list[Endpoint],
    resilience: Resilience,
    clock: FakeClock,
    *,
    payloads: Sequence[bytes] = (b"m v=1 1",),
    run_sync: RunSync = run_sync,
    max_points: int = 10,
    max_bytes: int = 1000,
    probe: Probe | None = None,
) -> tuple[Uploader, Spool]:
    """An uploader over an open spool holding ``payloads`` (rows 1, 2, ...); close the spool."""
    spool = Spool(spool_path)
    spool.open()
    if payloads:
        spool.append([(i + 1, payload) for i, payload in enumerate(payloads)])
    uploader = Uploader(
        endpoints=endpoints,
        spool=spool,
        run_sync=run_sync,
        resilience=resilience,
        clock=clock,
        max_points=max_points,
        max_bytes=max_bytes,
        probe=probe,
    )
    return uploader, spool


def store_pipeline(spool: Spool) -> Pipeline:
    """A pipeline whose uploader never runs: only ``_store`` is exercised."""
    return offline_pipeline(spool, convert=convert)


def test_store_streams_records_and_quarantines_bad_ones(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    pipeline = store_pipeline(spool)
    batch = [
        ("sensor.a", "1", 10),
        "boom",
        None,
        ("bad", "1", 20),  # converts, but cannot be encoded
        ("sensor.b", "unknown", 30),  # skipped
        ("sensor.c", "2", 40),
    ]
    result, appended = pipeline._store(batch)
    assert len(appended.rows) == 2  # handed to the uploader
    assert appended.rows.payloads == [r.payload for r in spool.peek(10, 1 << 20)]
    assert (result.captured, result.stored, result.skipped, result.rejected) == (6, 2, 1, 2)
    assert [r.time_ns for r in spool.peek(10, 1 << 20)] == [10, 40]
    dead = spool.dead_letters()
    assert [d.reason for d in dead] == [
        "cannot convert: bad item",
        "entity_id 'bad' is not '<domain>.<object_id>'",
    ]
    assert dead[0].payload == b"'boom'"
    spool.close()


def test_store_records_the_gap_a_full_spool_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=100)
    spool.open()
    pipeline = store_pipeline(spool)
    pipeline._store([("sensor.a", "1", 10), ("sensor.a", "2", 20)])
    assert not spool.gaps()
    result, appended = pipeline._store([("sensor.a", "3", 30), ("sensor.a", "4", 40)])
    assert result.dropped
    # The new rows still get their ids; the uploader notices the evicted ones
    # are missing (ids no longer follow what it read) and reads the spool.
    assert [p.rsplit(b" ", 1)[1] for p in appended.rows.payloads] == [b"30", b"40"]
    oldest_after = spool.stats().oldest_time_ns
    assert spool.gaps() == [(10, oldest_after)]
    spool.close()


def test_store_keeps_rendered_points_in_capture_order(tmp_path: Path) -> None:
    """A converter may render a point itself (the line cache's fast path)."""
    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    pipeline = store_pipeline(spool)

    def rendering(item: Any) -> EventRecord | tuple[int, bytes] | None:
        if isinstance(item, bytes):
            return int(item.rsplit(b" ", 1)[1]), item
        return convert(item)

    pipeline._convert = rendering
    batch = [("sensor.a", "1", 10), b"pre,x=1 value=2 20", "boom", ("sensor.c", "3", 30)]
    result, appended = pipeline._store(batch)
    assert (result.stored, result.rejected) == (3, 1)
    assert [r.time_ns for r in spool.peek(10, 1 << 20)] == [10, 20, 30]
    assert appended.rows.payloads[1] == b"pre,x=1 value=2 20"
    spool.close()
