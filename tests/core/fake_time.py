"""Driving code that sleeps on a FakeClock while real I/O (threads, sockets) happens."""

import asyncio
from collections.abc import Callable
import heapq
import itertools


class FakeClock:
    """A clock that only moves when a test advances it.

    ``sleep`` parks the caller until :meth:`advance` moves time past its
    deadline, so a 24 hour outage runs in milliseconds.
    """

    def __init__(self, start: float = 1_000.0, wall_offset: float = 1_700_000_000.0) -> None:
        """Start the fake clock at ``start`` monotonic seconds."""
        self._now = start
        self._wall_offset = wall_offset
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        """Return the fake monotonic time."""
        return self._now

    def time(self) -> float:
        """Return the fake wall time."""
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds``."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    @property
    def pending_sleepers(self) -> int:
        """Number of coroutines currently sleeping on this clock."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    def next_deadline(self) -> float | None:
        """Earliest deadline of a live sleeper, if any."""
        for deadline, _, fut in sorted(self._sleepers):
            if not fut.done():
                return deadline
        return None

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline passed."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def run_for(self, seconds: float, step: float | None = None) -> None:
        """Advance ``seconds`` jumping sleeper to sleeper, letting tasks run between."""
        end = self._now + seconds
        while True:
            for _ in range(5):
                await asyncio.sleep(0)
            deadline = self.next_deadline()
            if deadline is None or deadline > end:
                break
            target = deadline if step is None else min(deadline, self._now + step)
            self.advance(max(0.0, target - self._now))
        self.advance(max(0.0, end - self._now))
        for _ in range(5):
            await asyncio.sleep(0)


async def advance_until(
    clock: FakeClock, condition: Callable[[], bool], *, limit: int = 3000, step: float = 0.01
) -> None:
    """Let real I/O run ``step`` s, then move ``clock`` to the next sleeper, until ``condition``.

    ``condition`` is checked before each advance too, so the clock never moves
    past the moment it first holds.
    """
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(step)
        if condition():
            return
        deadline = clock.next_deadline()
        if deadline is not None:
            clock.advance(max(0.0, deadline - clock.monotonic()))
    raise AssertionError("condition not reached")
