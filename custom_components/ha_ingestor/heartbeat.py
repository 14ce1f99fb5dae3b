"""Heartbeat: re-send the current state of shipped entities every N minutes.

Long-unchanged states otherwise leave graphs, ``last()`` queries and
dashboards empty for the time range shown. A heartbeat point is the entity's
current state stamped with the time it is sent. An entity whose state changed
(``last_updated``) within the interval, or that got a heartbeat within it, is
skipped: a heartbeat never duplicates a real change, nor shares its timestamp.

The work is spread over the interval: each tick visits one bucket of entities
(by the entity id's hash, stable for the process), so every entity is visited
once per interval and a tick handles about ``entities / buckets`` of them. A
tick only reads the state machine and appends to the pipeline's memory batch,
like the bus listener; encoding and the disk are the flush job's.
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
import math
import time
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval

from .const import DOMAIN
from .core.shaping import Passthrough

#: Bounds of the tick period (s): a short interval is spread over a few ticks,
#: a long one visits a bucket at least every minute.
MIN_TICK = 10.0
MAX_TICK = 60.0
#: Ticks per interval at least (more buckets = less work per tick).
MIN_BUCKETS = 6


class Heartbeat:
    """Re-sends unchanged states of shipped entities, spread over the interval."""

    def __init__(
        self,
        hass: HomeAssistant,
        interval: float,
        *,
        wanted: Mapping[str, bool],
        capture_many: Callable[[Iterable[Any]], None],
        now: Callable[[], float] = time.time,
    ) -> None:
        """Re-send every ``interval`` seconds the entities ``wanted`` says are shipped."""
        self._hass = hass
        self.interval = interval
        self._wanted = wanted
        self._capture_many = capture_many
        self._now = now
        self.tick = min(MAX_TICK, max(MIN_TICK, interval / MIN_BUCKETS))
        self._buckets = max(1, math.floor(interval / self.tick))
        self._index = 0
        self._round: list[list[str]] = []
        #: entity_id -> when its last heartbeat was sent (s).
        self._sent: dict[str, float] = {}
        #: Heartbeat points captured since the entry was loaded.
        self.sent = 0

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Run on Home Assistant's timer; return the unsubscriber."""
        return async_track_time_interval(
            self._hass, self._async_tick, timedelta(seconds=self.tick), name=f"{DOMAIN} heartbeat"
        )

    @callback
    def _async_tick(self, _now: Any) -> None:
        """Visit one bucket; a new round starts from the entities present now."""
        if self._index == 0:
            self._new_round()
        bucket = self._round[self._index]
        self._index = (self._index + 1) % self._buckets
        if bucket:
            self._visit(bucket)

    def _new_round(self) -> None:
        """Split the current entities into buckets; forget entities that are gone."""
        buckets: list[list[str]] = [[] for _ in range(self._buckets)]
        count = self._buckets
        entity_ids = self._hass.states.async_entity_ids()
        for entity_id in entity_ids:
            buckets[hash(entity_id) % count].append(entity_id)
        self._round = buckets
        if len(self._sent) > len(entity_ids):
            present = set(entity_ids)
            self._sent = {e: t for e, t in self._sent.items() if e in present}

    def _visit(self, entity_ids: list[str]) -> None:
        """Capture a heartbeat for each entity of ``entity_ids`` quiet for an interval."""
        now = self._now()
        # Timers fire a little late or early: half a tick of slack keeps the cadence
        # at one heartbeat per interval instead of one every other interval.
        quiet_since = now - self.interval + self.tick / 2
        time_ns = round(now * 1_000_000) * 1000
        get_state = self._hass.states.get
        wanted, sent = self._wanted, self._sent
        records: list[Passthrough] = []
        for entity_id in entity_ids:
            if not wanted[entity_id] or (state := get_state(entity_id)) is None:
                continue
            if state.last_updated_timestamp > quiet_since or sent.get(entity_id, 0.0) > quiet_since:
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
                )
            )
        if records:
            self.sent += len(records)
            self._capture_many(records)
