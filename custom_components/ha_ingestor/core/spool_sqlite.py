"""The SQLite (WAL) store of the spool: pending rows, dead letters and counters."""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
import sqlite3
from typing import Any, Final, Self

from .spool_types import (
    PAYLOAD,
    SERIALS,
    STORAGE_ERRORS,
    Columns,
    DeadLetter,
    NewDead,
    NewRow,
    Taken,
    within_bytes,
)

_CHUNK: Final = 500  # ids per "IN (...)" statement, far below SQLite's limit
# Rows per multi-row INSERT (5 parameters each). sqlite3 releases the GIL around
# every statement step and a busy event loop keeps it for a switch interval
# (5 ms) before handing it back, so a statement per row made a 5000-row flush
# take seconds while Home Assistant was busy; a few large statements do not.
# SQLite before 3.32 allows only 999 bound parameters per statement (later 32 766:
# 6000 rows use 30 000).
_INSERT_ROWS: Final = 6000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 199
_INSERT_PREFIX: Final = (
    "INSERT INTO pending (time_ns, payload, size, enqueued_at, attempts) VALUES "
)
# Columns of a (time_ns, payload) row, or of a NewRow (time_ns, payload, enqueued_at, attempts).
_TIME: Final = itemgetter(0)
_ENQUEUED: Final = itemgetter(2)
_ATTEMPTS: Final = itemgetter(3)
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS pending (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        payload BLOB NOT NULL,
        size INTEGER NOT NULL,
        enqueued_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS dead_letter (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns INTEGER NOT NULL,
        payload BLOB NOT NULL,
        size INTEGER NOT NULL,
        reason TEXT NOT NULL,
        category TEXT NOT NULL,
        quarantined_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    # Time ranges (ns, inclusive) of rows the limits dropped, for a backfill.
    """CREATE TABLE IF NOT EXISTS gaps (
        id INTEGER PRIMARY KEY,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL
    )""",
)
#: ``PRAGMA user_version`` of the format this code writes. 0 is the first format
#: (no version, no gaps table, no row counts in meta); 1 adds both.
SCHEMA_VERSION: Final = 1
#: Row counts kept in ``meta`` in the transaction that changes them, so a
#: salvage of a damaged file knows exactly how many rows it could not read.
META_PENDING: Final = "pending_count"
META_DEAD: Final = "dead_letter_count"


class NewerSchemaError(Exception):
    """The database was written by a newer format than this code reads."""

    def __init__(self, version: int) -> None:
        """Remember the version found."""
        super().__init__(f"spool format {version} is newer than {SCHEMA_VERSION}")
        self.version = version


# A batch in two statement steps instead of one per row (see _INSERT_ROWS for why
# steps matter): ids, timestamps and payload lengths of the head as text, then the
# payloads of the rows within the byte limit concatenated into one blob. Each
# statement also returns its ids, which are checked to come in queue order.
_PEEK_HEAD: Final = (
    "SELECT group_concat(id), group_concat(time_ns), group_concat(length(payload))"
    " FROM (SELECT id, time_ns, payload FROM pending WHERE id > ? ORDER BY id LIMIT ?)"
)
_PEEK_PAYLOADS: Final = (
    "SELECT group_concat(id), CAST(group_concat(payload, '') AS BLOB)"
    " FROM (SELECT id, payload FROM pending WHERE id BETWEEN ? AND ? ORDER BY id)"
)

_payload_of: Final = itemgetter(2)


def is_corrupt(exc: BaseException) -> bool:
    """Whether an error means the file is damaged (not merely unwritable)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _columns(
    times: list[int], payloads: list[bytes], enqueued: list[float], attempts: list[int]
) -> tuple[list[Any], int]:
    """Flat INSERT parameters from columns (slice assignment, no tuple per row); bytes."""
    sizes = list(map(len, payloads))
    params: list[Any] = [None] * (5 * len(payloads))
    params[0::5] = times
    params[1::5] = payloads
    params[2::5] = sizes
    params[3::5] = enqueued
    params[4::5] = attempts
    return params, sum(sizes)


def _chunks[T](items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _schema_version(conn: sqlite3.Connection) -> int:
    """Return the file's format version; raise :class:`NewerSchemaError` if it is newer."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise NewerSchemaError(version)
    return version


class SqliteStore:
    """Pending rows and dead letters in one SQLite database (WAL)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        """Wrap an open connection; counters are filled by :meth:`open`."""
        self.conn = conn
        self.count = self.nbytes = self.dl_count = self.dl_bytes = 0
        self.serial = next(SERIALS)
        #: Limits count payload bytes on disk (SQLite's overhead is small).
        self.row_cost = 0
        self._insert_sql: dict[int, str] = {}
        #: Off only in tests (to cover the row-by-row path it falls back to).
        self.aggregate_peek = True

    @classmethod
    def open(
        cls, path: Path, synchronous: str, connect: Callable[[Path], sqlite3.Connection]
    ) -> Self:
        """Open or create the database with ``connect`` and count its rows once."""
        conn = connect(path)
        try:
            store = cls(conn)
            # Checked before anything is changed: a newer format is left untouched.
            version = _schema_version(conn)
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            conn.execute(f"PRAGMA synchronous={synchronous}")
            # The only full scans: counters are verified here, then kept in memory.
            # They also read every page of both tables, so damage is found now.
            with store.transaction():
                for statement in _SCHEMA:
                    conn.execute(statement)
                store.count, store.nbytes = conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM pending"
                ).fetchone()
                store.dl_count, store.dl_bytes = conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM dead_letter"
                ).fetchone()
                if version < SCHEMA_VERSION:
                    # 0 -> 1: the gaps table (created above) and the row counts.
                    store.write_counts()
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            with suppress(*STORAGE_ERRORS):
                conn.close()
            raise
        return store

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT; on error roll back and restore the counters.

        Changed row counts are written to ``meta`` in the same transaction.
        """
        saved = (self.count, self.nbytes, self.dl_count, self.dl_bytes)
        self.conn.execute("BEGIN")
        try:
            yield
            if (self.count, self.dl_count) != (saved[0], saved[2]):
                self.write_counts()
            self.conn.execute("COMMIT")
        except BaseException:
            self.count, self.nbytes, self.dl_count, self.dl_bytes = saved
            with suppress(*STORAGE_ERRORS):
                self.conn.execute("ROLLBACK")
            raise

    def write_counts(self) -> None:
        """Persist the row counts (inside a transaction)."""
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?), (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (META_PENDING, self.count, META_DEAD, self.dl_count),
        )

    def insert(self, rows: Sequence[NewRow]) -> None:
        """Append rows to pending, a few thousand per statement (ids keep row order)."""
        self._insert_chunks(
            rows,
            lambda chunk: _columns(
                list(map(_TIME, chunk)),
                list(map(PAYLOAD, chunk)),
                list(map(_ENQUEUED, chunk)),
                list(map(_ATTEMPTS, chunk)),
            ),
        )

    def insert_new(self, rows: Sequence[tuple[int, bytes]], enqueued_at: float) -> int:
        """:meth:`insert` for new rows, without first copying them into ``NewRow`` tuples."""
        return self._insert_chunks(
            rows,
            lambda chunk: _columns(
                list(map(_TIME, chunk)),
                list(map(bytes, map(PAYLOAD, chunk))),
                [enqueued_at] * len(chunk),
                [0] * len(chunk),
            ),
        )

    def ids_of_last(self, count: int, last_id: int) -> bool:
        """Check with one indexed range count.

        ``count`` distinct ids above ``last_id - count``, the newest being
        ``last_id``, can only be that consecutive run.
        """
        found, newest = self.conn.execute(
            "SELECT COUNT(*), MAX(id) FROM pending WHERE id > ?", (last_id - count,)
        ).fetchone()
        return bool(found == count and newest == last_id)

    def _insert_chunks[Row](
        self, rows: Sequence[Row], values: Callable[[Sequence[Row]], tuple[list[Any], int]]
    ) -> int:
        """Insert each chunk of ``_INSERT_ROWS`` rows with its ``values(chunk)``.

        ``values`` gives the statement's flat parameter list and the payload
        bytes. Returns the id of the last row inserted (0 when none).
        """
        last_id = 0
        for start in range(0, len(rows), _INSERT_ROWS):
            chunk = rows[start : start + _INSERT_ROWS]
            params, nbytes = values(chunk)
            cursor = self.conn.execute(self._insert_statement(len(chunk)), params)
            last_id = cursor.lastrowid or 0
            self.nbytes += nbytes
        self.count += len(rows)
        return last_id

    def _insert_statement(self, rows: int) -> str:
        """``INSERT ... VALUES (?, ...), ...`` for ``rows`` rows (cached per size)."""
        sql = self._insert_sql.get(rows)
        if sql is None:
            if len(self._insert_sql) > 8:
                self._insert_sql.clear()  # odd tail sizes must not pile up
            sql = self._insert_sql[rows] = _INSERT_PREFIX + ",".join(["(?,?,?,?,?)"] * rows)
        return sql

    def head(self, limit: int) -> list[tuple[int, int, float]]:
        """Oldest pending ``(id, size, enqueued_at)``."""
        return self.conn.execute(
            "SELECT id, size, enqueued_at FROM pending ORDER BY id LIMIT ?", (limit,)
        ).fetchall()

    def delete_through(self, last_id: int, count: int, nbytes: int) -> None:
        """Delete pending rows with id <= last_id."""
        self.conn.execute("DELETE FROM pending WHERE id <= ?", (last_id,))
        self.count -= count
        self.nbytes -= nbytes

    def peek(self, max_points: int, max_bytes: int, after: int) -> Columns:
        """Oldest pending rows with id > ``after`` within the limits (at least one)."""
        if self.aggregate_peek:
            columns = self._peek_aggregated(max_points, max_bytes, after)
            if columns is not None:
                return columns
        fetched: list[tuple[int, int, bytes]] = self.conn.execute(
            "SELECT id, time_ns, payload FROM pending WHERE id > ? ORDER BY id LIMIT ?",
            (after, max_points),
        ).fetchall()
        count = within_bytes(map(len, map(_payload_of, fetched)), max_bytes)
        return (
            [row[0] for row in fetched[:count]],
            [row[1] for row in fetched[:count]],
            [row[2] for row in fetched[:count]],
        )

    def _peek_aggregated(self, max_points: int, max_bytes: int, after: int) -> Columns | None:
        """:meth:`peek` in two statement steps; None if SQLite did not keep queue order."""
        ids_text, times_text, sizes_text = self.conn.execute(
            _PEEK_HEAD, (after, max_points)
        ).fetchone()
        if ids_text is None:
            return [], [], []
        ids = list(map(int, ids_text.split(",")))
        if ids != sorted(ids):
            return None
        sizes = list(map(int, sizes_text.split(",")))
        count = within_bytes(sizes, max_bytes)
        ends = list(accumulate(sizes[:count]))
        del ids[count:]
        got_ids, blob = self.conn.execute(_PEEK_PAYLOADS, (ids[0], ids[-1])).fetchone()
        if got_ids is None or list(map(int, got_ids.split(","))) != ids or len(blob) != ends[-1]:
            return None
        payloads = list(map(blob.__getitem__, map(slice, [0, *ends[:-1]], ends)))
        times = list(map(int, times_text.split(",", count)[:count]))
        return ids, times, payloads

    def remove(self, ids: Sequence[int]) -> int:
        """Delete pending rows by id without reading their payloads back.

        A delivered batch is almost always a run of consecutive ids: one range
        delete then replaces hundreds of bound parameters. Counting first and
        deleting without RETURNING keeps it to two statement steps (see
        ``_INSERT_ROWS`` for why steps matter), not one per row.
        """
        ordered = sorted(set(ids))
        if ordered[-1] - ordered[0] + 1 == len(ordered):
            where = "id BETWEEN ? AND ?"
            params_list: list[tuple[int, ...]] = [(ordered[0], ordered[-1])]
        else:
            where = ""
            params_list = [tuple(chunk) for chunk in _chunks(ordered)]
        count = nbytes = 0
        for params in params_list:
            clause = where or f"id IN ({','.join('?' * len(params))})"
            found, size = self.conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM pending WHERE {clause}",  # noqa: S608 - only "?" marks
                params,
            ).fetchone()
            if found:
                self.conn.execute(f"DELETE FROM pending WHERE {clause}", params)  # noqa: S608 - only "?" marks
                count += found
                nbytes += size
        self.count -= count
        self.nbytes -= nbytes
        return count

    def take(self, ids: Sequence[int]) -> list[Taken]:
        """Delete pending rows by id and return them."""
        taken: list[tuple[int, int, bytes, int, int]] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            taken.extend(
                self.conn.execute(
                    f"DELETE FROM pending WHERE id IN ({marks})"  # noqa: S608 - only "?" marks
                    " RETURNING id, time_ns, payload, attempts, size",
                    tuple(chunk),
                ).fetchall()
            )
        taken.sort()
        self.count -= len(taken)
        self.nbytes -= sum(row[4] for row in taken)
        return [(row_id, t, bytes(p), n) for row_id, t, p, n, _ in taken]

    def oldest(self) -> tuple[int, float] | None:
        """``(time_ns, enqueued_at)`` of the oldest pending row."""
        row: tuple[int, float] | None = self.conn.execute(
            "SELECT time_ns, enqueued_at FROM pending ORDER BY id LIMIT 1"
        ).fetchone()
        return row

    def insert_dead(self, rows: Sequence[NewDead]) -> None:
        """Append dead letters."""
        self.conn.executemany(
            "INSERT INTO dead_letter (time_ns, payload, size, reason, category,"
            " quarantined_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(t, p, len(p), r, c, at, n) for t, p, r, c, at, n in rows],
        )
        self.dl_count += len(rows)
        self.dl_bytes += sum(len(row[1]) for row in rows)

    def dead_head(self, limit: int) -> list[DeadLetter]:
        """Oldest dead letters."""
        return [
            DeadLetter(row_id, t, bytes(p), r, c, at, n)
            for row_id, t, p, r, c, at, n in self.conn.execute(
                "SELECT id, time_ns, payload, reason, category, quarantined_at, attempts"
                " FROM dead_letter ORDER BY id LIMIT ?",
                (limit,),
            )
        ]

    def delete_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Delete the given dead letters."""
        self.conn.executemany(
            "DELETE FROM dead_letter WHERE id = ?", [(letter.id,) for letter in letters]
        )
        self.dl_count -= len(letters)
        self.dl_bytes -= sum(len(letter.payload) for letter in letters)

    def purge_dead(self) -> int:
        """Delete every dead letter."""
        self.conn.execute("DELETE FROM dead_letter")
        purged, self.dl_count, self.dl_bytes = self.dl_count, 0, 0
        return purged

    def get_meta(self, key: str) -> int:
        """Return a persisted counter (0 when unset)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def read_gaps(self) -> list[tuple[int, int]]:
        """Return the persisted gaps."""
        return [
            (int(start), int(end))
            for start, end in self.conn.execute("SELECT start_ns, end_ns FROM gaps ORDER BY id")
        ]

    def write_gaps(self, gaps: Sequence[tuple[int, int]]) -> None:
        """Replace the persisted gaps (at most a hundred rows, only when rows were dropped)."""
        self.conn.execute("DELETE FROM gaps")
        if gaps:
            self.conn.executemany("INSERT INTO gaps (start_ns, end_ns) VALUES (?, ?)", gaps)

    def set_meta(self, key: str, value: int) -> None:
        """Persist a counter."""
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
