"""Connection state machine of one destination.

The machine only records; :class:`~.resilience.Resilience` owns the rules for
when to move. Every state remembers when it was entered (monotonic for
durations, wall for display) and which state came before; the last
``history_size`` transitions are kept for diagnostics.

Giving up (limited preset) is a state of its own, ``stopped``, rather than a
flag on a retrying state: it is mutually exclusive with retrying and with
``paused``, it needs the same user action (manual retry), and a separate state
makes the sensor and the transition history tell the story without extra
attributes. Data is kept in every state.
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
import logging
from typing import Any

from .clock import Clock
from .retry import RetryStage

_LOGGER = logging.getLogger(__name__)


class ConnectionState(StrEnum):
    """Where the connection to a destination stands."""

    DISCONNECTED = "disconnected"  # nothing tried yet (or reset by a manual retry)
    CONNECTING = "connecting"  # first attempt in flight
    ACTIVE = "active"  # last write succeeded
    RETRYING_RAPID = "retrying_rapid"
    RETRYING_MODERATE = "retrying_moderate"
    RETRYING_PERSISTENT = "retrying_persistent"
    CIRCUIT_OPEN = "circuit_open"  # breaker open: no attempts until the probe
    PAUSED = "paused"  # config fault (auth, missing db/bucket, TLS): needs the user
    STOPPED = "stopped"  # limited preset gave up: waits for a manual retry

    @property
    def retrying(self) -> bool:
        """Whether this is one of the retrying states."""
        return self in _RETRYING

    @property
    def halted(self) -> bool:
        """Whether automatic attempts are suspended until a manual retry."""
        return self in (ConnectionState.PAUSED, ConnectionState.STOPPED)

    @classmethod
    def for_stage(cls, stage: RetryStage) -> "ConnectionState":
        """Return the retrying state of ``stage``."""
        return _BY_STAGE[stage]


_RETRYING = frozenset(
    {
        ConnectionState.RETRYING_RAPID,
        ConnectionState.RETRYING_MODERATE,
        ConnectionState.RETRYING_PERSISTENT,
    }
)
_BY_STAGE = {
    RetryStage.RAPID: ConnectionState.RETRYING_RAPID,
    RetryStage.MODERATE: ConnectionState.RETRYING_MODERATE,
    RetryStage.PERSISTENT: ConnectionState.RETRYING_PERSISTENT,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """One state change."""

    state: ConnectionState
    previous: ConnectionState | None
    monotonic: float
    wall: float
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Diagnostics form."""
        return {
            "state": self.state.value,
            "previous": None if self.previous is None else self.previous.value,
            "monotonic": self.monotonic,
            "wall": self.wall,
            "reason": self.reason,
        }


type TransitionListener = Callable[[Transition], None]


class ConnectionStateMachine:
    """Current connection state plus a bounded transition history."""

    def __init__(
        self,
        clock: Clock,
        *,
        initial: ConnectionState = ConnectionState.DISCONNECTED,
        history_size: int = 50,
        listener: TransitionListener | None = None,
    ) -> None:
        """Start in ``initial``; ``listener`` is called after each transition."""
        if history_size < 1:
            raise ValueError("history_size must be at least 1")
        self._clock = clock
        self._listener = listener
        self._current = Transition(
            state=initial, previous=None, monotonic=clock.monotonic(), wall=clock.time()
        )
        self._history: deque[Transition] = deque([self._current], maxlen=history_size)

    @property
    def state(self) -> ConnectionState:
        """The current state."""
        return self._current.state

    @property
    def previous(self) -> ConnectionState | None:
        """The state before the current one."""
        return self._current.previous

    @property
    def current(self) -> Transition:
        """The transition that entered the current state."""
        return self._current

    @property
    def entered_monotonic(self) -> float:
        """Monotonic time the current state was entered."""
        return self._current.monotonic

    @property
    def entered_wall(self) -> float:
        """Wall time the current state was entered."""
        return self._current.wall

    @property
    def history(self) -> tuple[Transition, ...]:
        """The most recent transitions, oldest first (bounded)."""
        return tuple(self._history)

    @property
    def history_size(self) -> int:
        """Maximum number of transitions kept."""
        return self._history.maxlen or 0

    def time_in_state(self) -> float:
        """Seconds spent in the current state."""
        return max(0.0, self._clock.monotonic() - self._current.monotonic)

    def set_listener(self, listener: TransitionListener | None) -> None:
        """Replace the transition listener."""
        self._listener = listener

    def transition(self, new: ConnectionState, reason: str | None = None) -> bool:
        """Move to ``new``; staying in the same state is a no-op returning ``False``."""
        if new is self._current.state:
            return False
        self._current = Transition(
            state=new,
            previous=self._current.state,
            monotonic=self._clock.monotonic(),
            wall=self._clock.time(),
            reason=reason,
        )
        self._history.append(self._current)
        _LOGGER.debug("Connection %s -> %s (%s)", self._current.previous, new, reason)
        if self._listener is not None:
            try:
                self._listener(self._current)
            except Exception:
                # A broken listener (an entity update) must not stop delivery.
                _LOGGER.exception("Connection state listener failed")
        return True

    def as_dict(self) -> dict[str, Any]:
        """Diagnostics snapshot."""
        return {
            "state": self.state.value,
            "previous": None if self.previous is None else self.previous.value,
            "entered_wall": self.entered_wall,
            "time_in_state": self.time_in_state(),
            "history": [t.as_dict() for t in self._history],
        }
