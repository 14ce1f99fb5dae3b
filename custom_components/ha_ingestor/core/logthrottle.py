"""One log line per cause per interval, with how many were held back.

A destination that rejects a point per request, or a flush that meets
unencodable events every second, would otherwise write a line per event and
drown Home Assistant's log (and wear the SD card it lives on).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
import logging
import time

#: Seconds between two lines of the same cause.
DEFAULT_INTERVAL = 300.0


@dataclass(slots=True)
class _Cause:
    last: float
    held: int = 0


@dataclass(slots=True)
class ThrottledLog:
    """Log a message at most once per ``interval`` per cause key.

    The first occurrence is logged at once; later ones within the interval are
    counted, and the next line that gets through says how many were held back.
    """

    logger: logging.Logger
    interval: float = DEFAULT_INTERVAL
    monotonic: Callable[[], float] = time.monotonic
    _causes: dict[str, _Cause] = field(default_factory=dict)

    def log(self, level: int, cause: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log ``msg % args`` unless ``cause`` was logged within the interval; True when logged."""
        now = self.monotonic()
        seen = self._causes.get(cause)
        if seen is not None and now - seen.last < self.interval:
            seen.held += 1
            return False
        held = 0 if seen is None else seen.held
        self._causes[cause] = _Cause(now)
        if held:
            msg = f"{msg} (and %d more like it in the last %.0f s)"
            args = (*args, held, self.interval)
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, cause: str, msg: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, cause, msg, *args)

    def forget(self, cause: str) -> None:
        """Let the next line of ``cause`` through at once (its condition ended)."""
        self._causes.pop(cause, None)
