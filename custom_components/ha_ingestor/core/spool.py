"""Durable spool of encoded points: SQLite (WAL) with an in-memory fallback.

Points already encoded for the destination, oldest first, each with an id of
its own. On disk they are stored in segments: the points of one append (up to
``segment_points``) compressed into one row (see ``spool_sqlite``), so a flush
is one insert and a delivered flush one delete. Points leave the queue only
when the destination accepted them (:meth:`Spool.delete`) or when they are
quarantined into ``dead_letter`` (one row per point) as poison; a segment part
of whose points left keeps a record of which, so they are neither lost nor
sent again after a restart.

The API is synchronous and meant to be called from one executor thread at a
time; a lock still serialises calls so two executor jobs cannot interleave.

Storage trouble (``sqlite3.Error`` / ``OSError``: read-only or full disk,
vanished directory) never reaches the caller: the spool logs once, switches to
an in-memory store with the same API and its own small RAM budget
(``max_memory_bytes``; the oldest rows beyond it are dropped and counted),
reports ``storage_failed`` in :meth:`Spool.stats`, and moves the memory rows
back to disk in bounded chunks on :meth:`Spool.try_recover` (also attempted
automatically every ``recover_after`` seconds). Rows left on a failed disk are
reported as ``stranded_count`` and delivered again after recovery. Rows
dropped outside :meth:`Spool.append` are handed out by
:meth:`Spool.take_unreported_drops`; the time ranges of all dropped rows by
:meth:`Spool.gaps` (persisted, merged, bounded).

A damaged database file (found at open, or by any later operation) is renamed
``<name>.corrupt-<timestamp>``, a fresh file is created, every row SQLite can
still read is copied into it (see ``spool_salvage``), the rows that could not
be read are counted as dropped, and the renamed file is deleted. A file
written by a newer format is renamed ``<name>.newer-<timestamp>`` and kept.

Limits count encoded payload bytes, as sent to the destination; on disk the
segments take a fraction of that (``SpoolStats.disk_bytes``). Drop-oldest
removes whole segments while that frees no more than needed, then single
points of the oldest one. ``max_age_seconds`` applies to the time a point was
enqueued (the same for a segment's points) and is enforced in queue order.
"""

from bisect import bisect_right
from collections.abc import Callable, Sequence
from contextlib import suppress
from functools import partial
from itertools import accumulate, islice
import logging
from operator import itemgetter
from pathlib import Path
import sqlite3
import threading
import time
from types import TracebackType
from typing import Any, Final, Literal, Self

from .spool_memory import MemoryStore
from .spool_salvage import salvage
from .spool_sqlite import (
    DEFAULT_SEGMENT_POINTS,
    SCHEMA_VERSION,
    NewerSchemaError,
    SqliteStore,
    is_corrupt,
)
from .spool_types import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEAD_LETTER_BYTES,
    DEFAULT_MAX_MEMORY_BYTES,
    DEFAULT_RECOVER_AFTER,
    MEMORY_ID_BASE,
    PAYLOAD,
    STORAGE_ERRORS,
    AppendResult,
    Batch,
    DeadLetter,
    NewDead,
    NewRow,
    OverflowPolicy,
    RowIds,
    Rows,
    SpoolRow,
    SpoolStats,
    Store,
    within_bytes,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEAD_LETTER_BYTES",
    "DEFAULT_MAX_MEMORY_BYTES",
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

_TIME: Final = itemgetter(0)
_SCAN: Final = 1000  # rows per head scan when evicting
#: Most gaps kept (see merge_gaps).
MAX_GAPS: Final = 100
#: Rows moved from memory back to disk per transaction (see Spool.try_recover).
RECOVER_CHUNK: Final = 5000
_META_DROPPED: Final = "dropped_total"
_META_DEAD_DROPPED: Final = "dead_letter_dropped"
# History of damaged files, persisted so the repair and the counters survive a restart.
_META_CORRUPT: Final = ("corrupt_files", "salvaged_total", "salvage_lost")
_META_LAST_CORRUPT: Final = ("last_corrupt_at", "last_salvaged", "last_salvage_lost")

# SpoolRow._make without its Python frame: a C call per fetched row.
_spool_row: Final = partial(tuple.__new__, SpoolRow)


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    """Open the database (module-level so tests can inject a failing one)."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)


def merge_gaps(gaps: Sequence[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """Sort and merge overlapping or adjacent ranges; beyond ``limit``, join the closest.

    Joining two ranges also covers the time between them: a backfill of it is
    a replay of points the destination already has (same timestamps overwrite).
    """
    merged: list[tuple[int, int]] = []
    for start, end in sorted(gaps):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    while len(merged) > max(1, limit):
        closest = min(range(len(merged) - 1), key=lambda i: merged[i + 1][0] - merged[i][1])
        merged[closest : closest + 2] = [(merged[closest][0], merged[closest + 1][1])]
    return merged


def _side_files(path: Path) -> list[Path]:
    """Return a database file and its WAL and shared-memory files."""
    return [path.with_name(path.name + extra) for extra in ("", "-wal", "-shm")]


def spool_files(path: Path) -> list[Path]:
    """Every file a spool at ``path`` may leave: the database, its WAL/SHM, renamed copies."""
    found = _side_files(path)
    if path.parent.is_dir():
        found += [
            p
            for p in path.parent.iterdir()
            if p.name.startswith((f"{path.name}.corrupt-", f"{path.name}.newer-"))
        ]
    return found


def _new_dead(letter: DeadLetter) -> NewDead:
    """Return a dead letter as another store inserts it."""
    return (
        letter.time_ns,
        letter.payload,
        letter.reason,
        letter.category,
        letter.quarantined_at,
        letter.attempts,
    )


def _applies(ids: RowIds | None, store: Store) -> bool:
    """Whether ``ids`` name rows of ``store`` (ids of another store mean nothing)."""
    return ids is not None and bool(ids.ids) and ids.generation == store.serial


class Spool:
    """Durable FIFO of encoded points with a dead-letter table.

    ``max_bytes`` bounds the pending payload bytes, ``max_age_seconds`` (if
    set) how long a row may wait; ``overflow`` decides which rows give way.
    ``max_memory_bytes`` bounds the RAM of the memory fallback (rows and dead
    letters, object overhead included); rows beyond it are dropped by the same
    policy and counted.
    ``synchronous="FULL"`` also survives power loss (slower); ``NORMAL``
    survives process crashes. ``clock`` (wall seconds) stamps rows.
    ``segment_points`` bounds the points stored in one segment on disk;
    ``max_disk_bytes`` (if set) bounds the bytes the segments take on disk, by
    the same policy, a whole segment at a time (the newest always stays).
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_seconds: float | None = None,
        overflow: OverflowPolicy = OverflowPolicy.DROP_OLDEST,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
        max_dead_letter_bytes: int = DEFAULT_MAX_DEAD_LETTER_BYTES,
        max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
        max_disk_bytes: int | None = None,
        recover_after: float | None = DEFAULT_RECOVER_AFTER,
        clock: Callable[[], float] = time.time,
        segment_points: int = DEFAULT_SEGMENT_POINTS,
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
        self.max_memory_bytes = max_memory_bytes
        self.max_disk_bytes = max_disk_bytes
        self.recover_after = recover_after
        self.segment_points = segment_points
        self._clock = clock
        self._lock = threading.RLock()
        self._disk: SqliteStore | None = None
        self._memory: MemoryStore | None = None
        self._dropped_total = 0
        self._dead_dropped = 0
        self._meta_loaded = False
        self._stranded = 0
        self._failed_at: float | None = None
        self._last_error: str | None = None
        #: Persisted history of damaged files, by ``_META_CORRUPT`` / ``_META_LAST_CORRUPT`` key.
        self._corrupt: dict[str, int] = dict.fromkeys(_META_CORRUPT + _META_LAST_CORRUPT, 0)
        self._gaps: list[tuple[int, int]] = []
        # Rows dropped outside an append's result (salvage, recovery, close in
        # memory): handed to the caller by take_unreported_drops().
        self._unreported = 0

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
            except STORAGE_ERRORS as exc:
                self._memory = MemoryStore()
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
                    self._unreported += self._memory.count + self._memory.dl_count
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
                except STORAGE_ERRORS as exc:
                    _LOGGER.warning("Spool %s: closing the database failed: %s", self.path, exc)

    def _open_disk(self) -> SqliteStore:
        """Open the SQLite store; a damaged file is replaced by a fresh one with its rows."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return SqliteStore.open(
                self.path, self.synchronous, _sqlite_connect, self.segment_points
            )
        except NewerSchemaError as exc:
            newer = exc.version
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
            return self._replace_corrupt(exc, None)
        moved = self._move_aside("newer")
        _LOGGER.error(
            "Spool %s was written by a newer version of HA Ingestor (format %d; this one"
            " reads up to %d) and is not downgraded: moved it to %s and started a new one."
            " Reinstall the newer version and move the file back to deliver its rows",
            self.path,
            newer,
            SCHEMA_VERSION,
            moved,
        )
        return SqliteStore.open(self.path, self.synchronous, _sqlite_connect, self.segment_points)

    def _replace_corrupt(self, exc: BaseException, known: SqliteStore | None) -> SqliteStore:
        """Move a damaged file aside, salvage its rows into a fresh one, delete it.

        ``known`` is the store that was open on the file: its counters say
        exactly how many rows the file held. Storage errors of the fresh file
        propagate (the caller falls back to memory; the renamed file is kept).
        """
        expected: tuple[int | None, int | None] = (None, None)
        if known is not None:
            expected = (known.count, known.dl_count)
            with suppress(*STORAGE_ERRORS):
                known.conn.close()
        elif self._stranded:
            expected = (self._stranded, None)
        moved = self._move_aside("corrupt")
        disk = SqliteStore.open(self.path, self.synchronous, _sqlite_connect, self.segment_points)
        try:
            dropped = 0

            def pending(rows: list[NewRow]) -> None:
                nonlocal dropped
                with disk.transaction():
                    dropped += self._admit(disk, rows, disk.insert)[1]

            def dead(rows: list[NewDead]) -> None:
                with disk.transaction():
                    disk.insert_dead(rows)
                    self._trim_dead(disk)

            saved = salvage(moved, _sqlite_connect, pending, dead)
            lost = saved.lost(*expected)
            if not self._meta_loaded:
                self._dropped_total += saved.meta.get(_META_DROPPED, 0)
                self._dead_dropped += saved.meta.get(_META_DEAD_DROPPED, 0)
                for key in _META_CORRUPT:
                    self._corrupt[key] += saved.meta.get(key, 0)
                self._gaps = merge_gaps([*self._gaps, *saved.gaps], MAX_GAPS)
                self._meta_loaded = True
            rescued = saved.pending + saved.dead
            for key, add in zip(_META_CORRUPT, (1, rescued, lost), strict=True):
                self._corrupt[key] += add
            last = (int(self._clock()), rescued, lost)
            self._corrupt.update(zip(_META_LAST_CORRUPT, last, strict=True))
            with disk.transaction():
                self._count_dropped(disk, dropped + lost)
                disk.set_meta(_META_DEAD_DROPPED, self._dead_dropped)
                for key, value in self._corrupt.items():
                    disk.set_meta(key, value)
                disk.write_gaps(self._gaps)
        except BaseException:
            with suppress(*STORAGE_ERRORS):
                disk.conn.close()
            raise
        self._stranded = 0
        self._unreported += dropped + lost
        for side in _side_files(moved):
            with suppress(OSError):
                side.unlink()
        _LOGGER.error(
            "Spool database %s is damaged (%s): started a new one and moved %d pending rows"
            " and %d dead letters into it; %d rows could not be read and are counted as"
            " dropped",
            self.path,
            exc,
            saved.pending,
            saved.dead,
            lost,
        )
        return disk

    def _move_aside(self, why: str) -> Path:
        """Rename the database (and its WAL/SHM files) to ``*.<why>-<ts>``."""
        target = self.path.with_name(f"{self.path.name}.{why}-{int(self._clock())}")
        for extra in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + extra)
            if side.exists():
                side.rename(target.with_name(target.name + extra))
        self.path.rename(target)
        return target

    def _load_meta(self, disk: SqliteStore) -> None:
        """Merge the persisted counters with those counted so far."""
        if not self._meta_loaded:
            self._dropped_total += disk.get_meta(_META_DROPPED)
            self._dead_dropped += disk.get_meta(_META_DEAD_DROPPED)
            for key in self._corrupt:
                self._corrupt[key] += disk.get_meta(key)
            self._gaps = merge_gaps([*self._gaps, *disk.read_gaps()], MAX_GAPS)
            self._meta_loaded = True

    # ------------------------------------------------------------------ failure handling

    def _record_failure(self, exc: BaseException, operation: str) -> None:
        """Remember the error; log loudly only on the switch to memory."""
        self._last_error = f"{type(exc).__name__}: {exc}"[:300]
        self._failed_at = self._clock()
        _LOGGER.error(
            "Spool %s: storage failed during %s (%s); keeping data in memory (up to %d"
            " bytes, the oldest dropped beyond) until the disk works again",
            self.path,
            operation,
            self._last_error,
            self.max_memory_bytes,
        )

    def _fail_over(self, disk: SqliteStore, exc: BaseException, operation: str) -> MemoryStore:
        """Switch from the failing disk to a fresh memory store."""
        self._disk = None
        self._stranded += disk.count
        with suppress(*STORAGE_ERRORS):
            disk.conn.close()
        self._memory = MemoryStore()
        self._record_failure(exc, operation)
        return self._memory

    def try_recover(self) -> bool:
        """Reopen the disk and move memory rows back to it; True when on disk.

        Rows move oldest first in transactions of ``RECOVER_CHUNK`` rows, so a
        disk that fills up again stops the move part-way: what was moved stays
        on disk (stranded until the next recovery), the rest stays in memory,
        and the last free space is not taken in one go.
        """
        with self._lock:
            memory = self._memory
            if memory is None:
                return self._disk is not None
            try:
                disk = self._open_disk()
                self._load_meta(disk)
            except STORAGE_ERRORS as exc:
                self._failed_at = self._clock()
                self._last_error = f"{type(exc).__name__}: {exc}"[:300]
                _LOGGER.debug("Spool %s: disk still unusable: %s", self.path, exc)
                return False
            moved = dropped = dead = 0
            try:
                with disk.transaction():  # what was dropped while in memory
                    disk.set_meta(_META_DROPPED, self._dropped_total)
                    disk.set_meta(_META_DEAD_DROPPED, self._dead_dropped)
                    self._gaps = merge_gaps([*self._gaps, *disk.read_gaps()], MAX_GAPS)
                    disk.write_gaps(self._gaps)
                while memory.pending:
                    ids = list(islice(memory.pending, RECOVER_CHUNK))
                    rows = [memory.pending[row_id] for row_id in ids]
                    saved = self._dropped_total
                    try:
                        with disk.transaction():
                            head = disk.oldest()
                            refused = self._admit(disk, rows, disk.insert)[1]
                            self._count_dropped(disk, refused)
                            if refused:
                                gap = self._gap_of(disk, head[0] if head else None, rows)
                                self._add_gap(disk, gap)
                    except BaseException:
                        self._dropped_total = saved
                        raise
                    memory.take(ids)
                    self._unreported += refused
                    moved += len(rows) - refused
                    dropped += refused
                while memory.dead:
                    letters = list(islice(memory.dead.values(), RECOVER_CHUNK))
                    saved = self._dead_dropped
                    try:
                        with disk.transaction():
                            disk.insert_dead([_new_dead(letter) for letter in letters])
                            self._trim_dead(disk)
                    except BaseException:
                        self._dead_dropped = saved
                        raise
                    memory.delete_dead(letters)
                    dead += len(letters)
            except STORAGE_ERRORS as exc:
                # Rows moved so far are on the disk: served again after recovery.
                self._stranded = disk.count
                with suppress(*STORAGE_ERRORS):
                    disk.conn.close()
                self._failed_at = self._clock()
                self._last_error = f"{type(exc).__name__}: {exc}"[:300]
                _LOGGER.debug(
                    "Spool %s: moving rows back to disk failed after %d rows: %s",
                    self.path,
                    moved,
                    exc,
                )
                return False
            self._disk, self._memory = disk, None
            self._stranded = 0
            self._failed_at = None
            _LOGGER.info(
                "Spool %s: disk usable again; moved %d rows and %d dead letters back"
                " (%d dropped by the size limit)",
                self.path,
                moved,
                dead,
                dropped,
            )
            return True

    def _run[R](
        self, operation: str, action: Callable[[Store], R], *, read_only: bool = False
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
                return self._on_disk(disk, action, read_only=read_only)
            except STORAGE_ERRORS as exc:
                self._dropped_total, self._dead_dropped = saved
                failure: BaseException = exc
                if is_corrupt(exc):
                    # A damaged file stays damaged: recreate it with what can be
                    # read rather than loop in memory over it.
                    try:
                        self._disk = disk = self._replace_corrupt(exc, disk)
                        return self._on_disk(disk, action, read_only=read_only)
                    except STORAGE_ERRORS as again:
                        self._dropped_total, self._dead_dropped = saved
                        failure = again
                memory = self._fail_over(disk, failure, operation)
            with memory.transaction():
                return action(memory)

    @staticmethod
    def _on_disk[R](disk: SqliteStore, action: Callable[[Store], R], *, read_only: bool) -> R:
        if read_only:
            return action(disk)
        with disk.transaction():
            return action(disk)

    # ------------------------------------------------------------------ policy helpers

    def _count_dropped(self, store: Store, dropped: int) -> None:
        """Add to the persisted drop counter (same transaction as the drop)."""
        if dropped:
            self._dropped_total += dropped
            store.set_meta(_META_DROPPED, self._dropped_total)

    def _gap_of(
        self, store: Store, oldest_before: int | None, rows: Sequence[tuple[Any, ...]]
    ) -> tuple[int, int]:
        """Return the time range (ns, inclusive) an append that dropped rows left out."""
        times = list(map(_TIME, rows))
        if self.overflow is OverflowPolicy.DROP_NEWEST:
            return min(times), max(times)
        # The oldest rows went: everything between the old head and the new one.
        oldest_after = store.oldest()
        start = oldest_before if oldest_before is not None else min(times)
        return start, oldest_after[0] if oldest_after is not None else max(times)

    def _add_gap(self, store: Store, gap: tuple[int, int]) -> None:
        """Merge ``gap`` into the persisted gaps (same transaction as the drop)."""
        self._gaps = merge_gaps([*self._gaps, gap], MAX_GAPS)
        store.write_gaps(self._gaps)

    def _evict(self, store: Store, excess: int) -> int:
        """Delete the oldest points until ``excess`` bytes are freed; return the count.

        Whole units (rows, segments) go while they free no more than needed; of
        a segment holding more, only its oldest points go, one by one.
        """
        freed = count = 0
        while freed < excess:
            head = store.head(_SCAN)
            last_id = None
            chunk_count = chunk_bytes = 0
            for unit_id, size, _, points in head:
                if freed + chunk_bytes >= excess:
                    break
                if points > 1 and freed + chunk_bytes + size > excess:
                    break
                last_id = unit_id
                chunk_count, chunk_bytes = chunk_count + points, chunk_bytes + size
            if last_id is not None:
                store.delete_through(last_id, chunk_count, chunk_bytes)
                freed += chunk_bytes
                count += chunk_count
                continue
            ids: list[int] = []
            if head:
                for point_id, size in store.head_points(head[0][3]):
                    if freed >= excess:
                        break
                    ids.append(point_id)
                    freed += size
            if not ids:
                break  # counters said there was more; never loop forever
            count += store.remove(ids)
        return count

    def _expire(self, store: Store) -> int:
        """Delete rows older than ``max_age_seconds`` (queue order); return the count."""
        if self.max_age_seconds is None:
            return 0
        cutoff = self._clock() - self.max_age_seconds
        count = 0
        while True:
            expired: list[tuple[int, int, int]] = []
            for row_id, size, enqueued_at, points in store.head(_SCAN):
                if enqueued_at >= cutoff:
                    break  # ages are checked in queue order
                expired.append((row_id, size, points))
            if not expired:
                return count
            points = sum(p for _, _, p in expired)
            store.delete_through(expired[-1][0], points, sum(s for _, s, _ in expired))
            count += points

    def _pending_limit(self, store: Store) -> int:
        """Bytes ``store`` may hold in pending rows.

        In memory three quarters of the RAM budget, the rest is for dead
        letters: together they stay within it.
        """
        if store is not self._memory:
            return self.max_bytes
        return self.max_memory_bytes - self.max_memory_bytes // 4

    def _dead_limit(self, store: Store) -> int:
        """Bytes ``store`` may hold in dead letters (see :meth:`_pending_limit`)."""
        if store is not self._memory:
            return self.max_dead_letter_bytes
        return min(self.max_dead_letter_bytes, self.max_memory_bytes // 4)

    def _admit[Row: tuple[Any, ...]](
        self, store: Store, rows: Sequence[Row], insert: Callable[[Sequence[Row]], None]
    ) -> tuple[int, int]:
        """Store ``rows`` (payload at index 1) with ``insert`` under the size limit and policy.

        Returns (stored, dropped).
        """
        # Column-wise builtins (map, sum, max) instead of loops over the rows: an
        # append takes thousands of rows while the event loop waits for the GIL.
        limit = self._pending_limit(store)
        sizes = list(map(len, map(PAYLOAD, rows)))
        if store.row_cost:
            sizes = [size + store.row_cost for size in sizes]
        if sizes and max(sizes) <= limit:
            fitting: Sequence[Row] = rows
        else:
            fitting = [row for row, size in zip(rows, sizes, strict=True) if size <= limit]
            sizes = [size for size in sizes if size <= limit]
        dropped = len(rows) - len(fitting)  # a single row larger than the spool
        accepted: Sequence[Row]
        if self.overflow is OverflowPolicy.DROP_NEWEST:
            # Refuse the first row that does not fit and everything after it (order kept).
            room = limit - store.nbytes
            accepted = fitting[: bisect_right(list(accumulate(sizes)), room)]
            dropped += len(fitting) - len(accepted)
        else:
            total = sum(sizes)
            start = 0
            while total > limit:  # the batch alone is too big: oldest go first
                total -= sizes[start]
                start += 1
            accepted = fitting[start:] if start else fitting
            dropped += start
            excess = store.nbytes + total - limit
            if excess > 0:
                dropped += self._evict(store, excess)
        if accepted:
            insert(accepted)
        return len(accepted), dropped

    def _trim_dead(self, store: Store) -> None:
        """Drop the oldest dead letters beyond their limit."""
        dropped = 0
        limit = self._dead_limit(store)
        while store.dl_bytes > limit:
            excess = store.dl_bytes - limit
            victims: list[DeadLetter] = []
            freed = 0
            for letter in store.dead_head(_SCAN):
                if freed >= excess:
                    break
                victims.append(letter)
                freed += len(letter.payload) + store.row_cost
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

        def action(store: Store) -> AppendResult:
            if _applies(delivered, store):
                assert delivered is not None
                store.remove(delivered.ids)
            if not rows:
                return AppendResult(0, 0, generation=store.serial)
            now = self._clock()
            oldest_before = None
            incoming = sum(map(len, map(PAYLOAD, rows))) + store.row_cost * len(rows)
            limit = self._pending_limit(store)
            disk_limit = self.max_disk_bytes if store is self._disk else None
            near_disk_limit = disk_limit is not None and store.disk_bytes + incoming > disk_limit
            if (
                self.max_age_seconds is not None
                or store.nbytes + incoming > limit
                or near_disk_limit
            ):
                oldest = store.oldest()  # for the caller's record of what was dropped
                oldest_before = oldest[0] if oldest else None
            dropped = self._expire(store)
            last_ids: list[int] = []
            if (
                disk_limit is not None
                and self.overflow is OverflowPolicy.DROP_NEWEST
                and store.disk_bytes >= disk_limit
            ):
                stored, refused = 0, len(rows)
            else:
                stored, refused = self._admit(
                    store, rows, lambda accepted: last_ids.append(store.insert_new(accepted, now))
                )
            store.compact()
            if disk_limit is not None and store.disk_bytes > disk_limit:
                assert self._disk is not None
                dropped += self._disk.evict_disk(store.disk_bytes - disk_limit)
            self._count_dropped(store, dropped + refused)
            if dropped + refused:
                self._add_gap(store, self._gap_of(store, oldest_before, rows))
            handed = Rows()
            if (
                hand_back
                and stored == len(rows)
                and last_ids
                and store.ids_of_last(stored, last_ids[0])
            ):
                last = last_ids[0]
                handed = Rows(range(last - stored + 1, last + 1), list(map(PAYLOAD, rows)))
            return AppendResult(stored, dropped + refused, oldest_before, handed, store.serial)

        return self._run("append", action)

    def enforce_limits(self) -> int:
        """Apply ``max_age_seconds`` now (e.g. periodically); return rows dropped."""

        def action(store: Store) -> int:
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

        def action(store: Store) -> Batch:
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

        def action(store: Store) -> int:
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

        def action(store: Store) -> int:
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

        def action(store: Store) -> int:
            now = self._clock()
            room = self._pending_limit(store) - store.nbytes
            moved = 0
            while True:
                batch: list[DeadLetter] = []
                for letter in store.dead_head(_SCAN):
                    if len(letter.payload) + store.row_cost > room:
                        break
                    batch.append(letter)
                    room -= len(letter.payload) + store.row_cost
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

        def action(store: Store) -> SpoolStats:
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
                corrupt_files=self._corrupt["corrupt_files"],
                salvaged_total=self._corrupt["salvaged_total"],
                salvage_lost=self._corrupt["salvage_lost"],
                last_corrupt_at=float(self._corrupt["last_corrupt_at"]) or None,
                last_salvaged=self._corrupt["last_salvaged"],
                last_salvage_lost=self._corrupt["last_salvage_lost"],
                disk_bytes=store.disk_bytes,
            )

        return self._run("stats", action, read_only=True)

    def gaps(self) -> list[tuple[int, int]]:
        """Time ranges (ns, inclusive) of rows the limits dropped: sorted, merged, at most MAX_GAPS.

        Persisted with the drops, so a backfill can replay them after a restart.
        """
        with self._lock:
            return list(self._gaps)

    def remove_gaps(self, gaps: Sequence[tuple[int, int]]) -> None:
        """Forget gaps that were replayed (others recorded meanwhile stay)."""
        done = set(gaps)
        if not done or not done.intersection(self.gaps()):
            return

        def action(store: Store) -> None:
            self._gaps = [gap for gap in self._gaps if gap not in done]
            store.write_gaps(self._gaps)

        self._run("remove_gaps", action)

    def take_unreported_drops(self) -> int:
        """Rows dropped since the last call that no append result reported.

        Salvage of a damaged file, moving memory rows back to disk under the
        size limit and closing while the disk is unusable drop rows outside
        :meth:`append`; the caller adds them to its dropped-events count.
        """
        with self._lock:
            dropped, self._unreported = self._unreported, 0
            return dropped

    @property
    def is_open(self) -> bool:
        """Whether the spool is open (it is closed at Home Assistant's final write)."""
        return self._disk is not None or self._memory is not None

    @property
    def storage_failed(self) -> bool:
        """Whether the spool currently runs in memory because the disk failed."""
        return self._memory is not None

    @property
    def last_storage_error(self) -> str | None:
        """The most recent storage error (type and message), if any."""
        return self._last_error
