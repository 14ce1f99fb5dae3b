"""Turning Home Assistant states and events into core records (runs in a worker thread)."""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Final

from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, State
from homeassistant.util.read_only_dict import ReadOnlyDict

from .const import CONF_DOMAIN_OVERRIDES, CONF_ENTITY_OVERRIDES, CONF_GLOB_OVERRIDES
from .core.encoder import (
    EncoderConfig,
    EncodeResult,
    EventRecord,
    LineProtocolEncoder,
    Overrides,
    Rendered,
)
from .core.levels import StoredLevel


def override_levels(options: Mapping[str, Any]) -> tuple[StoredLevel, StoredLevel, StoredLevel]:
    """Return the per entity, domain and glob overrides stored in entry options."""
    return (
        options.get(CONF_ENTITY_OVERRIDES),
        options.get(CONF_DOMAIN_OVERRIDES),
        options.get(CONF_GLOB_OVERRIDES),
    )


def overrides_from_options(options: Mapping[str, Any]) -> Overrides | None:
    """Per-entity, domain and glob overrides from entry options; None without any."""
    return Overrides.from_mappings(*override_levels(options))


def timestamp_ns(timestamp: float) -> int:
    """Nanoseconds from a float epoch timestamp, rounded to the microsecond.

    HA keeps microsecond datetimes and the recorder stores float timestamps;
    rounding to the microsecond makes a live state and the same state read
    back from the recorder land on the same point (idempotent backfill).
    The rounding is ``datetime.fromtimestamp``'s (the fraction alone, half to
    even), which made the built-in's ``time_fired``: ``round(timestamp * 1e6)``
    rounds the whole product and misses by 1 us for some timestamps, so a
    change written by both integrations during a switch would be stored twice.
    """
    whole = int(timestamp)  # the fraction t - int(t) is exact in floating point
    return (whole * 1_000_000 + round((timestamp - whole) * 1_000_000)) * 1000


#: Attributes of a context entity attached next to its state (weather and climate-like).
CONTEXT_ATTRIBUTES = ("temperature", "humidity", "pressure", "wind_speed")


def context_fields(states: Iterable[State]) -> dict[str, Any]:
    """Enrichment fields from context entities: ``ctx_<object_id>`` and a few attributes."""
    fields: dict[str, Any] = {}
    for state in states:
        if state.state in ("unknown", "unavailable", ""):
            continue
        prefix = f"ctx_{state.object_id}"
        fields[prefix] = state.state
        for attr in CONTEXT_ATTRIBUTES:
            value = state.attributes.get(attr)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                fields[f"{prefix}_{attr}"] = value
    return fields


def record_from_state(state: State, extra: Mapping[str, Any] | None = None) -> EventRecord:
    """Snapshot a state (states are immutable, so reading them off-loop is safe)."""
    # Every state change passes here: positional arguments (EventRecord's field
    # order) and timestamp_ns() inlined halve the cost of building the record.
    updated = state.last_updated_timestamp
    changed = state.last_changed_timestamp
    updated_s, changed_s = int(updated), int(changed)
    return EventRecord(
        state.entity_id,
        state.state,
        state.attributes,
        (updated_s * 1_000_000 + round((updated - updated_s) * 1_000_000)) * 1000,
        (changed_s * 1_000_000 + round((changed - changed_s) * 1_000_000)) * 1000,
        state.context.id,
        extra=extra or None,
    )


def record_from_event(event: Event[Mapping[str, Any]]) -> EventRecord:
    """Snapshot a non-state event (automation_triggered, call_service, ...)."""
    data = dict(event.data)
    entity_id = data.get("entity_id")
    if not isinstance(entity_id, str) or "." not in entity_id:
        entity_id = f"event.{event.event_type}"
    time_ns = timestamp_ns(event.time_fired_timestamp)
    return EventRecord(
        entity_id=entity_id,
        state=str(event.event_type),
        attributes=data,
        time_ns=time_ns,
        last_changed_ns=time_ns,
        context_id=event.context.id,
        event_type=str(event.event_type),
    )


# EventType is not a str to mypy; rendered states carry no record to read it from.
_STATE_CHANGED: Final = str(EVENT_STATE_CHANGED)

type Captured = State | Event[Any] | tuple[State | None, Mapping[str, Any]] | EventRecord | None


def to_record(item: Captured) -> EventRecord | None:
    """Convert what the listener captured (a state, an event, or a state + context).

    ``None`` states (an entity was removed) are captured unfiltered, because
    checking in the listener costs more than skipping them here. A ready
    record (a heartbeat, a change the shaper held back) passes as it is.
    """
    if isinstance(item, State):
        return record_from_state(item)
    if item is None:
        return None
    if isinstance(item, tuple):
        return None if item[0] is None else record_from_state(item[0], item[1])
    if isinstance(item, EventRecord):
        return item
    return record_from_event(item)


class RoutingLineEncoder:
    """Line protocol for states, and one measurement per extra event type."""

    def __init__(self, config: EncoderConfig) -> None:
        """Create the encoder for states; event encoders are made on demand."""
        self._config = config
        # State attributes are ReadOnlyDicts that HA reuses while only the state
        # changes: the encoder may cache what it rendered from them.
        self._states = LineProtocolEncoder(config, frozen_mappings=(ReadOnlyDict,))
        self._events: dict[str, LineProtocolEncoder] = {}
        self._cached_line = self._states.cached_line

    def convert(self, item: Captured) -> EventRecord | Rendered | None:
        """:func:`to_record`, or the finished line when the line cache can render it.

        Every state change passes here (in the flush job): for a state whose
        attributes object the cache has seen, the line is made without
        building an :class:`EventRecord`, the costliest step of the slow path.
        """
        if type(item) is State:
            updated = item.last_updated_timestamp  # timestamp_ns(), inlined
            seconds = int(updated)
            time_ns = (seconds * 1_000_000 + round((updated - seconds) * 1_000_000)) * 1000
            line = self._cached_line(item.entity_id, item.state, item.attributes, time_ns)
            return record_from_state(item) if line is None else (time_ns, line)
        return to_record(item)

    def forget(self, entity_ids: Iterable[str] | None = None) -> None:
        """Drop cached state lines whose tags changed (see LineProtocolEncoder.forget)."""
        self._states.forget(entity_ids)

    def encode_many(self, records: Iterable[EventRecord | Rendered]) -> EncodeResult:
        """Encode states and events, each with its own measurement rule.

        Lines come grouped by event type in order of first appearance. States
        (nearly all records) are encoded as they come, so no list of thousands
        of records is kept alive: fewer objects surviving into Home Assistant's
        garbage collections. Other event types are grouped, then encoded.
        """
        order: list[str] = []  # event types by first appearance (a handful at most)
        events: dict[str, list[EventRecord]] = {}

        def states() -> Iterator[EventRecord | Rendered]:
            for record in records:
                # A tuple is a state convert already rendered.
                event_type: str = _STATE_CHANGED if isinstance(record, tuple) else record.event_type
                if event_type not in order:
                    order.append(event_type)
                if isinstance(record, tuple) or event_type == EVENT_STATE_CHANGED:
                    yield record
                else:
                    events.setdefault(event_type, []).append(record)

        encoded_states = self._states.encode_many(states())
        total = EncodeResult()
        for event_type in order:
            _merge(
                total,
                encoded_states
                if event_type == EVENT_STATE_CHANGED
                else self._event_encoder(event_type).encode_many(events[event_type]),
            )
        return total

    def _event_encoder(self, event_type: str) -> LineProtocolEncoder:
        """Return the encoder for one extra event type (its name is the measurement)."""
        return self._events.get(event_type) or self._events.setdefault(
            event_type,
            # Overrides are for states: an event's measurement is always its type.
            LineProtocolEncoder(
                replace(self._config, override_measurement=event_type, overrides=None)
            ),
        )


def _merge(total: EncodeResult, result: EncodeResult) -> None:
    """Add ``result`` to ``total``."""
    total.lines.extend(result.lines)
    total.skipped += result.skipped
    total.rejected.extend(result.rejected)
    total.dropped_values += result.dropped_values
    total.truncated_values += result.truncated_values
