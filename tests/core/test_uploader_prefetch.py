"""The uploader reads the next batch in the job that deletes the last one."""

from collections.abc import Callable, Sequence
from pathlib import Path
import random
from typing import Any

from custom_components.ha_ingestor.core.clock import FakeClock
from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.resilience import Resilience
from custom_components.ha_ingestor.core.retry import build_policy
from custom_components.ha_ingestor.core.spool import Spool
from custom_components.ha_ingestor.core.uploader import Endpoint, Uploader


class Sink:
    """Accepts everything but batches holding a ``bad`` line (400)."""

    endpoint = "http://sink"

    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []

    async def write(self, payloads: Sequence[bytes]) -> None:
        self.writes.append(list(payloads))
        if any(b"bad" in p for p in payloads):
            raise DeliveryError(ErrorCategory.BAD_DATA, "field type conflict", status=400)


def rig(
    tmp_path: Path, payloads: list[bytes], max_points: int
) -> tuple[Uploader, Spool, Sink, list[str]]:
    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    spool.append([(i + 1, p) for i, p in enumerate(payloads)])
    calls: list[str] = []

    async def run_sync(fn: Callable[..., Any], *args: Any) -> Any:
        calls.append(fn.__name__)
        return fn(*args)

    sink = Sink()
    clock = FakeClock()
    uploader = Uploader(
        endpoints=[Endpoint(sink=sink)],
        spool=spool,
        run_sync=run_sync,
        resilience=Resilience(build_policy("infinite", {}), clock, rng=random.Random(1)),
        clock=clock,
        max_points=max_points,
        max_bytes=1 << 20,
        probe=None,
    )
    return uploader, spool, sink, calls


async def test_one_spool_job_per_upload(tmp_path: Path) -> None:
    uploader, spool, sink, calls = rig(tmp_path, [b"m v=%d" % i for i in range(25)], 10)
    for _ in range(3):
        assert await uploader.run_once() is True
    assert [len(w) for w in sink.writes] == [10, 10, 5]
    assert calls == ["peek", "delete_and_peek", "delete_and_peek", "delete_and_peek"]
    assert spool.stats().pending_count == 0
    # New rows after an empty read: woken, the next round reads afresh.
    spool.append([(99, b"m v=99")])
    uploader.wake()
    assert await uploader.run_once() is False
    assert await uploader.run_once() is True
    assert sink.writes[-1] == [b"m v=99"]
    spool.close()


async def test_quarantined_rows_are_not_sent_again(tmp_path: Path) -> None:
    payloads = [b"m v=1", b"m v=2", b"m bad=1", b"m v=4", b"m v=5"]
    uploader, spool, sink, calls = rig(tmp_path, payloads, 4)
    assert await uploader.run_once() is True
    assert [d.payload for d in spool.dead_letters()] == [b"m bad=1"]
    assert await uploader.run_once() is True
    assert sink.writes[-1] == [b"m v=5"]
    assert sum(w.count(b"m bad=1") for w in sink.writes) == 3  # only while bisecting
    assert spool.stats().pending_count == 0
    assert calls[0] == "peek"
    spool.close()


async def test_failed_send_reads_afresh(tmp_path: Path) -> None:
    uploader, spool, sink, _calls = rig(tmp_path, [b"m v=1", b"m v=2", b"m v=3"], 1)
    assert await uploader.run_once() is True
    assert uploader._next_rows is not None

    async def refuse(payloads: Sequence[bytes]) -> None:
        raise DeliveryError(ErrorCategory.SERVER, "busy", status=503)

    sink.write = refuse  # type: ignore[method-assign]
    uploader._res.before_attempt = lambda: 0.0  # type: ignore[method-assign]
    uploader._wakeup.set()  # the retry delay ends at once
    assert await uploader.run_once() is False
    assert uploader._next_rows is None
    spool.close()
