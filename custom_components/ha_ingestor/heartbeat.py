"""Heartbeat: re-send the current state of shipped entities every N minutes.

Long-unchanged states otherwise leave graphs, ``last()`` queries and
dashboards empty for the time range shown. A heartbeat point is the entity's
current state stamped with the time it is sent. An entity whose state changed
(``last_updated``) within the interval, or that got a heartbeat within it, is
not sent: a heartbeat never duplicates a real change, nor shares its timestamp.

The bus listener is not involved. Entities wait in a heap by the time their
next heartbeat is due (their last change or heartbeat plus the interval); a
tick of Home Assistant's timer takes only the due ones, at most
:meth:`Heartbeat.per_tick_cap` of them (about twice the average rate, so a
home that started all at once is spread over the following ticks), and
appends their records to the pipeline's memory batch, like the listener.
Entities that appeared since are found by one pass over the state machine per
interval.
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
import heapq
import math
import time
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval

from .const import DOMAIN
from .core.shaping import Passthrough

#: Bounds of the tick period (s): a sixth of the interval, within these.
MIN_TICK = 10.0
MAX_TICK = 60.0
#: Entities a tick may visit beyond twice the average rate.
CAP_MARGIN = 100


def _wall_clock() -> float:
    """Return ``time.time()``, looked up at each call (time travel patches it)."""
    return time.time()


class Heartbeat:
    """Re-sends unchanged states of shipped entities once per interval."""

    def __init__(
        self,
        hass: HomeAssistant,
        interval: float,
        *,
        wanted: Mapping[str, bool],
        capture_many: Callable[[Iterable[Any]], None],
        context: Callable[[], Mapping[str, Any]] | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        """Re-send every ``interval`` seconds the entities ``wanted`` says are shipped.

        ``context`` returns the enrichment fields (context entities) live changes carry.
        """
        self._hass = hass
        self.interval = interval
        self._wanted = wanted
        self._capture_many = capture_many
        self._context = context
        self._now = now or _wall_clock
        self.tick = min(MAX_TICK, max(MIN_TICK, interval / 6))
        # Timers fire a little early or late: half a tick of slack keeps the cadence
        # at one heartbeat per interval instead of one every interval plus a tick.
        self._slack = self.tick / 2
        #: (due time, entity_id): when an entity is looked at next.
        self._due: list[tuple[float, str]] = []
        self._queued: set[str] = set()
        #: entity_id -> when its last heartbeat was sent (s).
        self._sent: dict[str, float] = {}
        self._next_discovery = 0.0
        #: Heartbeat points captured since the entry was loaded.
        self.sent = 0

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Run on Home Assistant's timer; return the unsubscriber."""
        return async_track_time_interval(
            self._hass, self._async_tick, timedelta(seconds=self.tick), name=f"{DOMAIN} heartbeat"
        )

    def as_dict(self) -> dict[str, float | int]:
        """Return the settings and counters for diagnostics."""
        return {
            "interval": self.interval,
            "tick": self.tick,
            "entities": len(self._queued),
            "sent": self.sent,
        }

    def per_tick_cap(self) -> int:
        """Most entities one tick visits: twice the average rate, plus a margin."""
        return 2 * math.ceil(len(self._queued) * self.tick / self.interval) + CAP_MARGIN

    @callback
    def _async_tick(self, _now: Any) -> None:
        """Send the due heartbeats; look for new entities once per interval."""
        now = self._now()
        if now >= self._next_discovery:
            self._discover(now)
        records = self._visit_due(now)
        if records:
            self.sent += len(records)
            self._capture_many(records)

    def _discover(self, now: float) -> None:
        """Queue the entities not queued yet, due an interval after their last change."""
        self._next_discovery = now + self.interval
        get_state = self._hass.states.get
        for entity_id in self._hass.states.async_entity_ids():
            if entity_id not in self._queued and (state := get_state(entity_id)) is not None:
                self._queued.add(entity_id)
                heapq.heappush(self._due, (state.last_updated_timestamp + self.interval, entity_id))

    def _visit_due(self, now: float) -> list[Passthrough]:
        """Pop the due entities (up to the cap); return the heartbeats to capture."""
        due, interval = self._due, self.interval
        horizon = now + self._slack
        time_ns = round(now * 1_000_000) * 1000
        get_state = self._hass.states.get
        wanted, sent = self._wanted, self._sent
        extra = self._context() if self._context is not None else None
        records: list[Passthrough] = []
        for _ in range(self.per_tick_cap()):
            if not due or due[0][0] > horizon:
                break
            _, entity_id = heapq.heappop(due)
            state = get_state(entity_id)
            if state is None:
                # Removed: forgotten; found again by a discovery if it comes back.
                self._queued.discard(entity_id)
                sent.pop(entity_id, None)
                continue
            last = max(state.last_updated_timestamp, sent.get(entity_id, 0.0))
            if last + interval > horizon:
                heapq.heappush(due, (last + interval, entity_id))  # changed meanwhile
                continue
            heapq.heappush(due, (now + interval, entity_id))
            if not wanted[entity_id]:
                continue
            sent[entity_id] = now
            records.append(
                Passthrough(
                    entity_id,
                    state.state,
                    state.attributes,
                    time_ns,
                    round(state.last_changed_timestamp * 1_000_000) * 1000,
                    state.context.id,
                    extra=extra or None,
                )
            )
        return records
