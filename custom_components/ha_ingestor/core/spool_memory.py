"""The in-memory store of the spool: the same operations on ordered dicts."""

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Final

from .spool_types import (
    MEMORY_ID_BASE,
    SERIALS,
    Columns,
    DeadLetter,
    NewDead,
    NewRow,
    Taken,
    within_bytes,
)

#: What a row costs in RAM besides its payload: its tuple, the payload's and
#: timestamp's object headers and its ordered-dict entry (measured: about 290 B).
ROW_COST: Final = 300


class MemoryStore:
    """The same operations on dicts (insertion order = id order)."""

    def __init__(self) -> None:
        """Start empty; ids count up from MEMORY_ID_BASE."""
        # OrderedDict: O(1) removal from the front, unlike dict's dummy slots.
        self.pending: OrderedDict[int, NewRow] = OrderedDict()
        self.dead: OrderedDict[int, DeadLetter] = OrderedDict()
        self.count = self.nbytes = self.dl_count = self.dl_bytes = 0
        self.serial = next(SERIALS)
        #: ``nbytes`` / ``dl_bytes`` estimate RAM, so the budget bounds the real use.
        self.row_cost = ROW_COST
        self.disk_bytes = 0
        self._next_id = MEMORY_ID_BASE

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Nothing to roll back: memory operations do not fail half-way."""
        yield

    def insert(self, rows: Sequence[NewRow]) -> None:
        """Append rows to pending."""
        for row in rows:
            self.pending[self._new_id()] = row
            self.nbytes += len(row[1]) + ROW_COST
        self.count += len(rows)

    def insert_new(self, rows: Sequence[tuple[int, bytes]], enqueued_at: float) -> int:
        """Append new ``(time_ns, payload)`` rows to pending; return the last id."""
        self.insert([(time_ns, bytes(payload), enqueued_at, 0) for time_ns, payload in rows])
        return self._next_id

    def ids_of_last(self, count: int, last_id: int) -> bool:
        """Whether ``last_id`` is the newest id: ids here are handed out one by one."""
        return last_id == self._next_id

    def head(self, limit: int) -> list[tuple[int, int, float, int]]:
        """Oldest pending ``(id, size, enqueued_at, 1)``: each row on its own."""
        out: list[tuple[int, int, float, int]] = []
        for row_id, (_, payload, enqueued_at, _) in self.pending.items():
            if len(out) >= limit:
                break
            out.append((row_id, len(payload) + ROW_COST, enqueued_at, 1))
        return out

    def compact(self, force: bool = False) -> int:
        """Nothing to merge: rows in memory are not compressed."""
        return 0

    def head_points(self, limit: int) -> list[tuple[int, int]]:
        """Oldest pending ``(id, size)``."""
        return [(row_id, size) for row_id, size, _, _ in self.head(limit)]

    def delete_through(self, last_id: int, count: int, nbytes: int) -> None:
        """Delete pending rows with id <= last_id."""
        while self.pending and next(iter(self.pending)) <= last_id:
            self.pending.popitem(last=False)
        self.count -= count
        self.nbytes -= nbytes

    def peek(self, max_points: int, max_bytes: int, after: int) -> Columns:
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

    def take(self, ids: Sequence[int]) -> list[Taken]:
        """Delete pending rows by id and return them."""
        taken: list[Taken] = []
        for row_id in sorted(set(ids)):
            row = self.pending.pop(row_id, None)
            if row is not None:
                taken.append((row_id, row[0], row[1], row[3]))
                self.count -= 1
                self.nbytes -= len(row[1]) + ROW_COST
        return taken

    def oldest(self) -> tuple[int, float] | None:
        """``(time_ns, enqueued_at)`` of the oldest pending row."""
        for time_ns, _, enqueued_at, _ in self.pending.values():
            return time_ns, enqueued_at
        return None

    def insert_dead(self, rows: Sequence[NewDead]) -> None:
        """Append dead letters."""
        for t, p, r, c, at, n in rows:
            row_id = self._new_id()
            self.dead[row_id] = DeadLetter(row_id, t, p, r, c, at, n)
            self.dl_bytes += len(p) + ROW_COST
        self.dl_count += len(rows)

    def dead_head(self, limit: int) -> list[DeadLetter]:
        """Oldest dead letters."""
        return list(self.dead.values())[:limit]

    def delete_dead(self, letters: Sequence[DeadLetter]) -> None:
        """Delete the given dead letters."""
        for letter in letters:
            del self.dead[letter.id]
            self.dl_count -= 1
            self.dl_bytes -= len(letter.payload) + ROW_COST

    def purge_dead(self) -> int:
        """Delete every dead letter."""
        purged = self.dl_count
        self.dead.clear()
        self.dl_count = self.dl_bytes = 0
        return purged

    def set_meta(self, key: str, value: int) -> None:
        """Counters are not persisted in memory."""

    def write_gaps(self, gaps: Sequence[tuple[int, int]]) -> None:
        """Gaps are not persisted in memory (the spool keeps them)."""
