"""The injectable clock: a protocol and the real one (tests bring their own)."""

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Time source used by the core; monotonic for intervals, wall for display."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (only for reporting)."""

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` on this clock."""


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def time(self) -> float:
        """Return :func:`time.time`."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Sleep with asyncio."""
        await asyncio.sleep(max(0.0, seconds))
