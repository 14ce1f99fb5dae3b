"""Throttle and deadband: fewer points from chatty entities, without losing the last value.

Per entity, domain and glob (the precedence of the measurement overrides: the
domain's settings, replaced setting by setting by each matching glob in order,
then by the entity's own), a state change is written only when

* at least ``throttle`` seconds passed since the last point that passed, and
* its numeric value moved by more than ``deadband`` from the last written one
  (non-numeric states, and a change between numeric and non-numeric, always
  pass the deadband: they are only throttled).

A change that does not pass is held back (one per entity, the newest). The
held-back change is written, with its own timestamp and content, when the run
of held-back changes ends: just before the next change that passes, or when
the host's timer finds it due (:meth:`Shaper.take_due`: the throttle window
is over, and for a deadband the entity did not change for
:data:`DEADBAND_QUIET`), or when the host stops (:meth:`Shaper.take_all`). So
a graph never ends on a stale value. A released change starts the next
throttle window, so an entity that keeps changing gets one point per window:
the last change before each window's end.

Everything runs in the flush job (the host's worker thread) through
:class:`ShapingEncoder`; the host's timer only takes due records under a
lock. Records older than the last point that passed (a backfill replaying the
past) are written as they are: shaping them against live data means nothing.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
import math
import threading
from typing import Any, Final

from .encoder import Encoder, EncodeResult, EventRecord, Rendered
from .levels import StoredLevel, compile_globs, levels_from_mappings, levels_of, merged

__all__ = [
    "DEADBAND",
    "DEADBAND_QUIET",
    "THROTTLE",
    "Passthrough",
    "Shape",
    "ShapeRules",
    "Shaper",
    "ShapingEncoder",
]

#: Keys of one override in options (next to ``override_measurement``).
THROTTLE: Final = "throttle"
DEADBAND: Final = "deadband"
#: A change held back by the deadband is written once its entity was quiet this long (s).
DEADBAND_QUIET: Final = 300.0

_STATE_CHANGED: Final = "state_changed"
_CACHE_SIZE: Final = 8192
_NS: Final = 1_000_000_000


class Passthrough(EventRecord):
    """A record written as it is, never shaped: a released change, a heartbeat."""

    __slots__ = ()

    @classmethod
    def of(cls, record: EventRecord) -> "Passthrough":
        """Copy ``record`` as a pass-through record."""
        return cls(
            record.entity_id,
            record.state,
            record.attributes,
            record.time_ns,
            record.last_changed_ns,
            record.context_id,
            record.event_type,
            record.extra,
        )


@dataclass(frozen=True, slots=True)
class Shape:
    """Throttle (s) and deadband of some entities; ``None`` leaves it to the next level.

    ``0`` is an explicit "off" (an entity's 0 cancels its domain's throttle).
    """

    throttle: float | None = None
    deadband: float | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Shape | None":
        """Read ``throttle`` / ``deadband`` from one override; None when it sets neither."""
        throttle, deadband = values.get(THROTTLE), values.get(DEADBAND)
        if throttle is None and deadband is None:
            return None
        return cls(
            None if throttle is None else max(0.0, float(throttle)),
            None if deadband is None else max(0.0, float(deadband)),
        )

    @property
    def active(self) -> bool:
        """Whether this shape holds anything back at all."""
        return bool(self.throttle) or self.deadband is not None


class ShapeRules:
    """Per entity, domain and glob shapes, resolved once per entity and cached."""

    def __init__(
        self,
        entities: Mapping[str, Shape],
        domains: Mapping[str, Shape],
        globs: Mapping[str, Shape],
    ) -> None:
        """Keep the levels; globs are fnmatch patterns (case-sensitive), compiled once."""
        self._entities = dict(entities)
        self._domains = dict(domains)
        self._globs = compile_globs(globs)
        self._cache: dict[str, Shape | None] = {}

    @classmethod
    def from_mappings(
        cls, entities: StoredLevel, domains: StoredLevel, globs: StoredLevel
    ) -> "ShapeRules | None":
        """Build from the stored overrides; None when none sets a throttle or deadband."""
        levels = levels_from_mappings(Shape.from_mapping, entities, domains, globs)
        if not any(levels):
            return None
        return cls(*levels)

    def resolve(self, entity_id: str) -> Shape | None:
        """Return the merged shape of ``entity_id``; None when nothing is held back for it."""
        try:
            return self._cache[entity_id]
        except KeyError:
            pass
        shape = merged(levels_of(entity_id, self._entities, self._domains, self._globs), Shape)
        resolved = shape if shape is not None and shape.active else None
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()  # bounded: event records bring their own entity ids
        self._cache[entity_id] = resolved
        return resolved


def _number(state: str) -> float | None:
    """Return the state as a finite number, or None (non-numeric: never deadbanded)."""
    try:
        value = float(state)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class _Track:
    """What the shaper remembers of one entity."""

    __slots__ = ("held", "passed_ns", "reference")

    def __init__(self) -> None:
        #: Time of the last change that passed (the throttle window starts there).
        self.passed_ns: int | None = None
        #: Numeric value of the last written change; None after a non-numeric one.
        self.reference: float | None = None
        #: The newest change held back, written when its run ends.
        self.held: EventRecord | None = None


class Shaper:
    """Decides per state change: write it, or hold it back until its run ends.

    Counters: ``held_back`` changes were held back (each one, also those
    replaced by a newer one before being written), ``released`` of them were
    written after all. Points written = changes in - held_back + released.
    """

    def __init__(self, rules: ShapeRules, *, quiet: float = DEADBAND_QUIET) -> None:
        """Shape with ``rules``; ``quiet`` seconds without change release a deadband hold."""
        self._rules = rules
        self._quiet_ns = round(quiet * _NS)
        self._tracks: dict[str, _Track] = {}
        self._held: dict[str, _Track] = {}
        # The flush job (worker thread) shapes, the host's timer takes due records.
        self._lock = threading.Lock()
        self.held_back = 0
        self.released = 0

    def applies(self, entity_id: str) -> bool:
        """Whether ``entity_id`` is shaped (cached per entity)."""
        return self._rules.resolve(entity_id) is not None

    @property
    def holding(self) -> int:
        """Entities with a change held back right now."""
        return len(self._held)

    def as_dict(self) -> dict[str, int]:
        """Return the counters for diagnostics."""
        return {"held_back": self.held_back, "released": self.released, "holding": self.holding}

    def shape(self, records: Iterable[EventRecord | Rendered]) -> Iterator[EventRecord | Rendered]:
        """Yield what is written, in order: a held-back change just before the one ending its run."""
        resolve = self._rules.resolve
        for record in records:
            if (
                isinstance(record, tuple)
                or type(record) is Passthrough
                or record.event_type != _STATE_CHANGED
            ):
                yield record
                continue
            try:
                shape = resolve(record.entity_id)
                if shape is None:
                    written: tuple[EventRecord, ...] = (record,)
                else:
                    with self._lock:
                        written = self._decide(record, shape)
            except Exception:  # noqa: BLE001 - a malformed record goes on, the encoder rejects it
                written = (record,)
            yield from written

    def _decide(self, record: EventRecord, shape: Shape) -> tuple[EventRecord, ...]:
        """Pass ``record`` (after the change it ends the hold of) or hold it back (lock held)."""
        entity_id = record.entity_id
        track = self._tracks.get(entity_id)
        if track is None:
            track = self._tracks[entity_id] = _Track()
        time_ns = record.time_ns
        passed_ns = track.passed_ns
        if passed_ns is not None and time_ns < passed_ns:
            return (record,)  # the past replayed (backfill): written as it is
        value = _number(record.state)
        throttled = (
            bool(shape.throttle)
            and passed_ns is not None
            and time_ns - passed_ns < round((shape.throttle or 0.0) * _NS)
        )
        banded = (
            shape.deadband is not None
            and value is not None
            and track.reference is not None
            and abs(value - track.reference) <= shape.deadband
        )
        if throttled or banded:
            if track.held is None:
                self._held[entity_id] = track
            track.held = record
            self.held_back += 1
            return ()
        track.passed_ns = time_ns
        track.reference = value
        held = track.held
        if held is None:
            return (record,)
        track.held = None
        del self._held[entity_id]
        self.released += 1
        return (held, record)

    def take_due(self, now_ns: int) -> list[Passthrough]:
        """Take the held-back changes whose run is over (the entity went quiet)."""
        due: list[Passthrough] = []
        with self._lock:
            for entity_id, track in list(self._held.items()):
                held = track.held
                if held is None:
                    continue
                shape = self._rules.resolve(entity_id)
                at = held.time_ns
                if shape is not None and shape.throttle and track.passed_ns is not None:
                    at = max(at, track.passed_ns + round(shape.throttle * _NS))
                if shape is not None and shape.deadband is not None:
                    at = max(at, held.time_ns + self._quiet_ns)
                if now_ns >= at:
                    due.append(self._release(entity_id, track, held))
        return due

    def take_all(self) -> list[Passthrough]:
        """Take every held-back change (the host stops: they must reach the spool)."""
        with self._lock:
            return [
                self._release(entity_id, track, track.held)
                for entity_id, track in list(self._held.items())
                if track.held is not None
            ]

    def _release(self, entity_id: str, track: _Track, held: EventRecord) -> Passthrough:
        """Write ``held`` after all: it becomes the reference and ends the window early."""
        track.held = None
        del self._held[entity_id]
        track.reference = _number(held.state)
        if track.passed_ns is None or held.time_ns > track.passed_ns:
            track.passed_ns = held.time_ns
        self.released += 1
        return Passthrough.of(held)


class ShapingEncoder:
    """An :class:`Encoder` that shapes state changes before the wrapped encoder sees them."""

    def __init__(self, inner: Encoder, shaper: Shaper) -> None:
        """Wrap ``inner``; records held back count as skipped in its result."""
        self._inner = inner
        self._shaper = shaper

    def encode_many(self, records: Iterable[EventRecord | Rendered]) -> EncodeResult:
        """Shape, then encode what is written (see :class:`Shaper`).

        ``skipped`` grows by the records in minus the records out, which is
        less than what was held back when earlier held-back records were
        released in this batch.
        """
        counts = [0, 0]

        def counted_in() -> Iterator[EventRecord | Rendered]:
            for record in records:
                counts[0] += 1
                yield record

        def counted_out() -> Iterator[EventRecord | Rendered]:
            for record in self._shaper.shape(counted_in()):
                counts[1] += 1
                yield record

        result = self._inner.encode_many(counted_out())
        result.skipped += max(0, counts[0] - counts[1])
        return result
