"""Durable spool of encoded points: SQLite (WAL) with an in-memory fallback.

One row per point, already encoded for the destination, oldest first. Rows
leave ``pending`` only when the destination accepted them (:meth:`Spool.delete`)
or when they are quarantined into ``dead_letter`` as poison.

The API is synchronous and meant to be called from one executor thread at a
time; a lock still serialises calls so two executor jobs cannot interleave.

Storage trouble (``sqlite3.Error`` / ``OSError``: read-only or full disk,
corrupt file, vanished directory) never reaches the caller: the spool logs
once, switches to an in-memory store with the same API and limits, reports
``storage_failed`` in :meth:`Spool.stats`, and moves the memory rows back to
disk on :meth:`Spool.try_recover` (also attempted automatically every
``recover_after`` seconds). Rows left on a failed disk are reported as
``stranded_count`` and delivered again after recovery. A corrupt database file
is renamed ``<name>.corrupt-<timestamp>`` and recreated.

Limits count payload bytes (SQLite's own overhead, roughly 10-20 % on top, is
not included). ``max_age_seconds`` applies to the time a row was enqueued and
is enforced in queue order.
"""

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
import itertools
from itertools import accumulate, islice
import logging
from operator import itemgetter
from pathlib import Path
import sqlite3
import threading
import time
from types import TracebackType
from typing import Any, Final, Literal, NamedTuple, Protocol, Self

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEAD_LETTER_BYTES",
    "DEFAULT_RECOVER_AFTER",
    "MEMORY_ID_BASE",
    "AppendResult",
    "Batch",
    "DeadLetter",
    "OverflowPolicy",
    "RowIds",
    "Rows",
    "Spool",
    "SpoolRow",
    "SpoolStats",
    "within_bytes",
]

_LOGGER = logging.getLogger(__name__)

MiB: Final = 1024 * 1024
DEFAULT_MAX_BYTES: Final = 512 * MiB
DEFAULT_MAX_DEAD_LETTER_BYTES: Final = 64 * MiB
DEFAULT_RECOVER_AFTER: Final = 300.0
# Memory-mode ids live far above any disk id, so a delete() for ids peeked in
# the other mode can never hit an unrelated row (it is a harmless no-op).
MEMORY_ID_BASE: Final = 1 << 62

_STORAGE_ERRORS: Final = (sqlite3.Error, OSError)
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
# Columns of a (time_ns, payload) row, or of a _NewRow (time_ns, payload, enqueued_at, attempts).
_TIME: Final = itemgetter(0)
_PAYLOAD: Final = itemgetter(1)
_ENQUEUED: Final = itemgetter(2)
_ATTEMPTS: Final = itemgetter(3)
_SCAN: Final = 1000  # rows per head scan when evicting
_META_DROPPED: Final = "dropped_total"
_META_DEAD_DROPPED: Final = "dead_letter_dropped"
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
)


class OverflowPolicy(StrEnum):
    """What to give up when the spool is full."""

    DROP_OLDEST = "drop_oldest"  # keep the most recent data (default)
    DROP_NEWEST = "drop_newest"  # keep the backlog, refuse new rows


class SpoolRow(NamedTuple):
    """One pending point: its id (for delete/quarantine), timestamp and payload.

    A named tuple: the uploader reads thousands per batch, and a tuple is built
    straight from the fetched row (see ``_spool_row``).
    """

    id: int
    time_ns: int
    payload: bytes


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

# SpoolRow._make without its Python frame: a C call per fetched row.
_spool_row: Final = partial(tuple.__new__, SpoolRow)
# Store serial numbers (Batch.generation): never reused within a process.
_SERIALS: Final = itertools.count(1)
_payload_of: Final = itemgetter(2)


@dataclass(frozen=True, slots=True)
class Rows:
    """Pending rows as two columns, ids and payloads: no object per row.

    What the uploader sends. Thousands of small objects per batch would only
    feed Home Assistant's garbage collector. ``ids`` is a ``range`` for rows
    just appended (their ids are consecutive).
    """

    ids: Sequence[int] = ()
    payloads: Sequence[bytes] = ()

    def __len__(self) -> int:
        """Return the number of rows."""
        return len(self.payloads)

    def __getitem__(self, index: slice) -> Self:
        """Return the rows in ``index`` (a slice), still as columns."""
        return type(self)(self.ids[index], self.payloads[index])


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Rows stored by :meth:`Spool.append` and rows dropped to honour the limits.

    ``oldest_before``: ``time_ns`` of the oldest pending row before the append,
    read (in the same transaction) only when the append could drop rows.
    """

    stored: int
    dropped: int
    oldest_before: int | None = field(default=None, compare=False)
    #: The stored rows with their ids, when asked for and all new rows were
    #: stored (the uploader then sends them without reading them back).
    rows: Rows = field(default_factory=Rows, compare=False)
    #: :attr:`Batch.generation` of the store the rows went to.
    generation: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class RowIds:
    """Row ids with the generation of the store they were read from.

    Ids mean nothing in another store (a memory fallback, a database
    recreated after corruption), so the spool applies them only while that
    store is still the active one.
    """

    generation: int
    ids: list[int]


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows read by :meth:`Spool.advance` and the store they came from.

    ``generation`` changes whenever the spool switches stores (open, memory
    fallback, recovery): ids are comparable only within one generation.
    """

    rows: Rows
    generation: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A quarantined point and why it was quarantined.

    ``attempts`` counts how often the row was quarantined after being sent
    (0 for records rejected before they reached ``pending``).
    """

    id: int
    time_ns: int
    payload: bytes
    reason: str
    category: str
    quarantined_at: float
    attempts: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """Snapshot of the spool for health and diagnostics.

    ``pending_*`` and ``oldest_*`` describe the rows :meth:`Spool.peek` can
    serve; ``stranded_count`` rows sit on a failed disk until recovery.
    ``dropped_total`` (persisted) counts rows dropped by the size/age limits.
    """

    pending_count: int
    pending_bytes: int
    oldest_time_ns: int | None
    oldest_enqueued_at: float | None
    dead_letter_count: int
    dropped_total: int
    storage_failed: bool
    in_memory: bool
    last_storage_error: str | None = None
    stranded_count: int = 0
    dead_letter_bytes: int = 0
    dead_letter_dropped: int = 0


# One row waiting to be admitted: (time_ns, payload, enqueued_at, attempts).
type _NewRow = tuple[int, bytes, float, int]
# A dead letter waiting to be stored: (time_ns, payload, reason, category, at, attempts).
type _NewDead = tuple[int, bytes, str, str, float, int]
# Pending rows as columns: (ids, times_ns, payloads).
type _Columns = tuple[list[int], list[int], list[bytes]]
# A row taken out of pending: (id, time_ns, payload, attempts).
type _Taken = tuple[int, int, bytes, int]


class _Store(Protocol):
    """Storage operations shared by the SQLite and the memory store.

    Counters (``count``/``nbytes`` for pending, ``dl_count``/``dl_bytes`` for
    dead letters) are kept in memory and updated by every operation.
    """

    count: int
    nbytes: int
    dl_count: int
    dl_bytes: int
    #: Unique per store object (see :attr:`Batch.generation`).
    serial: int

    def transaction(self) -> AbstractContextManager[None]:
        """Run the enclosed operations atomically."""

    def insert(self, rows: Sequence[_NewRow]) -> None:
        """Append rows to pending."""

    def insert_new(self, rows: Sequence[tuple[int, bytes]], enqueued_at: float) -> int:
        """Append new ``(time_ns, payload)`` rows (no earlier attempts); return the last id."""

    def ids_of_last(self, count: int, last_id: int) -> bool:
        """Whether the newest ``count`` pending rows have the ids up to ``last_id``."""

    def head(self, limit: int) -> list[tuple[int, int, float]]:
        """Oldest pending ``(id, size, enqueued_at)``."""

    def delete_through(self, last_id: int, count: int, nbytes: int) -> None:
        """Delete pending rows with id <= last_id (count/bytes known by the caller)."""

    def peek(self, max_points: int, max_bytes: int, after: int) -> _Columns:
        """Oldest pending rows with id > ``after`` within the limits (at least one)."""

    def take(self, ids: Sequence[int]) -> list[_Taken]:
        """Delete pending rows by id and return them (oldest first)."""

    def remove(self, ids: Sequence[int]) -> int:
        """Delete pending rows by id; return how many existed."""

    def oldest(self) -> tuple[int, float] | None:
        """``(time_ns, enqueued_at)`` of the oldest pending row."""

    def insert_dead(self, rows: Sequence[_NewDead]) -> None:
        """Append dead letters."""

    def dead_head(self, limit: int) -> list[DeadLetter]:
        """Oldest dead letters."""

    def delete_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Delete the given dead letters."""

    def purge_dead(self) -> int:
        """Delete every dead letter; return how many."""

    def set_meta(self, key: str, value: int) -> None:
        """Persist a counter."""


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    """Open the database (module-level so tests can inject a failing one)."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)


def _is_corrupt(exc: BaseException) -> bool:
    """Whether an error means the file is damaged (not merely unwritable)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def within_bytes(sizes: Iterable[int], max_bytes: int) -> int:
    """How many leading items fit in ``max_bytes`` together; at least one, if there is one.

    At least one, so that a point larger than a whole batch cannot block the queue.
    """
    ends = list(accumulate(sizes))
    return max(1, bisect_right(ends, max_bytes)) if ends else 0


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


def _applies(ids: RowIds | None, store: _Store) -> bool:
    """Whether ``ids`` name rows of ``store`` (ids of another store mean nothing)."""
    return ids is not None and bool(ids.ids) and ids.generation == store.serial


def _chunks[T](items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class _SqliteStore:
    """Pending rows and dead letters in one SQLite database (WAL)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.count = self.nbytes = self.dl_count = self.dl_bytes = 0
        self.serial = next(_SERIALS)
        self._insert_sql: dict[int, str] = {}
        #: Off only in tests (to cover the row-by-row path it falls back to).
        self.aggregate_peek = True

    @classmethod
    def open(cls, path: Path, synchronous: str) -> Self:
        """Open or create the database and count its rows once."""
        conn = _sqlite_connect(path)
        try:
            store = cls(conn)
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            conn.execute(f"PRAGMA synchronous={synchronous}")
            for statement in _SCHEMA:
                conn.execute(statement)
            # The only full scans: counters are verified here, then kept in memory.
            store.count, store.nbytes = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM pending"
            ).fetchone()
            store.dl_count, store.dl_bytes = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM dead_letter"
            ).fetchone()
        except BaseException:
            with suppress(*_STORAGE_ERRORS):
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
        """BEGIN ... COMMIT; on error roll back and restore the counters."""
        saved = (self.count, self.nbytes, self.dl_count, self.dl_bytes)
        self.conn.execute("BEGIN")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            self.count, self.nbytes, self.dl_count, self.dl_bytes = saved
            with suppress(*_STORAGE_ERRORS):
                self.conn.execute("ROLLBACK")
            raise

    def insert(self, rows: Sequence[_NewRow]) -> None:
        """Append rows to pending, a few thousand per statement (ids keep row order)."""
        self._insert_chunks(
            rows,
            lambda chunk: _columns(
                list(map(_TIME, chunk)),
                list(map(_PAYLOAD, chunk)),
                list(map(_ENQUEUED, chunk)),
                list(map(_ATTEMPTS, chunk)),
            ),
        )

    def insert_new(self, rows: Sequence[tuple[int, bytes]], enqueued_at: float) -> int:
        """:meth:`insert` for new rows, without first copying them into ``_NewRow`` tuples."""
        return self._insert_chunks(
            rows,
            lambda chunk: _columns(
                list(map(_TIME, chunk)),
                list(map(bytes, map(_PAYLOAD, chunk))),
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

    def peek(self, max_points: int, max_bytes: int, after: int) -> _Columns:
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

    def _peek_aggregated(self, max_points: int, max_bytes: int, after: int) -> _Columns | None:
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

    def take(self, ids: Sequence[int]) -> list[_Taken]:
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

    def insert_dead(self, rows: Sequence[_NewDead]) -> None:
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

    def set_meta(self, key: str, value: int) -> None:
        """Persist a counter."""
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


class _MemoryStore:
    """The same operations on dicts (insertion order = id order)."""

    def __init__(self) -> None:
        # OrderedDict: O(1) removal from the front, unlike dict's dummy slots.
        self.pending: OrderedDict[int, _NewRow] = OrderedDict()
        self.dead: OrderedDict[int, DeadLetter] = OrderedDict()
        self.count = self.nbytes = self.dl_count = self.dl_bytes = 0
        self.serial = next(_SERIALS)
        self._next_id = MEMORY_ID_BASE

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Nothing to roll back: memory operations do not fail half-way."""
        yield

    def insert(self, rows: Sequence[_NewRow]) -> None:
        """Append rows to pending."""
        for row in rows:
            self.pending[self._new_id()] = row
            self.nbytes += len(row[1])
        self.count += len(rows)

    def insert_new(self, rows: Sequence[tuple[int, bytes]], enqueued_at: float) -> int:
        """Append new ``(time_ns, payload)`` rows to pending; return the last id."""
        self.insert([(time_ns, bytes(payload), enqueued_at, 0) for time_ns, payload in rows])
        return self._next_id

    def ids_of_last(self, count: int, last_id: int) -> bool:
        """Whether ``last_id`` is the newest id: ids here are handed out one by one."""
        return last_id == self._next_id

    def head(self, limit: int) -> list[tuple[int, int, float]]:
        """Oldest pending ``(id, size, enqueued_at)``."""
        out: list[tuple[int, int, float]] = []
        for row_id, (_, payload, enqueued_at, _) in self.pending.items():
            if len(out) >= limit:
                break
            out.append((row_id, len(payload), enqueued_at))
        return out

    def delete_through(self, last_id: int, count: int, nbytes: int) -> None:
        """Delete pending rows with id <= last_id."""
        while self.pending and next(iter(self.pending)) <= last_id:
            self.pending.popitem(last=False)
        self.count -= count
        self.nbytes -= nbytes

    def peek(self, max_points: int, max_bytes: int, after: int) -> _Columns:
        """Oldest pending rows with id > ``after`` within the limits (at least one)."""
        # Rows at or below ``after`` (delivered, not deleted yet) are a few batches.
        head = list(islice(((i, row) for i, row in self.pending.items() if i > after), max_points))
        count = within_bytes((len(row[1]) for _, row in head), max_bytes)
        return (
            [i for i, _ in head[:count]],
            [row[0] for _, row in head[:count]],
            [row[1] for _, row in head[:count]],
        )

    def remove(self, ids: Sequence[int]) -> int:
        """Delete pending rows by id; return how many existed."""
        return len(self.take(ids))

    def take(self, ids: Sequence[int]) -> list[_Taken]:
        """Delete pending rows by id and return them."""
        taken: list[_Taken] = []
        for row_id in sorted(set(ids)):
            row = self.pending.pop(row_id, None)
            if row is not None:
                taken.append((row_id, row[0], row[1], row[3]))
                self.count -= 1
                self.nbytes -= len(row[1])
        return taken

    def oldest(self) -> tuple[int, float] | None:
        """``(time_ns, enqueued_at)`` of the oldest pending row."""
        for time_ns, _, enqueued_at, _ in self.pending.values():
            return time_ns, enqueued_at
        return None

    def insert_dead(self, rows: Sequence[_NewDead]) -> None:
        """Append dead letters."""
        for t, p, r, c, at, n in rows:
            row_id = self._new_id()
            self.dead[row_id] = DeadLetter(row_id, t, p, r, c, at, n)
            self.dl_bytes += len(p)
        self.dl_count += len(rows)

    def dead_head(self, limit: int) -> list[DeadLetter]:
        """Oldest dead letters."""
        return list(self.dead.values())[:limit]

    def delete_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Delete the given dead letters."""
        for letter in letters:
            del self.dead[letter.id]
            self.dl_count -= 1
            self.dl_bytes -= len(letter.payload)

    def purge_dead(self) -> int:
        """Delete every dead letter."""
        purged = self.dl_count
        self.dead.clear()
        self.dl_count = self.dl_bytes = 0
        return purged

    def set_meta(self, key: str, value: int) -> None:
        """Counters are not persisted in memory."""


class Spool:
    """Durable FIFO of encoded points with a dead-letter table.

    ``max_bytes`` bounds the pending payload bytes, ``max_age_seconds`` (if
    set) how long a row may wait; ``overflow`` decides which rows give way.
    ``synchronous="FULL"`` also survives power loss (slower); ``NORMAL``
    survives process crashes. ``clock`` (wall seconds) stamps rows.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_seconds: float | None = None,
        overflow: OverflowPolicy = OverflowPolicy.DROP_OLDEST,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        max_dead_letter_bytes: int = DEFAULT_MAX_DEAD_LETTER_BYTES,
        recover_after: float | None = DEFAULT_RECOVER_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Configure the spool; nothing touches the disk before :meth:`open`."""
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self.overflow = OverflowPolicy(overflow)
        self.synchronous = synchronous
        self.max_dead_letter_bytes = max_dead_letter_bytes
        self.recover_after = recover_after
        self._clock = clock
        self._lock = threading.RLock()
        self._disk: _SqliteStore | None = None
        self._memory: _MemoryStore | None = None
        self._dropped_total = 0
        self._dead_dropped = 0
        self._meta_loaded = False
        self._stranded = 0
        self._failed_at: float | None = None
        self._last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        """Open the spool."""
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the spool."""
        self.close()

    def open(self) -> None:
        """Open (or create) the database; on storage failure run in memory."""
        with self._lock:
            if self._disk is not None or self._memory is not None:
                return
            try:
                self._disk = self._open_disk()
            except _STORAGE_ERRORS as exc:
                self._memory = _MemoryStore()
                self._record_failure(exc, "open")
                return
            self._load_meta(self._disk)

    def close(self) -> None:
        """Move memory rows back to disk if possible, checkpoint the WAL, close."""
        with self._lock:
            if self._memory is not None:
                if self._memory.count or self._memory.dl_count:
                    self.try_recover()
                if self._memory is not None and (self._memory.count or self._memory.dl_count):
                    _LOGGER.warning(
                        "Spool %s closed while its disk is unusable: %d pending and %d"
                        " quarantined rows kept in memory are lost",
                        self.path,
                        self._memory.count,
                        self._memory.dl_count,
                    )
                self._memory = None
            if self._disk is not None:
                disk, self._disk = self._disk, None
                try:
                    disk.close()
                except _STORAGE_ERRORS as exc:
                    _LOGGER.warning("Spool %s: closing the database failed: %s", self.path, exc)

    def _open_disk(self) -> _SqliteStore:
        """Open the SQLite store, moving a corrupt file aside once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return _SqliteStore.open(self.path, self.synchronous)
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise
            reason = str(exc)
        moved = self._move_aside()
        _LOGGER.error(
            "Spool database %s is corrupt (%s); moved it to %s and started a new one",
            self.path,
            reason,
            moved,
        )
        return _SqliteStore.open(self.path, self.synchronous)

    def _move_aside(self) -> Path:
        """Rename the database (and its WAL/SHM files) to ``*.corrupt-<ts>``."""
        suffix = f".corrupt-{int(self._clock())}"
        target = self.path.with_name(self.path.name + suffix)
        for extra in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + extra)
            if side.exists():
                side.rename(self.path.with_name(self.path.name + suffix + extra))
        self.path.rename(target)
        # Rows that were stranded on that file are gone for good now.
        self._dropped_total += self._stranded
        self._stranded = 0
        return target

    def _load_meta(self, disk: _SqliteStore) -> None:
        """Merge the persisted drop counters with those counted so far."""
        if not self._meta_loaded:
            self._dropped_total += disk.get_meta(_META_DROPPED)
            self._dead_dropped += disk.get_meta(_META_DEAD_DROPPED)
            self._meta_loaded = True

    # ------------------------------------------------------------------ failure handling

    def _record_failure(self, exc: BaseException, operation: str) -> None:
        """Remember the error; log loudly only on the switch to memory."""
        self._last_error = f"{type(exc).__name__}: {exc}"[:300]
        self._failed_at = self._clock()
        _LOGGER.error(
            "Spool %s: storage failed during %s (%s); keeping data in memory (up to %d"
            " bytes) until the disk works again",
            self.path,
            operation,
            self._last_error,
            self.max_bytes,
        )

    def _fail_over(self, disk: _SqliteStore, exc: BaseException, operation: str) -> _MemoryStore:
        """Switch from the failing disk to a fresh memory store."""
        self._disk = None
        self._stranded += disk.count
        with suppress(*_STORAGE_ERRORS):
            disk.conn.close()
        self._memory = _MemoryStore()
        self._record_failure(exc, operation)
        return self._memory

    def try_recover(self) -> bool:
        """Reopen the disk and move memory rows back to it; True when on disk."""
        with self._lock:
            memory = self._memory
            if memory is None:
                return self._disk is not None
            try:
                disk = self._open_disk()
            except _STORAGE_ERRORS as exc:
                self._failed_at = self._clock()
                self._last_error = f"{type(exc).__name__}: {exc}"[:300]
                _LOGGER.debug("Spool %s: disk still unusable: %s", self.path, exc)
                return False
            saved = (self._dropped_total, self._dead_dropped, self._meta_loaded)
            try:
                with disk.transaction():
                    self._load_meta(disk)
                    rows = list(memory.pending.values())
                    dropped = self._admit(disk, rows, disk.insert)[1]
                    disk.insert_dead(
                        [
                            (
                                d.time_ns,
                                d.payload,
                                d.reason,
                                d.category,
                                d.quarantined_at,
                                d.attempts,
                            )
                            for d in memory.dead.values()
                        ]
                    )
                    self._trim_dead(disk)
                    self._count_dropped(disk, dropped)
                    disk.set_meta(_META_DROPPED, self._dropped_total)
            except _STORAGE_ERRORS as exc:
                self._dropped_total, self._dead_dropped, self._meta_loaded = saved
                with suppress(*_STORAGE_ERRORS):
                    disk.conn.close()
                self._failed_at = self._clock()
                self._last_error = f"{type(exc).__name__}: {exc}"[:300]
                _LOGGER.debug("Spool %s: moving rows back to disk failed: %s", self.path, exc)
                return False
            self._disk, self._memory = disk, None
            self._stranded = 0
            self._failed_at = None
            _LOGGER.info(
                "Spool %s: disk usable again; moved %d rows and %d dead letters back",
                self.path,
                len(rows) - dropped,
                memory.dl_count,
            )
            return True

    def _run[R](
        self, operation: str, action: Callable[[_Store], R], *, read_only: bool = False
    ) -> R:
        """Run ``action`` atomically on the current store, failing over to memory.

        ``read_only`` actions skip BEGIN / COMMIT (two statement steps, see
        ``_INSERT_ROWS``): the lock already keeps every other writer out.
        """
        with self._lock:
            if self._disk is None and self._memory is None:
                raise RuntimeError("spool is not open")
            if (
                self._memory is not None
                and self.recover_after is not None
                and self._failed_at is not None
                and self._clock() - self._failed_at >= self.recover_after
            ):
                self.try_recover()
            if self._disk is None:
                assert self._memory is not None
                with self._memory.transaction():
                    return action(self._memory)
            disk = self._disk
            saved = (self._dropped_total, self._dead_dropped)
            try:
                if read_only:
                    return action(disk)
                with disk.transaction():
                    return action(disk)
            except _STORAGE_ERRORS as exc:
                self._dropped_total, self._dead_dropped = saved
                memory = self._fail_over(disk, exc, operation)
            with memory.transaction():
                return action(memory)

    # ------------------------------------------------------------------ policy helpers

    def _count_dropped(self, store: _Store, dropped: int) -> None:
        """Add to the persisted drop counter (same transaction as the drop)."""
        if dropped:
            self._dropped_total += dropped
            store.set_meta(_META_DROPPED, self._dropped_total)

    def _evict(self, store: _Store, excess: int) -> int:
        """Delete the oldest rows until ``excess`` bytes are freed; return the count."""
        freed = count = 0
        while freed < excess:
            head = store.head(_SCAN)
            last_id = None
            chunk_count = chunk_bytes = 0
            for row_id, size, _ in head:
                if freed + chunk_bytes >= excess:
                    break
                last_id, chunk_count, chunk_bytes = row_id, chunk_count + 1, chunk_bytes + size
            if last_id is None:
                break  # counters said there was more; never loop forever
            store.delete_through(last_id, chunk_count, chunk_bytes)
            freed += chunk_bytes
            count += chunk_count
        return count

    def _expire(self, store: _Store) -> int:
        """Delete rows older than ``max_age_seconds`` (queue order); return the count."""
        if self.max_age_seconds is None:
            return 0
        cutoff = self._clock() - self.max_age_seconds
        count = 0
        while True:
            expired: list[tuple[int, int]] = []
            for row_id, size, enqueued_at in store.head(_SCAN):
                if enqueued_at >= cutoff:
                    break  # ages are checked in queue order
                expired.append((row_id, size))
            if not expired:
                return count
            store.delete_through(expired[-1][0], len(expired), sum(s for _, s in expired))
            count += len(expired)

    def _admit[Row: tuple[Any, ...]](
        self, store: _Store, rows: Sequence[Row], insert: Callable[[Sequence[Row]], None]
    ) -> tuple[int, int]:
        """Store ``rows`` (payload at index 1) with ``insert`` under the size limit and policy.

        Returns (stored, dropped).
        """
        # Column-wise builtins (map, sum, max) instead of loops over the rows: an
        # append takes thousands of rows while the event loop waits for the GIL.
        sizes = list(map(len, map(_PAYLOAD, rows)))
        if sizes and max(sizes) <= self.max_bytes:
            fitting: Sequence[Row] = rows
        else:
            fitting = [row for row, size in zip(rows, sizes, strict=True) if size <= self.max_bytes]
            sizes = [size for size in sizes if size <= self.max_bytes]
        dropped = len(rows) - len(fitting)  # a single row larger than the spool
        accepted: Sequence[Row]
        if self.overflow is OverflowPolicy.DROP_NEWEST:
            # Refuse the first row that does not fit and everything after it (order kept).
            room = self.max_bytes - store.nbytes
            accepted = fitting[: bisect_right(list(accumulate(sizes)), room)]
            dropped += len(fitting) - len(accepted)
        else:
            total = sum(sizes)
            start = 0
            while total > self.max_bytes:  # the batch alone is too big: oldest go first
                total -= sizes[start]
                start += 1
            accepted = fitting[start:] if start else fitting
            dropped += start
            excess = store.nbytes + total - self.max_bytes
            if excess > 0:
                dropped += self._evict(store, excess)
        if accepted:
            insert(accepted)
        return len(accepted), dropped

    def _trim_dead(self, store: _Store) -> None:
        """Drop the oldest dead letters beyond ``max_dead_letter_bytes``."""
        dropped = 0
        while store.dl_bytes > self.max_dead_letter_bytes:
            excess = store.dl_bytes - self.max_dead_letter_bytes
            victims: list[DeadLetter] = []
            freed = 0
            for letter in store.dead_head(_SCAN):
                if freed >= excess:
                    break
                victims.append(letter)
                freed += len(letter.payload)
            store.delete_dead(victims)
            dropped += len(victims)
        if dropped:
            self._dead_dropped += dropped
            store.set_meta(_META_DEAD_DROPPED, self._dead_dropped)

    # ------------------------------------------------------------------ public API

    def append(
        self,
        rows: Sequence[tuple[int, bytes]],
        *,
        delivered: RowIds | None = None,
        hand_back: bool = False,
    ) -> AppendResult:
        """Store ``(time_ns, payload)`` rows in one transaction.

        ``delivered`` rows are deleted first, in the same transaction (the
        uploader's accepted batches ride along with the next append instead of
        costing a job of their own). Expired rows are removed next; then the size
        limit is enforced by the overflow policy. Every row given up (old or new)
        is counted in ``dropped`` and in the persisted ``dropped_total``. With
        ``hand_back`` the result carries the stored rows with their ids when
        nothing was dropped.
        """
        if not rows and delivered is None:
            return AppendResult(0, 0)

        def action(store: _Store) -> AppendResult:
            if _applies(delivered, store):
                assert delivered is not None
                store.remove(delivered.ids)
            if not rows:
                return AppendResult(0, 0, generation=store.serial)
            now = self._clock()
            oldest_before = None
            if (
                self.max_age_seconds is not None
                or store.nbytes + sum(map(len, map(_PAYLOAD, rows))) > self.max_bytes
            ):
                oldest = store.oldest()  # for the caller's record of what was dropped
                oldest_before = oldest[0] if oldest else None
            dropped = self._expire(store)
            last_ids: list[int] = []
            stored, refused = self._admit(
                store, rows, lambda accepted: last_ids.append(store.insert_new(accepted, now))
            )
            self._count_dropped(store, dropped + refused)
            handed = Rows()
            if (
                hand_back
                and stored == len(rows)
                and last_ids
                and store.ids_of_last(stored, last_ids[0])
            ):
                last = last_ids[0]
                handed = Rows(range(last - stored + 1, last + 1), list(map(_PAYLOAD, rows)))
            return AppendResult(stored, dropped + refused, oldest_before, handed, store.serial)

        return self._run("append", action)

    def enforce_limits(self) -> int:
        """Apply ``max_age_seconds`` now (e.g. periodically); return rows dropped."""

        def action(store: _Store) -> int:
            dropped = self._expire(store)
            self._count_dropped(store, dropped)
            return dropped

        return self._run("enforce_limits", action)

    def peek(self, max_points: int, max_bytes: int) -> list[SpoolRow]:
        """Oldest pending rows, up to ``max_points`` and ``max_bytes`` of payload.

        Always returns at least one row when any is pending, even one larger
        than ``max_bytes``, so an oversized point cannot block the queue.
        """
        if max_points < 1:
            return []
        ids, times, payloads = self._run(
            "peek", lambda store: store.peek(max_points, max_bytes, 0), read_only=True
        )
        return list(map(_spool_row, zip(ids, times, payloads, strict=True)))

    def delete(self, ids: Sequence[int]) -> int:
        """Delete delivered rows by id; unknown ids are ignored. Returns rows deleted."""
        if not ids:
            return 0
        return self._run("delete", lambda store: store.remove(ids))

    def delete_delivered(self, delivered: RowIds) -> int:
        """:meth:`delete` rows by id if they belong to the current store; return how many."""
        return self._run(
            "delete",
            lambda store: store.remove(delivered.ids) if _applies(delivered, store) else 0,
        )

    def advance(
        self,
        delivered: RowIds | None,
        generation: int | None,
        after: int,
        max_points: int,
        max_bytes: int,
    ) -> Batch:
        """Delete ``delivered`` rows, then read the oldest pending rows not read yet.

        Limits as in :meth:`peek`. ``after`` is the last id the uploader has
        read already (rows in flight or handed over); it applies only while
        ``generation`` is the current store's: after a store switch reading
        starts at the head again.
        """

        def action(store: _Store) -> Batch:
            if _applies(delivered, store):
                assert delivered is not None
                with store.transaction():
                    store.remove(delivered.ids)
            start = after if generation == store.serial else 0
            ids, _, payloads = store.peek(max_points, max_bytes, start)
            return Batch(Rows(ids, payloads), store.serial)

        # Read-only unless there is something to delete (BEGIN / COMMIT are steps).
        return self._run("advance", action, read_only=True)

    def quarantine(self, rows: RowIds, reason: str, category: str) -> int:
        """Move pending rows to the dead-letter table; return how many moved.

        Rows no longer pending (delivered or dropped meanwhile) are skipped, and
        ids of another store move nothing (see :class:`RowIds`).
        """

        def action(store: _Store) -> int:
            if not _applies(rows, store):
                return 0
            now = self._clock()
            taken = store.take(rows.ids)
            store.insert_dead([(t, p, reason, category, now, n + 1) for _, t, p, n in taken])
            self._trim_dead(store)
            return len(taken)

        return self._run("quarantine", action) if rows.ids else 0

    def quarantine_payloads(
        self, payloads: Sequence[tuple[int, bytes]], reason: str, category: str
    ) -> int:
        """Store ``(time_ns, payload)`` rejected before reaching pending as dead letters."""
        if not payloads:
            return 0

        def action(store: _Store) -> int:
            now = self._clock()
            store.insert_dead([(t, bytes(p), reason, category, now, 0) for t, p in payloads])
            self._trim_dead(store)
            return len(payloads)

        return self._run("quarantine", action)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Return the oldest ``limit`` dead letters."""
        return self._run(
            "dead_letters", lambda store: store.dead_head(max(0, limit)), read_only=True
        )

    def requeue_dead_letters(self) -> int:
        """Move dead letters back to pending (oldest first) as far as they fit.

        Requeueing never evicts pending rows: letters that do not fit under
        ``max_bytes`` stay quarantined. Returns how many were moved.
        """

        def action(store: _Store) -> int:
            now = self._clock()
            room = self.max_bytes - store.nbytes
            moved = 0
            while True:
                batch: list[DeadLetter] = []
                for letter in store.dead_head(_SCAN):
                    if len(letter.payload) > room:
                        break
                    batch.append(letter)
                    room -= len(letter.payload)
                if not batch:
                    return moved
                store.delete_dead(batch)
                store.insert([(d.time_ns, d.payload, now, d.attempts) for d in batch])
                moved += len(batch)

        return self._run("requeue", action)

    def purge_dead_letters(self) -> int:
        """Delete every dead letter; return how many."""
        return self._run("purge", lambda store: store.purge_dead())

    def stats(self) -> SpoolStats:
        """Counters from memory plus one indexed lookup of the oldest row."""

        def action(store: _Store) -> SpoolStats:
            oldest = store.oldest()
            return SpoolStats(
                pending_count=store.count,
                pending_bytes=store.nbytes,
                oldest_time_ns=oldest[0] if oldest else None,
                oldest_enqueued_at=oldest[1] if oldest else None,
                dead_letter_count=store.dl_count,
                dropped_total=self._dropped_total,
                storage_failed=self._memory is not None,
                in_memory=self._memory is not None,
                last_storage_error=self._last_error,
                stranded_count=self._stranded,
                dead_letter_bytes=store.dl_bytes,
                dead_letter_dropped=self._dead_dropped,
            )

        return self._run("stats", action, read_only=True)

    @property
    def storage_failed(self) -> bool:
        """Whether the spool currently runs in memory because the disk failed."""
        return self._memory is not None

    @property
    def last_storage_error(self) -> str | None:
        """The most recent storage error (type and message), if any."""
        return self._last_error
