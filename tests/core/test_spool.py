"""Tests for the SQLite spool and its in-memory fallback.

A real disk cannot be made to fail on demand (and as root a read-only
directory does not stop writes), so disk failures are simulated: either by
monkeypatching ``spool._sqlite_connect`` to return a :class:`FlakyConnection`
(a real connection whose statements raise ``sqlite3.OperationalError`` once
armed) or by making ``Path.mkdir`` raise ``PermissionError``.
"""

from collections.abc import Sequence
import logging
from pathlib import Path
import sqlite3
import time
from typing import Any

import pytest

from custom_components.ha_ingestor.core import spool as spool_mod, spool_codec
from custom_components.ha_ingestor.core.spool import (
    MEMORY_ID_BASE,
    AppendResult,
    OverflowPolicy,
    RowIds,
    Spool,
    SpoolRow,
)
from custom_components.ha_ingestor.core.spool_memory import ROW_COST

#: What a 10-byte test row costs in the memory fallback's RAM budget.
MEM_ROW = 10 + ROW_COST


def memory_for(pending_bytes: int) -> int:
    """A memory budget whose pending share (three quarters) is ``pending_bytes``."""
    return -(-pending_bytes * 4 // 3)


class Clock:
    """Callable wall clock the tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyConnection:
    """A real sqlite3 connection that raises once ``fail_on`` matches a statement."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real
        self.fail_on: str | None = None
        self.error = sqlite3.OperationalError("disk I/O error")

    def _check(self, sql: str) -> None:
        if self.fail_on is not None and self.fail_on in sql:
            raise self.error

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        self._check(sql)
        return self.real.execute(sql, params)

    def executemany(self, sql: str, params: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self.real.executemany(sql, params)

    def close(self) -> None:
        self.real.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "ha_ingestor.db"


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> list[FlakyConnection]:
    """Every connection the spool opens, wrapped so tests can make it fail."""
    made: list[FlakyConnection] = []
    real_connect = spool_mod._sqlite_connect

    def connect(path: Path) -> Any:
        conn = FlakyConnection(real_connect(path))
        made.append(conn)
        return conn

    monkeypatch.setattr(spool_mod, "_sqlite_connect", connect)
    return made


def rows(n: int, size: int = 10, start: int = 0) -> list[tuple[int, bytes]]:
    return [(start + i, f"{start + i:0{size}d}".encode()[-size:]) for i in range(n)]


def open_spool(path: Path, clock: Clock, **kwargs: Any) -> Spool:
    spool = Spool(path, clock=clock, **kwargs)
    spool.open()
    return spool


def drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while batch := spool.peek(1000, 1 << 30):
        out.extend(row.payload for row in batch)
        spool.delete([row.id for row in batch])
    return out


# ------------------------------------------------------------------ basics


def test_round_trip_and_counters(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock) as spool:
        assert spool.append(rows(5)) == AppendResult(stored=5, dropped=0)
        assert spool.append([]) == AppendResult(0, 0)
        stats = spool.stats()
        assert (stats.pending_count, stats.pending_bytes) == (5, 50)
        assert stats.oldest_time_ns == 0
        assert stats.oldest_enqueued_at == clock.now
        assert not stats.storage_failed
        assert not stats.in_memory
        batch = spool.peek(3, 10_000)
        assert [r.time_ns for r in batch] == [0, 1, 2]
        assert batch[0] == SpoolRow(batch[0].id, 0, b"0000000000")
        assert spool.delete([r.id for r in batch]) == 3
        assert spool.delete([batch[0].id]) == 0  # already gone: ignored
        assert spool.delete([]) == 0
        stats = spool.stats()
        assert (stats.pending_count, stats.pending_bytes, stats.oldest_time_ns) == (2, 20, 3)
        assert spool.peek(0, 100) == []
        assert drain(spool) == [b"0000000003", b"0000000004"]
        stats = spool.stats()
        assert (stats.pending_count, stats.oldest_time_ns, stats.oldest_enqueued_at) == (
            0,
            None,
            None,
        )


def test_peek_limits_bytes_but_returns_at_least_one(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock) as spool:
        spool.append([(1, b"x" * 100), (2, b"y" * 10), (3, b"z" * 10)])
        assert [r.time_ns for r in spool.peek(10, 50)] == [1]  # oversized head still served
        first = spool.peek(10, 50)[0]
        spool.delete([first.id])
        assert [r.time_ns for r in spool.peek(10, 20)] == [2, 3]
        assert [r.time_ns for r in spool.peek(10, 19)] == [2]
        assert [r.time_ns for r in spool.peek(1, 1000)] == [2]


def test_persistence_across_restart(db: Path, clock: Clock) -> None:
    spool = open_spool(db, clock, max_bytes=100)
    spool.append(rows(12))  # 2 dropped
    spool.quarantine_payloads([(99, b"bad")], "parse error", "bad_data")
    last_id = spool.peek(100, 10_000)[-1].id
    spool.close()
    spool.close()  # idempotent
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0

    again = open_spool(db, clock, max_bytes=100)
    stats = again.stats()
    assert (stats.pending_count, stats.pending_bytes) == (10, 100)
    assert stats.dead_letter_count == 1
    assert stats.dropped_total == 2
    assert again.dead_letters()[0].payload == b"bad"
    drain(again)
    again.append(rows(1, start=50))
    # AUTOINCREMENT: ids are never reused, so a stale delete() cannot hit a new row.
    assert again.peek(1, 100)[0].id > last_id
    again.close()


def test_counters_verified_at_open(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock) as spool:
        spool.append(rows(3))
    conn = sqlite3.connect(db)
    # A segment of one 2-byte point written behind the spool's back.
    conn.execute(
        "INSERT INTO segments (last_id, count, nbytes, size, time_min, time_max,"
        " enqueued_at, data) VALUES (100, 1, 2, 9, 7, 7, 0, ?)",
        (spool_codec.encode([7], [b"\x01\x02"]),),
    )
    conn.commit()
    conn.close()
    with Spool(db, clock=clock) as spool:
        stats = spool.stats()
        assert (stats.pending_count, stats.pending_bytes) == (4, 32)


def test_open_is_idempotent_and_required(db: Path, clock: Clock) -> None:
    spool = Spool(db, clock=clock)
    with pytest.raises(RuntimeError, match="not open"):
        spool.append(rows(1))
    spool.open()
    spool.open()
    assert spool.append(rows(1)).stored == 1
    spool.close()
    with pytest.raises(ValueError, match="synchronous"):
        Spool(db, synchronous="OFF")  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode", "expected"), [("NORMAL", 1), ("FULL", 2)])
def test_wal_and_synchronous(db: Path, clock: Clock, mode: Any, expected: int) -> None:
    with Spool(db, clock=clock, synchronous=mode) as spool:
        assert spool._disk is not None
        conn = spool._disk.conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == expected


# ------------------------------------------------------------------ limits


def test_drop_oldest_exact_counts(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock, max_bytes=100) as spool:
        assert spool.append(rows(8)) == AppendResult(8, 0)
        assert spool.append(rows(5, start=8)) == AppendResult(5, 3)
        assert [r.time_ns for r in spool.peek(100, 10_000)] == list(range(3, 13))
        # A batch bigger than the whole spool keeps only its newest rows.
        assert spool.append(rows(15, start=20)) == AppendResult(10, 15)
        assert [r.time_ns for r in spool.peek(100, 10_000)] == list(range(25, 35))
        # A single row larger than the spool is dropped on its own.
        assert spool.append([(40, b"x" * 101), (41, b"y" * 10)]) == AppendResult(1, 2)
        stats = spool.stats()
        assert (stats.pending_count, stats.pending_bytes) == (10, 100)
        assert stats.dropped_total == 3 + 15 + 2


def test_drop_oldest_variable_sizes(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock, max_bytes=100) as spool:
        spool.append([(1, b"a" * 60), (2, b"b" * 30)])
        # Needs 25 bytes: the 60-byte row goes, the 30-byte row stays.
        assert spool.append([(3, b"c" * 35)]) == AppendResult(1, 1)
        assert spool.stats().pending_bytes == 65


def test_drop_oldest_evicts_across_scan_chunks(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock, max_bytes=30_000) as spool:
        spool.append(rows(3000))
        assert spool.append(rows(2500, start=5000)) == AppendResult(2500, 2500)
        assert spool.peek(1, 100)[0].time_ns == 2500


def test_drop_newest_exact_counts(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock, max_bytes=100, overflow=OverflowPolicy.DROP_NEWEST) as spool:
        assert spool.append(rows(8)) == AppendResult(8, 0)
        assert spool.append(rows(5, start=8)) == AppendResult(2, 3)
        assert spool.append(rows(1, start=20)) == AppendResult(0, 1)
        assert [r.time_ns for r in spool.peek(100, 10_000)] == list(range(10))
        spool.delete([spool.peek(1, 10)[0].id])
        # Stops at the first row that does not fit, keeping the order intact.
        assert spool.append([(30, b"x" * 20), (31, b"y")]) == AppendResult(0, 2)
        assert spool.stats().dropped_total == 6


def test_max_age(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock, max_age_seconds=100) as spool:
        spool.append(rows(3))
        clock.now += 60
        spool.append(rows(2, start=10))
        clock.now += 50  # the first batch is 110 s old now
        assert spool.append(rows(1, start=20)) == AppendResult(1, 3)
        assert [r.time_ns for r in spool.peek(100, 10_000)] == [10, 11, 20]
        clock.now += 101
        assert spool.enforce_limits() == 3
        assert spool.stats().pending_count == 0
        assert spool.stats().dropped_total == 6
    with Spool(db, clock=clock) as spool:
        assert spool.enforce_limits() == 0  # no max age configured


def test_max_age_across_scan_chunks(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock, max_age_seconds=10) as spool:
        spool.append(rows(2500))
        clock.now += 11
        assert spool.enforce_limits() == 2500


# ------------------------------------------------------------------ quarantine


def test_quarantine_requeue_purge(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock) as spool:
        generation = spool.append(rows(4)).generation
        batch = spool.peek(10, 10_000)
        clock.now += 5

        def ids(rows: list[SpoolRow]) -> RowIds:
            return RowIds(generation, [r.id for r in rows])

        assert spool.quarantine(ids(batch[1:3]), "field type conflict", "bad_data") == 2
        assert spool.quarantine(ids(batch[1:2]), "again", "bad_data") == 0  # no longer pending
        assert spool.quarantine(ids([]), "x", "y") == 0
        assert spool.quarantine_payloads([(77, b"raw")], "unencodable", "bad_data") == 1
        assert spool.quarantine_payloads([], "x", "y") == 0
        letters = spool.dead_letters()
        assert [(d.time_ns, d.reason, d.category, d.attempts) for d in letters] == [
            (1, "field type conflict", "bad_data", 1),
            (2, "field type conflict", "bad_data", 1),
            (77, "unencodable", "bad_data", 0),
        ]
        assert letters[0].quarantined_at == clock.now
        assert spool.dead_letters(limit=1) == letters[:1]
        stats = spool.stats()
        assert (stats.pending_count, stats.dead_letter_count, stats.dead_letter_bytes) == (
            2,
            3,
            23,
        )

        assert spool.requeue_dead_letters() == 3
        assert spool.stats().dead_letter_count == 0
        assert [r.time_ns for r in spool.peek(10, 10_000)] == [0, 3, 1, 2, 77]
        # Attempts survive the round trip.
        again = [r for r in spool.peek(10, 10_000) if r.time_ns == 1]
        spool.quarantine(ids(again), "still bad", "bad_data")
        assert spool.dead_letters()[0].attempts == 2

        spool.quarantine_payloads([(5, b"p")], "r", "c")
        assert spool.purge_dead_letters() == 2
        assert spool.dead_letters() == []
        assert spool.stats().dead_letter_count == 0


def test_requeue_never_evicts(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock, max_bytes=100) as spool:
        spool.append(rows(7))
        spool.quarantine_payloads(rows(5, start=10), "r", "c")
        assert spool.requeue_dead_letters() == 3
        assert spool.stats().pending_bytes == 100
        assert spool.stats().dead_letter_count == 2
        assert spool.stats().dropped_total == 0


def test_requeue_in_chunks(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock) as spool:
        spool.quarantine_payloads(rows(2500), "r", "c")
        assert spool.requeue_dead_letters() == 2500
        assert spool.stats().pending_count == 2500


def test_dead_letters_bounded(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock, max_dead_letter_bytes=50) as spool:
        spool.quarantine_payloads(rows(8), "r", "c")
        stats = spool.stats()
        assert (stats.dead_letter_count, stats.dead_letter_bytes) == (5, 50)
        assert stats.dead_letter_dropped == 3
        assert [d.time_ns for d in spool.dead_letters()] == [3, 4, 5, 6, 7]
    with Spool(db, clock=clock, max_dead_letter_bytes=50) as spool:
        assert spool.stats().dead_letter_dropped == 3


# ------------------------------------------------------------------ corruption


def test_corrupt_file_moved_aside(db: Path, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database" * 200)
    Path(f"{db}-wal").write_bytes(b"junk")
    with Spool(db, clock=clock) as spool:
        assert not spool.stats().storage_failed
        assert spool.append(rows(2)).stored == 2
    # Nothing was readable; the renamed file is deleted once salvaged.
    assert sorted(p.name for p in db.parent.iterdir()) == ["ha_ingestor.db"]
    assert "is damaged (file is not a database)" in caplog.text
    with Spool(db, clock=clock) as spool:
        stats = spool.stats()
        assert (stats.pending_count, stats.corrupt_files, stats.salvage_lost) == (2, 1, 0)


def test_move_aside_takes_wal_and_shm_along(db: Path, clock: Clock) -> None:
    spool = Spool(db, clock=clock)
    db.parent.mkdir(parents=True)
    for name, data in ((db, b"db"), (Path(f"{db}-wal"), b"wal"), (Path(f"{db}-shm"), b"shm")):
        name.write_bytes(data)
    target = spool._move_aside("corrupt")
    assert target.read_bytes() == b"db"
    assert Path(f"{target}-wal").read_bytes() == b"wal"
    assert Path(f"{target}-shm").read_bytes() == b"shm"
    assert sorted(p.name for p in db.parent.iterdir()) == [
        "ha_ingestor.db.corrupt-1700000000",
        "ha_ingestor.db.corrupt-1700000000-shm",
        "ha_ingestor.db.corrupt-1700000000-wal",
    ]


def test_eviction_stops_if_counters_drift(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock, max_bytes=100) as spool:
        spool.append(rows(2))
        assert spool._disk is not None
        spool._disk.nbytes += 1000  # pretend bytes exist that the table lacks
        assert spool.append(rows(1, start=5)) == AppendResult(1, 2)


def test_other_database_errors_are_not_treated_as_corruption(
    db: Path, clock: Clock, flaky: list[FlakyConnection], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_connect = spool_mod._sqlite_connect

    def connect(path: Path) -> Any:
        conn: Any = real_connect(path)
        conn.fail_on = "journal_mode"
        conn.error = sqlite3.DatabaseError("locked out")
        return conn

    monkeypatch.setattr(spool_mod, "_sqlite_connect", connect)
    with Spool(db, clock=clock) as spool:
        assert spool.stats().in_memory
        assert spool.last_storage_error == "DatabaseError: locked out"
    assert not [p for p in db.parent.iterdir() if "corrupt" in p.name]


# ------------------------------------------------------------------ disk failure


def test_unwritable_directory_falls_back_to_memory(
    db: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def deny(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", deny)
    caplog.set_level(logging.ERROR)
    spool = open_spool(db, clock, max_bytes=50, max_memory_bytes=memory_for(5 * MEM_ROW))
    assert spool.storage_failed
    assert spool.append(rows(7)) == AppendResult(5, 2)  # memory is bounded too
    stats = spool.stats()
    assert stats.in_memory
    assert stats.storage_failed
    assert stats.last_storage_error is not None
    assert "Permission denied" in stats.last_storage_error
    assert (stats.pending_count, stats.pending_bytes, stats.dropped_total) == (5, 5 * MEM_ROW, 2)
    assert [r.time_ns for r in spool.peek(3, 1000)] == [2, 3, 4]
    assert all(r.id > MEMORY_ID_BASE for r in spool.peek(3, 1000))
    assert len([r for r in caplog.records if "storage failed" in r.getMessage()]) == 1
    assert not spool.try_recover()  # still denied
    assert len([r for r in caplog.records if "storage failed" in r.getMessage()]) == 1

    monkeypatch.undo()
    assert spool.try_recover()
    assert spool.try_recover()  # already on disk
    assert not spool.stats().storage_failed
    assert drain(spool) == [p for _, p in rows(7)][2:]
    spool.close()
    with Spool(db, clock=clock) as spool:
        assert spool.stats().dropped_total == 2


def test_failure_mid_operation_keeps_data(
    db: Path, clock: Clock, flaky: list[FlakyConnection], caplog: pytest.LogCaptureFixture
) -> None:
    spool = open_spool(db, clock, recover_after=None)
    spool.append(rows(3))
    flaky[0].fail_on = "INSERT INTO segments"
    assert spool.append(rows(2, start=10)) == AppendResult(2, 0)
    stats = spool.stats()
    assert stats.storage_failed
    assert stats.stranded_count == 3  # still on the disk, served after recovery
    assert (stats.pending_count, stats.pending_bytes) == (2, 2 * MEM_ROW)
    assert stats.last_storage_error == "OperationalError: disk I/O error"
    assert "storage failed during append" in caplog.text
    assert [r.time_ns for r in spool.peek(10, 1000)] == [10, 11]
    spool.append(rows(1, start=20))

    # The next connection works: memory rows go back behind the disk rows.
    assert spool.try_recover()
    stats = spool.stats()
    assert (stats.pending_count, stats.stranded_count, stats.storage_failed) == (6, 0, False)
    assert [r.time_ns for r in spool.peek(10, 1000)] == [0, 1, 2, 10, 11, 20]
    spool.close()


def test_counters_restored_when_a_transaction_fails_half_way(
    db: Path, clock: Clock, flaky: list[FlakyConnection]
) -> None:
    spool = open_spool(db, clock, max_bytes=100, recover_after=None)
    spool.append(rows(10))
    # Eviction deletes rows, then persisting the drop counter fails: all rolled back.
    flaky[0].fail_on = "INSERT INTO meta"
    assert spool.append(rows(3, start=10)) == AppendResult(3, 0)
    stats = spool.stats()
    assert (stats.pending_count, stats.pending_bytes, stats.dropped_total) == (3, 3 * MEM_ROW, 0)
    assert stats.stranded_count == 10
    assert spool.try_recover()
    stats = spool.stats()
    # Recovery applies the size limit to disk + memory rows: 3 old rows go.
    assert (stats.pending_count, stats.pending_bytes, stats.dropped_total) == (10, 100, 3)
    spool.close()


def test_commit_failure_falls_back(db: Path, clock: Clock, flaky: list[FlakyConnection]) -> None:
    spool = open_spool(db, clock, recover_after=None)
    flaky[0].fail_on = "COMMIT"
    assert spool.quarantine_payloads([(1, b"x")], "r", "c") == 1
    assert spool.stats().dead_letter_count == 1
    assert spool.dead_letters()[0].payload == b"x"
    assert spool.try_recover()
    assert [d.payload for d in spool.dead_letters()] == [b"x"]
    spool.close()


def test_memory_mode_full_api(db: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "full")))
    spool = open_spool(
        db,
        clock,
        max_age_seconds=50,
        max_memory_bytes=memory_for(10 * MEM_ROW),
        max_dead_letter_bytes=2 * MEM_ROW,
    )
    generation = spool.append(rows(12)).generation
    batch = spool.peek(5, 1000)
    assert spool.peek(5, 25) == batch[:2]
    assert spool.delete([batch[0].id, 12345]) == 1
    assert spool.quarantine(RowIds(generation, [r.id for r in batch[1:4]]), "r", "bad_data") == 3
    assert spool.stats().dead_letter_count == 2  # trimmed to two rows' worth
    assert spool.stats().dead_letter_dropped == 1
    assert [d.attempts for d in spool.dead_letters()] == [1, 1]
    assert spool.requeue_dead_letters() == 2
    spool.quarantine_payloads([(1, b"x")], "r", "c")
    assert spool.purge_dead_letters() == 1
    clock.now += 51
    assert spool.enforce_limits() == 8
    assert spool.stats().oldest_time_ns is None
    spool.close()


def test_memory_mode_large_backlog(db: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(OSError("ro")))
    spool = open_spool(
        db, clock, max_bytes=15_000, max_age_seconds=10, max_memory_bytes=memory_for(1500 * MEM_ROW)
    )
    spool.append(rows(1000))
    clock.now += 5
    spool.append(rows(1000, start=1000))  # evicts 500 in one head scan
    assert spool.stats().pending_count == 1500
    clock.now += 6
    assert spool.enforce_limits() == 500  # the scan stops at the first young row
    assert spool.peek(1, 100)[0].time_ns == 1000
    spool.quarantine_payloads(rows(2), "r", "c")
    assert spool.stats().dead_letter_count == 2
    monkeypatch.undo()
    spool.close()  # moved to disk on close
    with Spool(db, clock=clock) as again:
        stats = again.stats()
        assert (stats.pending_count, stats.dead_letter_count, stats.dropped_total) == (
            1000,
            2,
            1000,
        )


def test_oversized_dead_letter_dropped(db: Path, clock: Clock) -> None:
    with Spool(db, clock=clock, max_dead_letter_bytes=5) as spool:
        spool.quarantine_payloads(rows(1), "r", "c")
        assert spool.stats().dead_letter_count == 0
        assert spool.stats().dead_letter_dropped == 1


def test_automatic_recovery(db: Path, clock: Clock, flaky: list[FlakyConnection]) -> None:
    spool = open_spool(db, clock, recover_after=60)
    flaky[0].fail_on = "INSERT"
    spool.append(rows(1))
    assert spool.stats().storage_failed
    clock.now += 30
    spool.append(rows(1, start=1))
    assert spool.stats().storage_failed
    clock.now += 31
    assert not spool.stats().storage_failed  # retried on this call
    assert spool.stats().pending_count == 2
    spool.close()


def test_recovery_copy_failure_stays_in_memory(
    db: Path, clock: Clock, flaky: list[FlakyConnection], caplog: pytest.LogCaptureFixture
) -> None:
    spool = open_spool(db, clock, recover_after=None)
    flaky[0].fail_on = "INSERT"
    spool.append(rows(2))

    def failing_connect(path: Path) -> Any:
        conn = FlakyConnection(sqlite3.connect(path, isolation_level=None))
        conn.fail_on = "INSERT INTO segments"
        return conn

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(spool_mod, "_sqlite_connect", failing_connect)
        caplog.set_level(logging.DEBUG)
        assert not spool.try_recover()
    assert "moving rows back to disk failed" in caplog.text
    assert spool.stats().storage_failed
    assert spool.stats().pending_count == 2
    spool.close()  # recovers through the (working) flaky fixture connection
    with Spool(db, clock=clock) as spool:
        assert spool.stats().pending_count == 2


def test_close_in_memory_mode_loses_rows_loudly(
    db: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(OSError("ro")))
    spool = open_spool(db, clock)
    spool.append(rows(2))
    spool.close()
    assert "2 pending and 0 quarantined rows kept in memory are lost" in caplog.text
    empty = open_spool(db, clock)
    empty.close()  # nothing to lose, no warning needed


def test_close_errors_are_logged_not_raised(
    db: Path, clock: Clock, flaky: list[FlakyConnection], caplog: pytest.LogCaptureFixture
) -> None:
    spool = open_spool(db, clock)
    flaky[0].fail_on = "wal_checkpoint"
    spool.close()
    assert "closing the database failed" in caplog.text


def test_corruption_found_on_recovery_counts_stranded_rows(
    db: Path, clock: Clock, flaky: list[FlakyConnection]
) -> None:
    spool = open_spool(db, clock, recover_after=None)
    spool.append(rows(4))
    flaky[0].fail_on = "INSERT"
    spool.append(rows(1, start=10))
    assert spool.stats().stranded_count == 4
    db.write_bytes(b"garbage" * 1000)  # the file went bad meanwhile
    for side in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        side.unlink(missing_ok=True)
    assert spool.try_recover()
    stats = spool.stats()
    assert (stats.pending_count, stats.dropped_total, stats.stranded_count) == (1, 4, 0)
    spool.close()


def test_failover_close_error_on_broken_connection(
    db: Path, clock: Clock, flaky: list[FlakyConnection]
) -> None:
    spool = open_spool(db, clock, recover_after=None)
    flaky[0].fail_on = "SELECT"

    def broken_close() -> None:
        raise sqlite3.ProgrammingError("cannot close")

    flaky[0].close = broken_close  # type: ignore[method-assign]
    assert spool.peek(10, 100) == []
    assert spool.stats().storage_failed
    spool.close()
    flaky[0].real.close()


def test_open_failure_after_connect_closes_connection(
    db: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []

    class Failing(FlakyConnection):
        def close(self) -> None:
            closed.append(True)
            super().close()

    def connect(path: Path) -> Any:
        conn = Failing(sqlite3.connect(path, isolation_level=None))
        conn.fail_on = "CREATE TABLE"
        return conn

    monkeypatch.setattr(spool_mod, "_sqlite_connect", connect)
    spool = open_spool(db, clock)
    assert spool.storage_failed
    assert closed == [True]
    spool.close()


# ------------------------------------------------------------------ performance


def test_bulk_append_peek_delete_is_fast(db: Path, clock: Clock) -> None:
    payload = b"sensor.temp,domain=sensor,entity_id=temp value=21.5 1700000000000000000"
    with Spool(db, clock=clock) as spool:
        started = time.perf_counter()
        result = spool.append([(i, payload) for i in range(100_000)])
        appended = time.perf_counter() - started
        assert result == AppendResult(100_000, 0)
        started = time.perf_counter()
        total = 0
        while batch := spool.peek(5000, 5 * 1024 * 1024):
            total += spool.delete([row.id for row in batch])
        drained = time.perf_counter() - started
        assert total == 100_000
        assert spool.stats().pending_count == 0
    # Generous bounds for slow CI; typical: ~0.2 s and ~0.5 s.
    assert appended < 5, appended
    assert drained < 10, drained
