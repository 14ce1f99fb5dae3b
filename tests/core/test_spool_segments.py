"""Spool segments: migration, partial delivery, damage, merging, the disk limit.

``data/spool_format1.sqlite`` was written by the one-row-per-point code (the
commit before segments): 1 200 points appended in 12 flushes under a 120 000-byte limit (259
dropped, one gap), 40 delivered, one quarantined from pending and one
rejected before it; 900 points pending.
"""

from contextlib import closing
from pathlib import Path
import shutil
import sqlite3

import pytest

from custom_components.ha_ingestor.core import spool_codec
from custom_components.ha_ingestor.core.spool import RowIds, Spool
from custom_components.ha_ingestor.core.spool_sqlite import SCHEMA_VERSION, SqliteStore
from tests.core.typical_home import TypicalHome

FORMAT1 = Path(__file__).parent / "data" / "spool_format1.sqlite"


def old_rows(path: Path) -> list[tuple[int, bytes, float]]:
    with closing(sqlite3.connect(path)) as conn, conn:
        return [
            (t, bytes(p), at)
            for t, p, at in conn.execute(
                "SELECT time_ns, payload, enqueued_at FROM pending ORDER BY id"
            )
        ]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "spool.sqlite"
    shutil.copyfile(FORMAT1, path)
    return path


def test_format1_file_migrates_losing_nothing(db: Path) -> None:
    """Figures: 900 points before = 900 after (same times, payloads, order, bytes);
    2 dead letters, dropped_total 259 and the gap kept; the old table is gone;
    the migrated points are delivered and deleted like any others.
    """
    before = old_rows(db)
    assert len(before) == 900
    with Spool(db, clock=lambda: 1_800_000_000.0) as spool:
        stats = spool.stats()
        assert not stats.storage_failed
        assert (stats.pending_count, stats.pending_bytes) == (
            900,
            sum(len(p) for _, p, _ in before),
        )
        assert stats.disk_bytes < stats.pending_bytes // 3
        assert (stats.dead_letter_count, stats.dropped_total) == (2, 259)
        assert spool.gaps() == [(1_700_000_000_000_000_000, 1_700_000_000_259_000_000)]
        rows = spool.peek(10_000, 1 << 30)
        assert [(r.time_ns, r.payload) for r in rows] == [(t, p) for t, p, _ in before]
        # Max age still sees each flush's own enqueue time.
        assert stats.oldest_enqueued_at == before[0][2]
        assert {r.reason for r in spool.dead_letters()} == {
            "unable to parse",
            "field type conflict",
        }
        assert spool.delete([r.id for r in rows[:100]]) == 100
    with closing(sqlite3.connect(db)) as conn, conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert "pending" not in tables
        # One segment per flush that still had points (enqueue times differ).
        assert conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0] <= 12
    with Spool(db) as spool:
        assert spool.stats().pending_count == 800


def test_migration_interrupted_leaves_format1_whole(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fails after the segments are written, before the commit (a crash there
    rolls back the same way). Figures: the file is still format 1 with its 900
    rows; the next open migrates all 900.
    """
    migrate = SqliteStore.migrate_rows

    def failing(store: SqliteStore) -> int:
        migrate(store)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SqliteStore, "migrate_rows", failing)
    spool = Spool(db, recover_after=None)
    spool.open()
    assert spool.storage_failed  # ran in memory, the file untouched
    spool.close()
    with closing(sqlite3.connect(db)) as conn, conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
        assert conn.execute("SELECT COUNT(*) FROM pending").fetchone() == (900,)
    monkeypatch.setattr(SqliteStore, "migrate_rows", migrate)
    with Spool(db) as spool:
        assert spool.stats().pending_count == 900


def test_partly_delivered_segment_survives_a_restart(tmp_path: Path) -> None:
    """A batch boundary inside a segment, then a quarantine inside it, then a restart.

    Figures: of 10 points in one segment, 4 delivered + 1 quarantined are never
    served again, the other 5 are (0 lost, 0 resent); the dead letter is per point.
    """
    db = tmp_path / "s.sqlite"
    with Spool(db) as spool:
        result = spool.append([(i, b"p%d" % i) for i in range(10)], hand_back=True)
        ids = list(result.rows.ids)
        spool.delete(ids[:4])
        assert spool.quarantine(RowIds(result.generation, [ids[6]]), "bad", "bad_data") == 1
    with Spool(db) as spool:
        assert [r.payload for r in spool.peek(100, 1 << 20)] == [
            b"p4",
            b"p5",
            b"p7",
            b"p8",
            b"p9",
        ]
        assert [d.payload for d in spool.dead_letters()] == [b"p6"]
        stats = spool.stats()
        assert (stats.pending_count, stats.pending_bytes, stats.oldest_time_ns) == (5, 10, 4)


def test_damaged_segment_loses_only_its_points(tmp_path: Path) -> None:
    """A segment whose compressed bytes are garbage (pages intact, so SQLite cannot tell).

    Figures: of 3 segments of 100 points, the damaged one's 100 are lost and
    counted (dropped_total = salvage_lost = 100), the other 200 come back in
    order; the spool stays on disk.
    """
    db = tmp_path / "s.sqlite"
    with Spool(db, segment_points=100) as spool:
        spool.append([(i, b"line %d" % i) for i in range(300)])
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE segments SET data = x'01deadbeef' WHERE last_id = 200")
    with Spool(db) as spool:
        times = [r.time_ns for r in spool.peek(1000, 1 << 30)]
        stats = spool.stats()
        assert times == [*range(100), *range(200, 300)]
        assert (stats.salvage_lost, stats.dropped_total, stats.corrupt_files) == (100, 100, 1)
        assert not stats.storage_failed
        assert spool.take_unreported_drops() == 100


@pytest.mark.parametrize("fmt", [spool_codec.FORMAT_ZLIB, spool_codec.FORMAT_ZSTD])
def test_both_segment_formats_read(fmt: int) -> None:
    """The format byte says how a segment is compressed: zlib and zstd both read back."""
    times = [5, 3, 2**62, -(2**62), 7]  # deltas beyond 64 bits are stored absolute
    payloads = [b"a", b"", b"\xff" * 300, b"d,e=f g=1", b"x"]
    data = spool_codec.encode(times, payloads, fmt)
    assert data[0] == fmt
    assert spool_codec.decode(data) == (times, payloads)
    with pytest.raises(spool_codec.SegmentError):
        spool_codec.decode(data[:-3])
    with pytest.raises(spool_codec.SegmentError):
        spool_codec.decode(b"\x09" + data[1:])


def test_small_segments_of_an_outage_are_merged(tmp_path: Path) -> None:
    """120 flushes of 50 points with nothing delivered (an outage), then a restart.

    Figures: the 6 000 points come back in order with their ids (0 lost); the
    120 segments became 2 (one per 60 flushes) and the file holds fewer
    bytes than before the merge; points delivered out of a merged segment by
    ids read before the merge are deleted (ids are kept).
    """
    db = tmp_path / "s.sqlite"
    spool = Spool(db, clock=lambda: 1_800_000_000.0)
    spool.open()
    home = TypicalHome()
    first = spool.append(home.lines(50), hand_back=True)
    read_before = spool.peek(10, 1 << 30)
    small_bytes = spool.stats().disk_bytes * 120
    for n in range(1, 120):
        spool.append(home.lines(50, start=n * 50))
    stats = spool.stats()
    assert stats.pending_count == 6000
    assert stats.disk_bytes < small_bytes * 0.8
    assert spool.delete([r.id for r in read_before]) == 10
    spool.close()
    with closing(sqlite3.connect(db)) as conn, conn:
        counts = [c for (c,) in conn.execute("SELECT count FROM segments ORDER BY last_id")]
        assert counts == [3000, 3000]
    with Spool(db) as spool:
        rows = spool.peek(10_000, 1 << 30)
        assert [r.id for r in rows] == list(range(first.rows.ids[0] + 10, 6001))
        assert [r.payload for r in rows] == [p for _, p in TypicalHome().lines(6000)][10:]


def test_disk_limit_drops_whole_oldest_segments(tmp_path: Path) -> None:
    """``max_disk_bytes`` bounds the compressed bytes on disk (drop-oldest).

    Figures: stored + dropped = appended exactly; the bytes on disk stay within
    the limit plus one segment; the points kept are the newest.
    """
    db = tmp_path / "s.sqlite"
    home = TypicalHome()
    with Spool(db, max_disk_bytes=40_000) as spool:
        dropped = 0
        for n in range(100):
            dropped += spool.append(home.lines(50, start=n * 50)).dropped
        stats = spool.stats()
        assert stats.pending_count + dropped == 5000
        assert dropped > 0
        assert stats.dropped_total == dropped
        assert stats.disk_bytes <= 40_000 + 2_000
        times = [r.time_ns for r in spool.peek(10_000, 1 << 30)]
        assert times == [t for t, _ in TypicalHome().lines(5000)][dropped:]
        assert spool.gaps()
