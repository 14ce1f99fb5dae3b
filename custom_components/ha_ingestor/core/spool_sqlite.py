"""The SQLite (WAL) store of the spool: segments of pending points, dead letters, counters.

Pending points are stored in segments: the points of one append (up to
``segment_points``) compressed together into one row (see ``spool_codec``),
so a flush costs one insert and one delete, not one per point, and the disk
holds a fraction of the encoded size. Each point still has an id of its own:
a segment covers the consecutive ids ``last_id - count + 1 .. last_id``.
Points delivered or quarantined out of a segment that still holds others are
recorded in ``partial`` (their offsets), so the rest is neither lost nor
resent after a restart; the segment row itself is never rewritten.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import groupby
from operator import itemgetter
from pathlib import Path
import sqlite3
from typing import Final, Self

from . import spool_codec
from .spool_codec import decode_offsets, encode_offsets
from .spool_types import (
    SERIALS,
    STORAGE_ERRORS,
    Columns,
    DeadLetter,
    NewDead,
    NewRow,
    Taken,
    within_bytes,
)

#: Most points per segment (one append of more makes several segments).
DEFAULT_SEGMENT_POINTS: Final = 5000
#: Appends between two looks for small segments to merge (see ``compact``).
COMPACT_EVERY: Final = 60
# Rows of the old one-row-per-point table read per step while migrating.
_MIGRATE_CHUNK: Final = 5000
_SCAN_SEGMENTS: Final = 64  # segment headers read per statement while peeking
# What a transaction restores when it rolls back.
_COUNTERS: Final = ("count", "nbytes", "dl_count", "dl_bytes", "disk_bytes", "last_id")
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS segments (
        last_id INTEGER PRIMARY KEY,
        count INTEGER NOT NULL,
        nbytes INTEGER NOT NULL,
        size INTEGER NOT NULL,
        time_min INTEGER NOT NULL,
        time_max INTEGER NOT NULL,
        enqueued_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        data BLOB NOT NULL
    )""",
    # Segments part of whose points left pending: points and bytes still
    # pending, the earliest time among them, and the offsets of those gone
    # (delivered or quarantined).
    """CREATE TABLE IF NOT EXISTS partial (
        last_id INTEGER PRIMARY KEY,
        live INTEGER NOT NULL,
        nbytes INTEGER NOT NULL,
        time_min INTEGER NOT NULL,
        gone BLOB NOT NULL
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
#: (no version, no gaps table, no row counts in meta); 1 adds both; 2 stores
#: pending points in segments instead of one row each (migrated on open).
SCHEMA_VERSION: Final = 2
#: Row counts kept in ``meta`` in the transaction that changes them, so a
#: salvage of a damaged file knows exactly how many points it could not read.
META_PENDING: Final = "pending_count"
META_DEAD: Final = "dead_letter_count"
_ENQUEUED_ATTEMPTS: Final = itemgetter(2, 3)


class NewerSchemaError(Exception):
    """The database was written by a newer format than this code reads."""

    def __init__(self, version: int) -> None:
        """Remember the version found."""
        super().__init__(f"spool format {version} is newer than {SCHEMA_VERSION}")
        self.version = version


class DamagedSegmentError(sqlite3.DatabaseError):
    """A segment's bytes do not decode: the file is damaged where SQLite cannot tell."""


def is_corrupt(exc: BaseException) -> bool:
    """Whether an error means the file is damaged (not merely unwritable)."""
    if isinstance(exc, DamagedSegmentError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _schema_version(conn: sqlite3.Connection) -> int:
    """Return the file's format version; raise :class:`NewerSchemaError` if it is newer."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise NewerSchemaError(version)
    return version


def _segment_runs(rows: Sequence[NewRow], size: int) -> Iterator[Sequence[NewRow]]:
    """Consecutive rows with the same enqueue time and attempts, ``size`` at most each."""
    start = 0
    for _, run in groupby(rows, _ENQUEUED_ATTEMPTS):
        length = sum(1 for _ in run)
        for offset in range(start, start + length, size):
            yield rows[offset : min(offset + size, start + length)]
        start += length


class SqliteStore:
    """Pending points (in segments) and dead letters in one SQLite database (WAL)."""

    def __init__(
        self, conn: sqlite3.Connection, segment_points: int = DEFAULT_SEGMENT_POINTS
    ) -> None:
        """Wrap an open connection; counters are filled by :meth:`open`."""
        self.conn = conn
        self.segment_points = max(1, segment_points)
        #: Pending points and their encoded bytes (what the limits count).
        self.count = self.nbytes = self.dl_count = self.dl_bytes = 0
        #: Bytes the segments take in the file (compressed).
        self.disk_bytes = 0
        self.serial = next(SERIALS)
        #: Limits count encoded payload bytes (the file holds them compressed).
        self.row_cost = 0
        #: Id of the newest point ever stored (0: none yet).
        self.last_id = 0
        # Most points in any segment: bounds the id range a lookup by point id scans.
        self._max_count = 0
        # The segment decoded last: (last_id, times, payloads). Segments never
        # change once written (a merge drops this), and ids are never reused.
        self._decoded: tuple[int, list[int], list[bytes]] | None = None
        # Appends since the last look for small segments to merge, and the
        # last id that look covered.
        self._appends = 0
        self._compacted_through = 0

    @classmethod
    def open(
        cls,
        path: Path,
        synchronous: str,
        connect: Callable[[Path], sqlite3.Connection],
        segment_points: int = DEFAULT_SEGMENT_POINTS,
    ) -> Self:
        """Open or create the database with ``connect``, migrate it, count its rows once."""
        conn = connect(path)
        try:
            store = cls(conn, segment_points)
            # Checked before anything is changed: a newer format is left untouched.
            version = _schema_version(conn)
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            conn.execute(f"PRAGMA synchronous={synchronous}")
            # The only full scans: counters are verified here, then kept in memory.
            # They also read every page of the tables, so damage is found now.
            with store.transaction():
                for statement in _SCHEMA:
                    conn.execute(statement)
                if version < SCHEMA_VERSION:
                    # 0 -> 1: the gaps table (created above) and the row counts;
                    # 1 -> 2: rows of ``pending`` become segments. One transaction:
                    # a crash leaves the old format, complete.
                    store.migrate_rows()
                store.recount()
                if version < SCHEMA_VERSION:
                    store.write_counts()
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            with suppress(*STORAGE_ERRORS):
                conn.close()
            raise
        return store

    def recount(self) -> None:
        """Read the counters from the tables (a full scan of the small columns)."""
        count, nbytes, size, last, self._max_count = self.conn.execute(
            "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(nbytes), 0),"
            " COALESCE(SUM(size), 0), COALESCE(MAX(last_id), 0), COALESCE(MAX(count), 0)"
            " FROM segments"
        ).fetchone()
        gone, gone_bytes = self.conn.execute(
            "SELECT COALESCE(SUM(s.count - p.live), 0), COALESCE(SUM(s.nbytes - p.nbytes), 0)"
            " FROM partial p JOIN segments s USING (last_id)"
        ).fetchone()
        self.count, self.nbytes = count - gone, nbytes - gone_bytes
        self.disk_bytes, self.last_id = size, last
        self.dl_count, self.dl_bytes = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM dead_letter"
        ).fetchone()

    def migrate_rows(self) -> int:
        """Move the rows of a one-row-per-point ``pending`` table into segments; drop it.

        Rows keep their order, enqueue time and attempts. Returns how many moved.
        """
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pending'"
        ).fetchone()
        if not exists:
            return 0
        moved = after = 0
        while True:
            rows = self.conn.execute(
                "SELECT id, time_ns, payload, enqueued_at, attempts FROM pending"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (after, _MIGRATE_CHUNK),
            ).fetchall()
            if not rows:
                break
            after = rows[-1][0]
            self.insert([(t, bytes(p), float(at), int(n)) for _, t, p, at, n in rows])
            moved += len(rows)
        self.conn.execute("DROP TABLE pending")
        return moved

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
        saved = {name: getattr(self, name) for name in _COUNTERS}
        self.conn.execute("BEGIN")
        try:
            yield
            if (self.count, self.dl_count) != (saved["count"], saved["dl_count"]):
                self.write_counts()
            self.conn.execute("COMMIT")
        except BaseException:
            for name, value in saved.items():
                setattr(self, name, value)
            self._decoded = None
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

    # ------------------------------------------------------------------ pending

    def _insert_segment(
        self, times: Sequence[int], payloads: Sequence[bytes], enqueued_at: float, attempts: int
    ) -> None:
        """Store one segment of consecutive new ids (compression happens here)."""
        data = spool_codec.encode(times, payloads)
        nbytes = sum(map(len, payloads))
        last_id = self.last_id + len(payloads)
        self.conn.execute(
            "INSERT INTO segments (last_id, count, nbytes, size, time_min, time_max,"
            " enqueued_at, attempts, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                last_id,
                len(payloads),
                nbytes,
                len(data),
                min(times),
                max(times),
                enqueued_at,
                attempts,
                data,
            ),
        )
        self.last_id = last_id
        self._max_count = max(self._max_count, len(payloads))
        self.count += len(payloads)
        self.nbytes += nbytes
        self.disk_bytes += len(data)

    def insert(self, rows: Sequence[NewRow]) -> None:
        """Append rows, one segment per run of equal enqueue time and attempts."""
        for run in _segment_runs(rows, self.segment_points):
            self._insert_segment(
                [row[0] for row in run], [row[1] for row in run], run[0][2], run[0][3]
            )

    def insert_new(self, rows: Sequence[tuple[int, bytes]], enqueued_at: float) -> int:
        """Append new ``(time_ns, payload)`` rows in segments; return the last id."""
        size = self.segment_points
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            self._insert_segment(
                [row[0] for row in chunk], [bytes(row[1]) for row in chunk], enqueued_at, 0
            )
        return self.last_id if rows else 0

    def compact(self, force: bool = False) -> int:
        """Merge runs of small segments nobody delivered yet into segments of up to ``segment_points``.

        While the destination is down, every flush leaves a small segment (50
        points a second in a busy home), and a small segment compresses worse
        than a large one. Every :data:`COMPACT_EVERY` appends (or when
        ``force``), consecutive whole segments written since the last look are
        re-encoded as one: the ids stay the same, the bytes on disk shrink by
        about a third. While deliveries flow the segments are gone before
        that, so a healthy spool never rewrites anything. The merged segment
        takes the oldest enqueue time of its parts. Returns segments merged away.
        """
        self._appends += 1
        if not force and self._appends < COMPACT_EVERY:
            return 0
        self._appends = 0
        small = self.conn.execute(
            "SELECT s.last_id, s.count, s.enqueued_at, s.attempts FROM segments s"
            " LEFT JOIN partial p USING (last_id)"
            " WHERE s.last_id > ? AND p.last_id IS NULL AND s.count * 2 <= ?"
            " ORDER BY s.last_id",
            (self._compacted_through, self.segment_points),
        ).fetchall()
        groups: list[list[tuple[int, int, float, int]]] = []
        for seg in small:
            previous = groups[-1][-1] if groups else None
            if (
                previous is not None
                and seg[0] - seg[1] == previous[0]
                and seg[3] == previous[3]
                and sum(s[1] for s in groups[-1]) + seg[1] <= self.segment_points
            ):
                groups[-1].append(seg)
            else:
                groups.append([seg])
        merged = 0
        for group in groups:
            if len(group) < 2:
                continue
            times: list[int] = []
            payloads: list[bytes] = []
            for last_id, _, _, _ in group:
                seg_times, seg_payloads = self._decode(last_id)
                times += seg_times
                payloads += seg_payloads
            first, last = group[0][0] - group[0][1] + 1, group[-1][0]
            (size,) = self.conn.execute(
                "SELECT SUM(size) FROM segments WHERE last_id BETWEEN ? AND ?", (first, last)
            ).fetchone()
            self.conn.execute("DELETE FROM segments WHERE last_id BETWEEN ? AND ?", (first, last))
            data = spool_codec.encode(times, payloads)
            self.conn.execute(
                "INSERT INTO segments (last_id, count, nbytes, size, time_min, time_max,"
                " enqueued_at, attempts, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    last,
                    len(payloads),
                    sum(map(len, payloads)),
                    len(data),
                    min(times),
                    max(times),
                    min(seg[2] for seg in group),
                    group[0][3],
                    data,
                ),
            )
            self.disk_bytes += len(data) - size
            self._max_count = max(self._max_count, len(payloads))
            merged += len(group) - 1
        self._decoded = None
        if small:
            # A last segment left alone may still merge with those to come.
            tail = small[-1]
            self._compacted_through = tail[0] if len(groups[-1]) > 1 else tail[0] - tail[1]
        return merged

    def evict_disk(self, excess: int) -> int:
        """Delete the oldest whole segments until ``excess`` bytes on disk are freed.

        The newest segment always stays. Returns the points dropped.
        """
        freed = points = nbytes = 0
        last = None
        for last_id, size, live, live_bytes in self.conn.execute(
            "SELECT s.last_id, s.size, COALESCE(p.live, s.count), COALESCE(p.nbytes, s.nbytes)"
            " FROM segments s LEFT JOIN partial p USING (last_id) WHERE s.last_id < ?"
            " ORDER BY s.last_id",
            (self.last_id,),
        ):
            if freed >= excess:
                break
            last, freed = last_id, freed + size
            points, nbytes = points + live, nbytes + live_bytes
        if last is not None:
            self.delete_through(last, points, nbytes)
        return points

    def ids_of_last(self, count: int, last_id: int) -> bool:
        """Whether the newest ``count`` points have the ids up to ``last_id``.

        Ids are handed out consecutively, so this holds for the newest id.
        """
        return count <= self.count and last_id == self.last_id

    def head(self, limit: int) -> list[tuple[int, int, float, int]]:
        """Oldest segments: ``(last id, pending bytes, enqueued_at, pending points)``."""
        return self.conn.execute(
            "SELECT s.last_id, COALESCE(p.nbytes, s.nbytes), s.enqueued_at,"
            " COALESCE(p.live, s.count) FROM segments s LEFT JOIN partial p USING (last_id)"
            " ORDER BY s.last_id LIMIT ?",
            (limit,),
        ).fetchall()

    def head_points(self, limit: int) -> list[tuple[int, int]]:
        """Oldest pending ``(id, size)`` of the head segment (at most ``limit``)."""
        head = self.conn.execute(
            "SELECT s.last_id, s.count, p.gone FROM segments s LEFT JOIN partial p"
            " USING (last_id) ORDER BY s.last_id LIMIT 1"
        ).fetchone()
        if head is None:
            return []
        last_id, count, gone_blob = head
        _, payloads = self._decode(last_id)
        gone = decode_offsets(gone_blob)
        first = last_id - count + 1
        return [(first + o, len(payloads[o])) for o in range(count) if o not in gone][:limit]

    def delete_through(self, last_id: int, count: int, nbytes: int) -> None:
        """Delete the segments whose last id is <= ``last_id`` (their counts known by the caller)."""
        (size,) = self.conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM segments WHERE last_id <= ?", (last_id,)
        ).fetchone()
        self.conn.execute("DELETE FROM segments WHERE last_id <= ?", (last_id,))
        self.conn.execute("DELETE FROM partial WHERE last_id <= ?", (last_id,))
        self.count -= count
        self.nbytes -= nbytes
        self.disk_bytes -= size

    def _decode(self, last_id: int, data: bytes | None = None) -> tuple[list[int], list[bytes]]:
        """Return the times and payloads of a segment (the last one decoded is kept)."""
        cached = self._decoded
        if cached is not None and cached[0] == last_id:
            return cached[1], cached[2]
        if data is None:
            data = self.conn.execute(
                "SELECT data FROM segments WHERE last_id = ?", (last_id,)
            ).fetchone()[0]
        try:
            times, payloads = spool_codec.decode(bytes(data))
        except spool_codec.SegmentError as err:
            # Surfaces as corruption: the spool salvages the other segments.
            raise DamagedSegmentError(f"segment {last_id}: {err}") from None
        self._decoded = (last_id, times, payloads)
        return times, payloads

    def peek(self, max_points: int, max_bytes: int, after: int) -> Columns:
        """Oldest pending points with id > ``after`` within the limits (at least one)."""
        ids: list[int] = []
        times: list[int] = []
        payloads: list[bytes] = []
        total = 0
        cursor = after
        while len(ids) < max_points and (total <= max_bytes or not ids):
            heads = self.conn.execute(
                "SELECT s.last_id, s.count, p.gone FROM segments s LEFT JOIN partial p"
                " USING (last_id) WHERE s.last_id > ? ORDER BY s.last_id LIMIT ?",
                (cursor, _SCAN_SEGMENTS),
            ).fetchall()
            if not heads:
                break
            for last_id, count, gone in heads:
                first = last_id - count + 1
                seg_times, seg_payloads = self._decode(last_id)
                skip = decode_offsets(gone)
                for offset in range(max(0, after + 1 - first), count):
                    if offset in skip:
                        continue
                    ids.append(first + offset)
                    times.append(seg_times[offset])
                    payloads.append(seg_payloads[offset])
                    total += len(seg_payloads[offset])
                    if len(ids) >= max_points or (total > max_bytes and ids):
                        break
                cursor = last_id
                if len(ids) >= max_points or total > max_bytes:
                    break
        count = within_bytes(map(len, payloads), max_bytes)
        return ids[:count], times[:count], payloads[:count]

    def _gone(self, ids: Sequence[int], want: bool) -> list[Taken]:
        """Mark points as no longer pending; return them (``want``) oldest first.

        Whole segments are deleted; of the others the offsets gone are
        recorded in ``partial``. Returns the points that were still pending
        (with payloads only when ``want``).
        """
        ordered = sorted(set(ids))
        if not ordered:
            return []
        segments = self.conn.execute(
            "SELECT s.last_id, s.count, s.nbytes, s.size, s.attempts, p.live, p.nbytes, p.gone"
            " FROM segments s LEFT JOIN partial p USING (last_id)"
            " WHERE s.last_id >= ? AND s.last_id < ? AND s.last_id - s.count < ?"
            " ORDER BY s.last_id",
            (ordered[0], ordered[-1] + self._max_count, ordered[-1]),
        ).fetchall()
        taken: list[Taken] = []
        removed: list[tuple[int, int]] = []  # (first, last) of whole segments
        for (
            last_id,
            count,
            nbytes,
            size,
            attempts,
            partial_live,
            partial_bytes,
            gone_blob,
        ) in segments:
            first = last_id - count + 1
            inside = ordered[bisect_left(ordered, first) : bisect_right(ordered, last_id)]
            if not inside:
                continue
            gone = decode_offsets(gone_blob)
            new = [i - first for i in inside if i - first not in gone]
            if not new:
                continue
            live = count if partial_live is None else partial_live
            live_bytes = nbytes if partial_bytes is None else partial_bytes
            whole = len(new) == live
            if want or not whole:
                seg_times, seg_payloads = self._decode(last_id)
                freed = sum(len(seg_payloads[offset]) for offset in new)
                if want:
                    taken.extend((first + o, seg_times[o], seg_payloads[o], attempts) for o in new)
            else:
                freed = live_bytes
            self.count -= len(new)
            self.nbytes -= freed
            if whole:
                removed.append((first, last_id))
                self.disk_bytes -= size
            else:
                gone.update(new)
                earliest = min(t for o, t in enumerate(seg_times) if o not in gone)
                self.conn.execute(
                    "INSERT INTO partial (last_id, live, nbytes, time_min, gone)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(last_id) DO UPDATE SET"
                    " live = excluded.live, nbytes = excluded.nbytes,"
                    " time_min = excluded.time_min, gone = excluded.gone",
                    (
                        last_id,
                        live - len(new),
                        live_bytes - freed,
                        earliest,
                        encode_offsets(list(gone)),
                    ),
                )
        # Runs of whole segments go in one range delete each.
        runs: list[list[int]] = []
        for first, last in removed:
            if runs and runs[-1][1] == first - 1:
                runs[-1][1] = last
            else:
                runs.append([first, last])
        for first, last in runs:
            self.conn.execute("DELETE FROM segments WHERE last_id BETWEEN ? AND ?", (first, last))
            self.conn.execute("DELETE FROM partial WHERE last_id BETWEEN ? AND ?", (first, last))
        return taken

    def remove(self, ids: Sequence[int]) -> int:
        """Delete pending points by id; return how many were pending."""
        before = self.count
        self._gone(ids, want=False)
        return before - self.count

    def take(self, ids: Sequence[int]) -> list[Taken]:
        """Delete pending points by id and return them."""
        return self._gone(ids, want=True)

    def oldest(self) -> tuple[int, float] | None:
        """``(time_ns, enqueued_at)`` of the oldest pending segment (its earliest pending point)."""
        row: tuple[int, float] | None = self.conn.execute(
            "SELECT COALESCE(p.time_min, s.time_min), s.enqueued_at FROM segments s"
            " LEFT JOIN partial p USING (last_id) ORDER BY s.last_id LIMIT 1"
        ).fetchone()
        return row

    # ------------------------------------------------------------------ dead letters

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

    # ------------------------------------------------------------------ meta

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
