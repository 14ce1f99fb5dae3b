"""Row types and the storage protocol shared by the spool's stores and its facade."""

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
import itertools
from itertools import accumulate
from operator import itemgetter
import sqlite3
from typing import Final, NamedTuple, Protocol, Self

MiB: Final = 1024 * 1024
DEFAULT_MAX_BYTES: Final = 512 * MiB
DEFAULT_MAX_DEAD_LETTER_BYTES: Final = 64 * MiB
DEFAULT_RECOVER_AFTER: Final = 300.0
#: RAM the memory fallback may use (rows and dead letters together).
DEFAULT_MAX_MEMORY_BYTES: Final = 32 * MiB
# Memory-mode ids live far above any disk id, so a delete() for ids peeked in
# the other mode can never hit an unrelated row (it is a harmless no-op).
MEMORY_ID_BASE: Final = 1 << 62

STORAGE_ERRORS: Final = (sqlite3.Error, OSError)
# The payload column of a (time_ns, payload) row or of a NewRow.
PAYLOAD: Final = itemgetter(1)
# Store serial numbers (Batch.generation): never reused within a process.
SERIALS: Final = itertools.count(1)


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
    #: Damaged database files found (persisted), and rows read back from them
    #: into a fresh file / rows that could not be read (counted in ``dropped_total``).
    corrupt_files: int = 0
    salvaged_total: int = 0
    salvage_lost: int = 0
    #: The last damaged file: when it was found (wall seconds) and its rows saved / lost.
    last_corrupt_at: float | None = None
    last_salvaged: int = 0
    last_salvage_lost: int = 0
    #: Bytes the pending points take on disk (compressed segments; 0 in memory).
    disk_bytes: int = 0


# One row waiting to be admitted: (time_ns, payload, enqueued_at, attempts).
type NewRow = tuple[int, bytes, float, int]
# A dead letter waiting to be stored: (time_ns, payload, reason, category, at, attempts).
type NewDead = tuple[int, bytes, str, str, float, int]
# Pending rows as columns: (ids, times_ns, payloads).
type Columns = tuple[list[int], list[int], list[bytes]]
# A row taken out of pending: (id, time_ns, payload, attempts).
type Taken = tuple[int, int, bytes, int]


class Store(Protocol):
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
    #: Bytes a row costs on top of its payload in ``nbytes`` / ``dl_bytes``.
    row_cost: int
    #: Bytes the pending points take on disk (0 in memory).
    disk_bytes: int

    def transaction(self) -> AbstractContextManager[None]:
        """Run the enclosed operations atomically."""

    def insert(self, rows: Sequence[NewRow]) -> None:
        """Append rows to pending."""

    def insert_new(self, rows: Sequence[tuple[int, bytes]], enqueued_at: float) -> int:
        """Append new ``(time_ns, payload)`` rows (no earlier attempts); return the last id."""

    def ids_of_last(self, count: int, last_id: int) -> bool:
        """Whether the newest ``count`` pending rows have the ids up to ``last_id``."""

    def head(self, limit: int) -> list[tuple[int, int, float, int]]:
        """Oldest units of deletion: ``(last id, bytes, enqueued_at, points)``.

        A unit is one row in memory, one segment on disk.
        """

    def compact(self, force: bool = False) -> int:
        """Merge small units written since the last call (see ``SqliteStore.compact``)."""

    def head_points(self, limit: int) -> list[tuple[int, int]]:
        """Oldest pending points: ``(id, size)``."""

    def delete_through(self, last_id: int, count: int, nbytes: int) -> None:
        """Delete pending units through ``last_id`` (count/bytes known by the caller)."""

    def peek(self, max_points: int, max_bytes: int, after: int) -> Columns:
        """Oldest pending rows with id > ``after`` within the limits (at least one)."""

    def take(self, ids: Sequence[int]) -> list[Taken]:
        """Delete pending rows by id and return them (oldest first)."""

    def remove(self, ids: Sequence[int]) -> int:
        """Delete pending rows by id; return how many existed."""

    def oldest(self) -> tuple[int, float] | None:
        """``(time_ns, enqueued_at)`` of the oldest pending row."""

    def insert_dead(self, rows: Sequence[NewDead]) -> None:
        """Append dead letters."""

    def dead_head(self, limit: int) -> list[DeadLetter]:
        """Oldest dead letters."""

    def delete_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Delete the given dead letters."""

    def purge_dead(self) -> int:
        """Delete every dead letter; return how many."""

    def set_meta(self, key: str, value: int) -> None:
        """Persist a counter."""

    def write_gaps(self, gaps: Sequence[tuple[int, int]]) -> None:
        """Persist the gaps (replacing those stored)."""


def within_bytes(sizes: Iterable[int], max_bytes: int) -> int:
    """How many leading items fit in ``max_bytes`` together; at least one, if there is one.

    At least one, so that a point larger than a whole batch cannot block the queue.
    """
    ends = list(accumulate(sizes))
    return max(1, bisect_right(ends, max_bytes)) if ends else 0
