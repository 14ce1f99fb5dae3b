"""A damaged spool file: salvaged segment by segment into a fresh one, the rest counted.

Every test damages a REAL SQLite file on disk (pages overwritten with garbage,
the file truncated) and checks the figures exactly: points salvaged + points
lost = points the file held, and the lost points are exactly those of the
segments on the damaged pages. Segments hold ``SEG`` points here, so a page
holds a few segments, as a page holds a few segments of a busy flush.
"""

from collections.abc import Iterator
from contextlib import contextmanager
import logging
from pathlib import Path
import random
import sqlite3

import pytest

from custom_components.ha_ingestor.core.spool import Spool, spool_files
from custom_components.ha_ingestor.core.spool_sqlite import SCHEMA_VERSION

NOW = 1_700_000_000.0
PAGE = 4096
SEG = 10  # points per segment


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def payload(i: int) -> bytes:
    """200 bytes, unique per row, compressing about as badly as hex digits do."""
    prefix = f"sensor.t{i:06d},domain=sensor value={i}i ".encode()
    return prefix + random.Random(i).randbytes(100).hex().encode()[: 200 - len(prefix)]


def filled(path: Path, count: int, *, dead: int = 0, delivered: int = 0) -> list[int]:
    """A closed spool file holding rows ``delivered..count-1`` (+ ``dead`` dead letters).

    Returns the time_ns of the rows still pending.
    """
    with Spool(path, clock=Clock(), segment_points=SEG) as spool:
        spool.append([(i, payload(i)) for i in range(count)])
        if delivered:
            spool.delete(list(range(1, delivered + 1)))
        if dead:
            spool.quarantine_payloads([(-i, payload(-i)) for i in range(dead)], "bad", "bad_data")
    return list(range(delivered, count))


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that commits on success and is closed either way."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def leaf_pages(path: Path, table: str) -> list[int]:
    with connect(path) as conn:
        return [
            page
            for (page,) in conn.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
                (table,),
            )
        ]


def varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        byte = data[pos + i]
        if i == 8:
            return (value << 8) | byte, pos + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    raise AssertionError


def rowids_on(path: Path, page: int) -> list[int]:
    """Row ids stored on a table leaf page (parsed from the file's bytes)."""
    with path.open("rb") as f:
        f.seek((page - 1) * PAGE)
        data = f.read(PAGE)
    assert data[0] == 0x0D  # table b-tree leaf
    cells = int.from_bytes(data[3:5])
    ids = []
    for n in range(cells):
        pointer = int.from_bytes(data[8 + 2 * n : 10 + 2 * n])
        _, pos = varint(data, pointer)  # payload length
        rowid, _ = varint(data, pos)
        ids.append(rowid)
    return ids


def points_on(path: Path, page: int) -> set[int]:
    """Point ids of the segments stored on a leaf page (a segment's row id is its last point)."""
    return {last - k for last in rowids_on(path, page) for k in range(SEG)}


def smash(path: Path, pages: list[int]) -> None:
    """Overwrite whole pages with garbage (never a valid page type)."""
    rnd = random.Random(7)
    with path.open("r+b") as f:
        for page in pages:
            f.seek((page - 1) * PAGE)
            f.write(b"\xff" + rnd.randbytes(PAGE - 1))


def pending_times(spool: Spool) -> list[int]:
    return [row.time_ns for row in spool.peek(1_000_000, 1 << 40)]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "spool.sqlite"


def test_garbage_pages_in_the_middle(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Three pending leaf pages in the middle of the file overwritten with garbage.

    Figure: rows salvaged = 2 900 - rows on those pages (+ 40 dead letters),
    rows lost = exactly the rows on those pages, counted in dropped_total; the
    renamed damaged file is deleted; the spool stays on disk.
    """
    times = filled(db, 3000, dead=40, delivered=100)
    pages = leaf_pages(db, "segments")
    damaged = [pages[len(pages) // 4], pages[len(pages) // 2], pages[len(pages) // 2 + 1]]
    lost_ids = {rowid for page in damaged for rowid in points_on(db, page)}
    assert len(lost_ids) > 40
    smash(db, damaged)
    with Spool(db, clock=Clock()) as spool:
        stats = spool.stats()
        assert not stats.storage_failed
        # Row id n holds time_ns n - 1 (ids start at 1).
        assert pending_times(spool) == [t for t in times if t + 1 not in lost_ids]
        assert [row.payload for row in spool.peek(10, 1 << 30)] == [payload(t) for t in times[:10]]
        assert len(spool.dead_letters(100)) == 40
        assert (stats.corrupt_files, stats.salvage_lost) == (1, len(lost_ids))
        assert stats.salvaged_total == 2900 - len(lost_ids) + 40
        assert (stats.last_salvaged, stats.last_salvage_lost) == (
            stats.salvaged_total,
            len(lost_ids),
        )
        assert stats.last_corrupt_at == NOW
        assert stats.dropped_total == len(lost_ids)
        assert spool.take_unreported_drops() == len(lost_ids)
        assert spool.take_unreported_drops() == 0
    assert sorted(p.name for p in db.parent.iterdir()) == ["spool.sqlite"]
    assert f"{len(lost_ids)} rows could not be read" in caplog.text
    # The history survives a restart (the repair reads it).
    with Spool(db, clock=Clock()) as spool:
        stats = spool.stats()
        assert (stats.corrupt_files, stats.salvage_lost, stats.dropped_total) == (
            1,
            len(lost_ids),
            len(lost_ids),
        )
        assert stats.last_corrupt_at == NOW


def test_truncated_file(db: Path) -> None:
    """The file cut at 60 % of its length (a write that never finished).

    Figure: rows salvaged + rows lost = 3 000 exactly; the salvaged rows are the
    originals (byte for byte, in order) of the pages left in the file.
    """
    times = filled(db, 3000)
    pages = leaf_pages(db, "segments")
    keep = int(db.stat().st_size * 0.6) // PAGE
    gone = {rowid for page in pages if page > keep for rowid in points_on(db, page)}
    with db.open("r+b") as f:
        f.truncate(keep * PAGE)
    with Spool(db, clock=Clock()) as spool:
        stats = spool.stats()
        assert not stats.storage_failed
        survivors = [t for t in times if t + 1 not in gone]
        assert pending_times(spool) == survivors
        assert stats.salvaged_total + stats.salvage_lost == 3000
        assert stats.salvage_lost == len(gone) > 0
        assert stats.dropped_total == len(gone)


def test_corruption_found_after_open_recreates_on_disk(db: Path) -> None:
    """Pages go bad while the spool is open (more rows than SQLite's page cache
    holds, so the reads reach the file): the next read moves the file aside,
    salvages it and carries on on disk, instead of falling back to memory.

    Figure: rows salvaged + rows lost = 60 000 exactly, lost = the rows on the
    damaged pages; storage_failed stays False.
    """
    count = 60_000
    times = filled(db, count)
    spool = Spool(db, clock=Clock())
    spool.open()
    pages = leaf_pages(db, "segments")
    damaged = pages[5:8]
    lost_ids = {rowid for page in damaged for rowid in points_on(db, page)}
    assert lost_ids  # the lost = rows on the damaged pages figure is not trivially 0
    smash(db, damaged)
    head = spool.peek(5000, 1 << 30)  # the head: the damaged pages are among the first
    stats = spool.stats()
    assert not stats.storage_failed
    assert not stats.in_memory
    assert stats.corrupt_files == 1
    assert stats.salvage_lost == len(lost_ids)
    assert stats.salvaged_total == count - len(lost_ids)
    survivors = [t for t in times if t + 1 not in lost_ids]
    assert [row.time_ns for row in head] == survivors[:5000]
    assert pending_times(spool) == survivors
    assert spool.append([(10**9, b"new")]).stored == 1  # the fresh file takes writes
    spool.close()
    assert sorted(p.name for p in db.parent.iterdir()) == ["spool.sqlite"]


def test_version_0_file_is_migrated(db: Path) -> None:
    """A spool written before the format had a version (0) opens and becomes 1.

    Figure: rows lost = 0; the row counts and the gaps table are added.
    """
    with connect(db) as conn:
        conn.executescript(
            """
            CREATE TABLE pending (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ns INTEGER NOT NULL,
                payload BLOB NOT NULL, size INTEGER NOT NULL, enqueued_at REAL NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE dead_letter (id INTEGER PRIMARY KEY AUTOINCREMENT,
                time_ns INTEGER NOT NULL, payload BLOB NOT NULL, size INTEGER NOT NULL,
                reason TEXT NOT NULL, category TEXT NOT NULL, quarantined_at REAL NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT INTO meta VALUES ('dropped_total', 7);
            """
        )
        conn.executemany(
            "INSERT INTO pending (time_ns, payload, size, enqueued_at) VALUES (?, ?, ?, ?)",
            [(i, payload(i), 200, NOW) for i in range(5)],
        )
    with Spool(db, clock=Clock()) as spool:
        assert pending_times(spool) == list(range(5))
        assert spool.stats().dropped_total == 7
    with connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert (meta["pending_count"], meta["dead_letter_count"]) == (5, 0)
        assert conn.execute("SELECT COUNT(*) FROM gaps").fetchone() == (0,)


def test_newer_format_is_kept_aside_not_downgraded(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file from a newer version (user_version 2) is neither read nor rewritten.

    Figure: the newer file is kept whole (its 10 rows), the spool runs on a new
    file on disk (not in memory), and a second open does not move anything again.
    """
    filled(db, 10)
    with connect(db) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    caplog.set_level(logging.ERROR)
    with Spool(db, clock=Clock()) as spool:
        stats = spool.stats()
        assert (stats.pending_count, stats.storage_failed, stats.corrupt_files) == (0, False, 0)
        spool.append([(1, b"x")])
    kept = db.with_name(f"{db.name}.newer-{int(NOW)}")
    with connect(kept) as conn:
        assert conn.execute("SELECT SUM(count) FROM segments").fetchone() == (10,)
    assert "written by a newer version" in caplog.text
    caplog.clear()
    with Spool(db, clock=Clock()) as spool:
        assert spool.stats().pending_count == 1
    assert "newer" not in caplog.text
    assert set(spool_files(db)) >= {db, kept}


def test_spool_files_lists_every_file_of_one_spool(tmp_path: Path) -> None:
    """Entry removal deletes these: the database, its WAL/SHM and renamed copies."""
    db = tmp_path / "a.sqlite"
    names = [
        "a.sqlite",
        "a.sqlite-wal",
        "a.sqlite-shm",
        "a.sqlite.corrupt-1",
        "a.sqlite.corrupt-1-wal",
        "a.sqlite.newer-2",
        "b.sqlite",
        "b.sqlite.corrupt-1",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert {p.name for p in spool_files(db) if p.exists()} == set(names[:6])
    assert {p.name for p in spool_files(tmp_path / "missing" / "a.sqlite")} == {
        "a.sqlite",
        "a.sqlite-wal",
        "a.sqlite-shm",
    }


def test_damaged_interior_page(db: Path) -> None:
    """An interior b-tree page of ``segments`` (it points at many leaves) overwritten.

    Figures: rows salvaged + rows lost = 60 000 exactly; what is lost is one
    run of ids (the leaves below that page), everything else comes back in order.
    """
    times = filled(db, 60_000)
    with connect(db) as conn:
        interior = [
            page
            for (page,) in conn.execute(
                "SELECT pageno FROM dbstat WHERE name = 'segments' AND pagetype = 'internal'"
                " AND path != '/' ORDER BY pageno"
            )
        ]
    assert interior
    smash(db, [interior[len(interior) // 2]])
    with Spool(db, clock=Clock()) as spool:
        stats = spool.stats()
        assert not stats.storage_failed
        kept = pending_times(spool)
        assert stats.salvaged_total + stats.salvage_lost == 60_000
        assert stats.salvage_lost > 0
        assert len(kept) == stats.salvaged_total
        missing = sorted(set(times) - set(kept))
        assert missing == list(range(missing[0], missing[-1] + 1))  # one run
        gone = set(missing)
        assert kept == [t for t in times if t not in gone]
