"""Reading what is still readable out of a damaged spool database.

Python's sqlite3 has no ``.recover``: rows are read in id order, a chunk at a
time; when a chunk hits a damaged page, the reader gallops forward to the next
id it can seek to, then tries every id it skipped on its own, so only rows on
damaged pages are lost.
"""

from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
import sqlite3
from typing import Any, Final

from .spool_sqlite import META_DEAD, META_PENDING
from .spool_types import STORAGE_ERRORS, NewDead, NewRow

_CHUNK: Final = 1000  # rows read per statement while the pages are sound
#: Most ids tried one by one across one damaged stretch; beyond it the rows
#: there are counted as lost without trying (a destroyed interior page can
#: hide millions of ids).
_MAX_PROBES: Final = 20_000
_PENDING_COLUMNS: Final = "id, time_ns, payload, enqueued_at, attempts"
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


def _pending_row(row: tuple[Any, ...]) -> NewRow | None:
    _, time_ns, payload, enqueued_at, attempts = row
    if (
        isinstance(time_ns, int)
        and isinstance(payload, bytes | str)
        and isinstance(enqueued_at, int | float)
        and isinstance(attempts, int)
    ):
        data = payload.encode() if isinstance(payload, str) else payload
        return time_ns, data, float(enqueued_at), attempts
    return None


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

    def __init__(self, conn: sqlite3.Connection, table: str, columns: str) -> None:
        self.conn = conn
        self.table = table
        self.columns = columns
        self.unreadable = 0
        self.upper_known = True
        self.upper = self._upper()

    def _upper(self) -> int:
        """Return the highest id the table ever handed out (AUTOINCREMENT keeps it)."""
        for sql, params in (
            ("SELECT seq FROM sqlite_sequence WHERE name = ?", (self.table,)),
            (f"SELECT MAX(id) FROM {self.table}", ()),  # noqa: S608 - fixed table names
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
        select = f"SELECT {self.columns} FROM {self.table} WHERE id > ? ORDER BY id LIMIT ?"  # noqa: S608
        while True:
            got: list[tuple[Any, ...]] = []
            damaged = False
            try:
                for row in self.conn.execute(select, (after, _CHUNK)):
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
                if len(got) < _CHUNK:
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
                    f"SELECT {self.columns} FROM {self.table} WHERE id >= ? ORDER BY id LIMIT 1",  # noqa: S608
                    (probe,),
                ).fetchone()
            except sqlite3.DatabaseError:
                step *= 2
                continue
            return probe
        return self.upper + 1

    def _one_by_one(self, start: int, stop: int) -> Iterator[list[tuple[Any, ...]]]:
        """Try each id in ``[start, stop)`` on its own; count those that fail."""
        select = f"SELECT {self.columns} FROM {self.table} WHERE id = ?"  # noqa: S608
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
    convert: Callable[[tuple[Any, ...]], R | None],
    sink: Callable[[list[R]], None],
) -> tuple[int, int]:
    """Copy the readable rows of ``table`` to ``sink``; return (saved, unreadable)."""
    reader = _Reader(conn, table, columns)
    saved = 0
    for chunk in reader.chunks():
        rows = [converted for row in chunk if (converted := convert(row)) is not None]
        reader.unreadable += len(chunk) - len(rows)
        if rows:
            sink(rows)
            saved += len(rows)
    return saved, reader.unreadable


def salvage(
    source: Path,
    connect: Callable[[Path], sqlite3.Connection],
    pending: Callable[[list[NewRow]], None],
    dead: Callable[[list[NewDead]], None],
) -> Salvage:
    """Read every readable row of ``source`` into ``pending`` / ``dead`` (oldest first).

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
        result.pending, unreadable = _salvage_table(
            conn, "pending", _PENDING_COLUMNS, _pending_row, pending
        )
        result.dead, more = _salvage_table(conn, "dead_letter", _DEAD_COLUMNS, _dead_row, dead)
        result.unreadable = unreadable + more
    return result
