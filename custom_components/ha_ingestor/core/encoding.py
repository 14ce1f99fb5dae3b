"""What every encoder shares: the event record, the encoder contract and text helpers.

Nothing here imports ``homeassistant``; the HA layer builds
:class:`EventRecord` objects. The encoders live in :mod:`.line_protocol`
(InfluxDB, with its line cache in :mod:`.line_cache`) and :mod:`.json_events`
(the data-api).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
import json
import math
from typing import Any, Final, Protocol

from .levels import (
    GlobMatchers,
    StoredLevel,
    compile_globs,
    levels_from_mappings,
    levels_of,
    merged,
)

STATE_UNKNOWN: Final = "unknown"
STATE_UNAVAILABLE: Final = "unavailable"
SKIPPED_STATES: Final = frozenset({STATE_UNKNOWN, STATE_UNAVAILABLE, ""})

# InfluxDB accepts int64 nanosecond timestamps except the two extremes.
MIN_TIME_NS: Final = -9_223_372_036_854_775_806
MAX_TIME_NS: Final = 9_223_372_036_854_775_806

# The longest name or tag value InfluxDB can store (in a point with a 1-byte
# measurement and field key): 65 535 bytes for series key + "#!~#" + field key.
_MAX_KEY_PART_BYTES: Final = 65_535 - 4 - 1


class EncodeError(ValueError):
    """A record cannot be encoded; the message is the quarantine reason."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__,
# which is slow for an object built once per state change.
@dataclass(slots=True)
class EventRecord:
    """HA-free snapshot of one state change (treat it as immutable).

    ``time_ns`` is the new state's own ``last_updated`` in nanoseconds: it is
    the point timestamp, so a replayed point overwrites itself in InfluxDB and
    yields the same idempotency key for the data-api.
    """

    entity_id: str
    state: str
    attributes: Mapping[str, Any]
    time_ns: int
    last_changed_ns: int
    context_id: str | None = None
    event_type: str = "state_changed"
    extra: Mapping[str, Any] | None = None

    @property
    def domain(self) -> str:
        """Domain part of the entity id (``sensor`` for ``sensor.x``)."""
        return self.entity_id.partition(".")[0]

    @property
    def object_id(self) -> str:
        """Object id part of the entity id (``x`` for ``sensor.x``)."""
        return self.entity_id.partition(".")[2]


class MeasurementStrategy(StrEnum):
    """Named ways to pick the measurement; any other string names an attribute."""

    UNIT_OF_MEASUREMENT = "unit_of_measurement"
    DEVICE_CLASS = "device_class"
    DOMAIN_DEVICE_CLASS = "domain_device_class"
    ENTITY_ID = "entity_id"
    DOMAIN = "domain"
    OVERRIDE = "override"


# Keys of one override in options (the built-in's ``component_config`` keys).
OVERRIDE_MEASUREMENT: Final = "override_measurement"
OVERRIDE_IGNORE_ATTRIBUTES: Final = "ignore_attributes"


@dataclass(frozen=True, slots=True)
class Override:
    """Settings for some entities; ``None`` leaves a setting to the next level.

    ``measurement`` replaces the measurement (an empty one falls back to the
    entry's rule); ``ignore_attributes`` are left out *in addition* to the
    entry's ignored attributes.
    """

    measurement: str | None = None
    ignore_attributes: frozenset[str] | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Override":
        """Build from ``{"override_measurement": ..., "ignore_attributes": [...]}``."""
        measurement = values.get(OVERRIDE_MEASUREMENT)
        ignore = values.get(OVERRIDE_IGNORE_ATTRIBUTES)
        return cls(
            None if measurement is None else str(measurement),
            None if ignore is None else frozenset(str(name) for name in ignore),
        )


@dataclass(frozen=True, slots=True)
class Overrides:
    """Per entity, domain and glob overrides, resolved as the built-in resolves them.

    Entity over glob over domain, setting by setting (see :mod:`.levels`).
    """

    entities: Mapping[str, Override] = field(default_factory=dict)
    domains: Mapping[str, Override] = field(default_factory=dict)
    globs: Mapping[str, Override] = field(default_factory=dict)
    _matchers: GlobMatchers[Override] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Compile the globs once."""
        object.__setattr__(self, "_matchers", compile_globs(self.globs))

    @classmethod
    def from_mappings(
        cls, entities: StoredLevel, domains: StoredLevel, globs: StoredLevel
    ) -> "Overrides | None":
        """Build from stored options; None when there is no override at all."""
        if not (entities or domains or globs):
            return None
        return cls(*levels_from_mappings(Override.from_mapping, entities, domains, globs))

    def resolve(self, entity_id: str) -> Override | None:
        """Return the merged override of ``entity_id``; None when no level names it."""
        levels = levels_of(entity_id, self.entities, self.domains, self._matchers)
        return merged(levels, Override)


@dataclass(frozen=True, slots=True)
class EncoderConfig:
    """Line-protocol schema options; defaults match HA's built-in integration.

    ``measurement_attr`` is a :class:`MeasurementStrategy` value or the name of
    any attribute. An attribute strategy (the default ``unit_of_measurement``,
    ``device_class``, ...) falls back to ``default_measurement``, else the
    entity id, when the attribute is missing or empty. ``override_measurement``
    wins over every strategy when set (``OVERRIDE`` without it falls back the
    same way). ``tags`` are static tags applied last (they may replace
    ``domain`` / ``entity_id``, as in the built-in). ``overrides`` change the
    measurement and ignored attributes of some entities; an override's
    measurement wins over every other rule. ``entity_tags`` returns more tags
    for an entity id (registry tags: area, device, ...); they win over
    attribute tags, static tags win over them. After it changes its answer for
    an entity, call :meth:`LineProtocolEncoder.forget` for it.
    """

    measurement_attr: str = MeasurementStrategy.UNIT_OF_MEASUREMENT
    default_measurement: str | None = None
    override_measurement: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    tags_attributes: frozenset[str] = frozenset()
    ignore_attributes: frozenset[str] = frozenset()
    include_unknown: bool = False
    max_string_bytes: int = 24_000_000
    # InfluxDB refuses a point whose series key plus a field key exceed 65 535
    # bytes ("max key length exceeded"): no longer name or tag value is ever stored.
    max_name_bytes: int = _MAX_KEY_PART_BYTES
    max_tag_value_bytes: int = _MAX_KEY_PART_BYTES
    overrides: Overrides | None = None
    entity_tags: Callable[[str], Mapping[str, str] | None] | None = None


@dataclass(slots=True)
class EncodeResult:
    """Outcome of :meth:`Encoder.encode_many`.

    ``lines`` holds ``(time_ns, payload)`` per encoded record (no trailing
    newline); ``skipped`` counts records intentionally not written (unknown /
    unavailable / empty state); ``rejected`` pairs each unencodable record with
    the reason to quarantine it under; ``dropped_values`` counts single values
    left out (NaN / inf / unrepresentable); ``truncated_values`` counts strings
    cut to the configured maximum.
    """

    lines: list[tuple[int, bytes]] = field(default_factory=list)
    skipped: int = 0
    rejected: list[tuple[EventRecord, str]] = field(default_factory=list)
    dropped_values: int = 0
    truncated_values: int = 0


#: ``(time_ns, payload)``: a point the host already rendered (see
#: :meth:`LineProtocolEncoder.cached_line`); encoders pass it through in order.
type Rendered = tuple[int, bytes]


class Encoder(Protocol):
    """What the flush job needs from an encoder."""

    def encode_many(self, records: Iterable[EventRecord | Rendered]) -> EncodeResult:
        """Encode records without raising; see :class:`EncodeResult`."""


# --------------------------------------------------------------------------
# text helpers


def clean_text(value: str) -> str:
    """Return ``value`` encodable as UTF-8: lone surrogates become U+FFFD."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # surrogatepass keeps valid pairs together, "replace" fixes the rest.
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value


def _scalar_text(obj: Any) -> str:
    """Text for a non-JSON scalar: ISO 8601 for dates, else ``str``."""
    if isinstance(obj, (datetime, date, time)):
        return obj.isoformat()
    return str(obj)


def json_safe(value: Any) -> Any:
    """Return ``value`` as plain JSON data: non-finite floats become ``None``.

    Mapping keys become strings, sequences and sets lists, dates ISO strings,
    anything else ``str(value)``; strings get lone surrogates replaced.
    """
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    return clean_text(_scalar_text(value))


def dump_json(value: Any) -> str:
    """Compact JSON text used for dict / list attribute values."""
    return json.dumps(json_safe(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check_record(record: EventRecord) -> None:
    """Reject records whose identity or timestamp is unusable."""
    if not isinstance(record.entity_id, str) or not record.entity_id:
        raise EncodeError("entity_id is not a non-empty string")
    domain, dot, object_id = record.entity_id.partition(".")
    if not dot or not domain or not object_id:
        raise EncodeError(f"entity_id {record.entity_id[:200]!r} is not '<domain>.<object_id>'")
    for name in ("time_ns", "last_changed_ns"):
        stamp = getattr(record, name)
        if not isinstance(stamp, int) or isinstance(stamp, bool):
            raise EncodeError(f"{name} is not an integer")
        if not MIN_TIME_NS <= stamp <= MAX_TIME_NS:
            raise EncodeError(f"{name} {stamp} is outside InfluxDB's int64 range")
    if not isinstance(record.state, str):
        raise EncodeError("state is not a string")


def record_debug_payload(record: EventRecord) -> bytes:
    """JSON bytes describing ``record`` for the dead-letter table; never raises."""
    try:
        data = {
            "entity_id": record.entity_id,
            "state": record.state,
            "attributes": record.attributes,
            "time_ns": record.time_ns,
            "last_changed_ns": record.last_changed_ns,
            "context_id": record.context_id,
            "event_type": record.event_type,
            "extra": record.extra,
        }
        return dump_json(data).encode("utf-8")
    except Exception as exc:  # noqa: BLE001 - last resort for quarantine
        return json.dumps({"unserialisable_record": f"{type(exc).__name__}: {exc}"}).encode()
