"""Driving code that sleeps on a FakeClock while real I/O (threads, sockets) happens."""

import asyncio
from collections.abc import Callable

from custom_components.ha_ingestor.core.clock import FakeClock


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
