"""Reading what is still readable out of a damaged spool database.

Python's sqlite3 has no ``.recover``: rows are read in id order, a chunk at a
time; when a chunk hits a damaged page, the reader gallops forward to the next
id it can seek to, then tries every id it skipped on its own, so only rows on
damaged pages are lost. Pending points are read from segments (format 2) and
from the one-row-per-point table of older files; a segment whose bytes do not
decode loses its points, the others are unaffected. Points recorded as gone
from a segment (``partial``) are skipped when that table reads, else sent
again (the destination overwrites them).
"""

from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
import sqlite3
from typing import Any, Final

from . import spool_codec
from .spool_sqlite import META_DEAD, META_PENDING
from .spool_types import STORAGE_ERRORS, NewDead, NewRow

_CHUNK: Final = 1000  # rows read per statement while the pages are sound
#: Most ids tried one by one across one damaged stretch; beyond it the rows
#: there are counted as lost without trying (a destroyed interior page can
#: hide millions of ids).
_MAX_PROBES: Final = 20_000
_PENDING_COLUMNS: Final = "id, time_ns, payload, enqueued_at, attempts"
_SEGMENT_COLUMNS: Final = "last_id, count, enqueued_at, attempts, data"
_SEGMENTS_PER_CHUNK: Final = 20
_DEAD_COLUMNS: Final = "id, time_ns, payload, reason, category, quarantined_at, attempts"


@dataclass(slots=True)
class Salvage:
    """What a salvage read, and what the damaged file's own records say it held."""

    pending: int = 0
    dead: int = 0
    #: Ids a lookup could not read (only a bound: a damaged page may also
    #: have held ids deleted long ago).
    unreadable: int = 0
    #: ``meta`` of the damaged file, as far as it could be read.
    meta: dict[str, int] = field(default_factory=dict)
    gaps: list[tuple[int, int]] = field(default_factory=list)

    def lost(self, expected_pending: int | None, expected_dead: int | None) -> int:
        """Rows that were in the file and not read back.

        Exact when the row counts are known (from the store that was open on
        the file, or from the file's ``meta``); otherwise the unreadable ids.
        """
        pending = expected_pending if expected_pending is not None else self.meta.get(META_PENDING)
        dead = expected_dead if expected_dead is not None else self.meta.get(META_DEAD)
        if pending is None and dead is None:
            return self.unreadable
        return max(0, (pending or 0) - self.pending) + max(0, (dead or 0) - self.dead)


def _pending_row(row: tuple[Any, ...]) -> tuple[list[NewRow], int]:
    _, time_ns, payload, enqueued_at, attempts = row
    if (
        isinstance(time_ns, int)
        and isinstance(payload, bytes | str)
        and isinstance(enqueued_at, int | float)
        and isinstance(attempts, int)
    ):
        data = payload.encode() if isinstance(payload, str) else payload
        return [(time_ns, data, float(enqueued_at), attempts)], 0
    return [], 1


def _segment_rows(
    gone: dict[int, set[int]],
) -> Callable[[tuple[Any, ...]], tuple[list[NewRow], int]]:
    """Convert a segment row into its pending points (and how many could not be read)."""

    def convert(row: tuple[Any, ...]) -> tuple[list[NewRow], int]:
        last_id, count, enqueued_at, attempts, data = row
        if not (
            isinstance(last_id, int)
            and isinstance(count, int)
            and isinstance(enqueued_at, int | float)
            and isinstance(attempts, int)
            and isinstance(data, bytes)
        ):
            return [], max(1, count if isinstance(count, int) else 1)
        skip = gone.get(last_id, set())
        try:
            times, payloads = spool_codec.decode(data)
        except spool_codec.SegmentError:
            return [], max(0, count - len(skip))
        at = float(enqueued_at)
        return [
            (t, p, at, attempts)
            for offset, (t, p) in enumerate(zip(times, payloads, strict=True))
            if offset not in skip
        ], 0

    return convert


def _read_gone(conn: sqlite3.Connection) -> dict[int, set[int]]:
    """Offsets gone from partly delivered segments, as far as they can be read."""
    gone: dict[int, set[int]] = {}
    with suppress(sqlite3.DatabaseError):
        for last_id, blob in conn.execute("SELECT last_id, gone FROM partial"):
            if isinstance(last_id, int) and isinstance(blob, bytes):
                gone[last_id] = spool_codec.decode_offsets(blob)
    return gone


def _dead_row(row: tuple[Any, ...]) -> NewDead | None:
    _, time_ns, payload, reason, category, at, attempts = row
    if (
        isinstance(time_ns, int)
        and isinstance(payload, bytes | str)
        and isinstance(reason, str)
        and isinstance(category, str)
        and isinstance(at, int | float)
        and isinstance(attempts, int)
    ):
        data = payload.encode() if isinstance(payload, str) else payload
        return time_ns, data, reason, category, float(at), attempts
    return None


class _Reader:
    """Rows of one table in id order, stepping over damaged pages."""

    def __init__(
        self, conn: sqlite3.Connection, table: str, columns: str, chunk: int = _CHUNK
    ) -> None:
        self.conn = conn
        self.table = table
        self.columns = columns
        self.key = columns.split(",", 1)[0]
        self.chunk = chunk
        self.unreadable = 0
        self.upper_known = True
        self.upper = self._upper()

    def _upper(self) -> int:
        """Return the highest id the table ever handed out (AUTOINCREMENT keeps it)."""
        for sql, params in (
            ("SELECT seq FROM sqlite_sequence WHERE name = ?", (self.table,)),
            (f"SELECT MAX({self.key}) FROM {self.table}", ()),  # noqa: S608 - fixed names
        ):
            with suppress(sqlite3.DatabaseError):
                row = self.conn.execute(sql, params).fetchone()
                if row and isinstance(row[0], int):
                    return int(row[0])
        self.upper_known = False
        return 1 << 62

    def chunks(self) -> Iterator[list[tuple[Any, ...]]]:
        """Readable rows, a chunk at a time, oldest first."""
        after = 0
        select = f"SELECT {self.columns} FROM {self.table} WHERE {self.key} > ? ORDER BY {self.key} LIMIT ?"  # noqa: S608
        while True:
            got: list[tuple[Any, ...]] = []
            damaged = False
            try:
                for row in self.conn.execute(select, (after, self.chunk)):
                    if not isinstance(row[0], int) or row[0] <= after:
                        damaged = True  # a damaged page can yield ids out of order
                        break
                    got.append(row)
                    after = row[0]
            except sqlite3.DatabaseError:
                damaged = True
            if got:
                yield got
            if not damaged:
                if len(got) < self.chunk:
                    return
                continue
            # At least one id further each round, so a page that reads in one
            # statement and fails in another cannot stall the salvage.
            resume = max(self._next_readable(after), after + 2)
            if resume > self.upper and not self.upper_known:
                return  # nothing readable past here and no idea how far ids went
            yield from self._one_by_one(after + 1, resume)
            if resume > self.upper:
                return
            after = resume - 1

    def _next_readable(self, after: int) -> int:
        """Return the first id past ``after`` a seek reaches again (``upper + 1`` if none)."""
        step = 1
        while after + step <= self.upper:
            probe = after + step
            try:
                self.conn.execute(
                    f"SELECT {self.columns} FROM {self.table} WHERE {self.key} >= ?"  # noqa: S608
                    f" ORDER BY {self.key} LIMIT 1",
                    (probe,),
                ).fetchone()
            except sqlite3.DatabaseError:
                step *= 2
                continue
            return probe
        return self.upper + 1

    def _one_by_one(self, start: int, stop: int) -> Iterator[list[tuple[Any, ...]]]:
        """Try each id in ``[start, stop)`` on its own; count those that fail."""
        select = f"SELECT {self.columns} FROM {self.table} WHERE {self.key} = ?"  # noqa: S608
        end = min(stop, start + _MAX_PROBES)
        for row_id in range(start, end):
            try:
                row = self.conn.execute(select, (row_id,)).fetchone()
            except sqlite3.DatabaseError:
                self.unreadable += 1
                continue
            if row is not None:
                yield [row]
        if stop > end and stop <= self.upper + 1:
            self.unreadable += stop - end


def _read_meta(conn: sqlite3.Connection, salvage: Salvage) -> None:
    with suppress(sqlite3.DatabaseError):
        for key, value in conn.execute("SELECT key, value FROM meta"):
            if isinstance(key, str) and isinstance(value, int):
                salvage.meta[key] = value
    with suppress(sqlite3.DatabaseError):
        for start, end in conn.execute("SELECT start_ns, end_ns FROM gaps ORDER BY id"):
            if isinstance(start, int) and isinstance(end, int):
                salvage.gaps.append((start, end))


def _salvage_table[R](
    conn: sqlite3.Connection,
    table: str,
    columns: str,
    convert: Callable[[tuple[Any, ...]], tuple[list[R], int]],
    sink: Callable[[list[R]], None],
    *,
    chunk: int = _CHUNK,
) -> tuple[int, int]:
    """Copy the readable rows of ``table`` to ``sink``; return (saved, unreadable).

    ``convert`` turns a row into the items it holds and how many it lost.
    """
    if not _has_table(conn, table):
        return 0, 0
    reader = _Reader(conn, table, columns, chunk)
    saved = 0
    for rows in reader.chunks():
        items: list[R] = []
        for row in rows:
            got, lost = convert(row)
            items.extend(got)
            reader.unreadable += lost
        if items:
            sink(items)
            saved += len(items)
    return saved, reader.unreadable


def _has_table(conn: sqlite3.Connection, table: str) -> bool:
    """Whether ``table`` exists (an unreadable schema: assume it does)."""
    try:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
    except sqlite3.DatabaseError:
        return True
    return found is not None


def _dead_item(row: tuple[Any, ...]) -> tuple[list[NewDead], int]:
    letter = _dead_row(row)
    return ([letter], 0) if letter is not None else ([], 1)


def salvage(
    source: Path,
    connect: Callable[[Path], sqlite3.Connection],
    pending: Callable[[list[NewRow]], None],
    dead: Callable[[list[NewDead]], None],
) -> Salvage:
    """Read every readable point of ``source`` into ``pending`` / ``dead`` (oldest first).

    A file SQLite cannot open at all salvages nothing. Errors of the callbacks
    (the destination store) propagate.
    """
    result = Salvage()
    try:
        conn = connect(source)
    except STORAGE_ERRORS:
        return result
    with closing(conn):
        with suppress(*STORAGE_ERRORS):
            conn.execute("PRAGMA query_only=1")
            # Lets SQLite read a file shorter than its header says (truncated),
            # instead of refusing the whole file; nothing is written here.
            conn.execute("PRAGMA writable_schema=ON")
        _read_meta(conn, result)
        # An older file's rows (a file is in one format; both are read regardless).
        old, unreadable = _salvage_table(conn, "pending", _PENDING_COLUMNS, _pending_row, pending)
        segments, lost = _salvage_table(
            conn,
            "segments",
            _SEGMENT_COLUMNS,
            _segment_rows(_read_gone(conn)),
            pending,
            chunk=_SEGMENTS_PER_CHUNK,
        )
        result.pending = old + segments
        result.dead, more = _salvage_table(conn, "dead_letter", _DEAD_COLUMNS, _dead_item, dead)
        result.unreadable = unreadable + lost + more
    return result
