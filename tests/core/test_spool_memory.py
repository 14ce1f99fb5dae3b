"""The memory fallback under a disk that really fails: RAM bounded, moved back in chunks.

The disk failure is real, not simulated: the kernel's file size limit
(``RLIMIT_FSIZE``) makes every write past it fail with ``EFBIG``, exactly as a
full disk fails SQLite's writes (``SQLITE_FULL``), and it binds root too (a
read-only directory or ``chmod`` does not stop root, and a tiny tmpfs cannot be
mounted here). The limit is process-wide, so it is held only around the
appends and recoveries, with ``SIGXFSZ`` ignored meanwhile.
"""

from collections.abc import Iterator
import contextlib
from pathlib import Path
import random
import resource
import signal

from custom_components.ha_ingestor.core.spool import RECOVER_CHUNK, Spool
from custom_components.ha_ingestor.core.spool_memory import ROW_COST

MiB = 1024 * 1024
LINE = 200
FLUSH = 2000  # lines per append, a busy second


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes of this process past ``limit`` bytes of any file fail (EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def line(n: int) -> bytes:
    """``LINE`` bytes that do not compress: the disk fills as fast as RAM does."""
    return f"{n:012d}".encode() + random.Random(n).randbytes(LINE - 12)


def flush(start: int) -> list[tuple[int, bytes]]:
    return [(start + i, line(start + i)) for i in range(FLUSH)]


def largest_file(db: Path) -> int:
    return max(p.stat().st_size for p in db.parent.iterdir())


def test_full_disk_memory_bounded_then_moved_back_in_chunks(tmp_path: Path) -> None:
    """The disk fills up; 10x the memory budget is appended meanwhile.

    Figures: the memory store's bytes (payload + per-row cost) never exceed the
    6 MiB budget; every row appended is either in the spool at the end or
    counted in dropped_total (lost uncounted = 0), and the dropped ones are the
    oldest. Recovery on a disk with room for one chunk moves exactly one chunk
    (5 000 rows) and keeps the rest in memory; with room again, all of it.
    """
    budget = 6 * MiB
    db = tmp_path / "spool.sqlite"
    spool = Spool(db, max_bytes=512 * MiB, max_memory_bytes=budget, recover_after=None)
    spool.open()
    appended = 0
    spool.append(flush(appended))
    appended += FLUSH
    stored_on_disk = FLUSH
    peak = 0
    with file_size_limit(largest_file(db) + 64 * 1024):
        while not spool.stats().in_memory:
            result = spool.append(flush(appended))
            appended += FLUSH
            if not spool.stats().in_memory:
                stored_on_disk += result.stored
        since_failure = 0
        while since_failure < 10 * budget:
            spool.append(flush(appended))
            appended += FLUSH
            since_failure += FLUSH * LINE
            stats = spool.stats()
            assert stats.in_memory
            peak = max(peak, stats.pending_bytes + stats.dead_letter_bytes)
            assert stats.pending_bytes + stats.dead_letter_bytes <= budget
    stats = spool.stats()
    assert stats.last_storage_error == "OperationalError: disk I/O error"  # EFBIG
    assert stats.stranded_count == stored_on_disk
    in_memory = stats.pending_count
    assert in_memory * (LINE + ROW_COST) <= budget
    assert peak > budget // 2  # the budget was really reached
    newest = [row.time_ns for row in spool.peek(in_memory, 1 << 40)]
    assert newest == list(range(appended - in_memory, appended))  # drop-oldest
    assert in_memory > RECOVER_CHUNK

    # Room for one chunk of rows, not two: one chunk moves, the rest stays.
    with file_size_limit(largest_file(db) + RECOVER_CHUNK * LINE * 5 // 4):
        assert not spool.try_recover()
    stats = spool.stats()
    assert stats.in_memory
    assert stats.pending_count == in_memory - RECOVER_CHUNK
    assert stats.stranded_count == stored_on_disk + RECOVER_CHUNK

    assert spool.try_recover()
    stats = spool.stats()
    assert not stats.in_memory
    assert stats.pending_count == stored_on_disk + in_memory
    assert stats.pending_count + stats.dropped_total == appended
    times = [row.time_ns for row in spool.peek(stats.pending_count, 1 << 40)]
    assert times == [*range(stored_on_disk), *range(appended - in_memory, appended)]
    spool.close()
