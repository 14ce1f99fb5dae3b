r"""Encode HA-free event snapshots as InfluxDB line protocol or data-api JSON.

The line-protocol schema follows Home Assistant's built-in ``influxdb``
integration so users can switch without breaking dashboards: measurement from
``unit_of_measurement`` (else ``default_measurement``, else the entity id),
tags ``domain`` and ``entity_id`` (object id), field ``value`` (float) for
numeric states and ``state`` (string) otherwise, attributes as float fields or
``<name>_str`` string fields.

Values are written as the built-in writes them: anything ``float()`` accepts
is a float field, anything else (dicts, lists, sets, enums, dates, ``None``)
the text ``str(value)`` in ``<name>_str``, with the built-in's digit-tail rule.
Where the built-in (or its InfluxDB client) writes something that InfluxDB
rejects, silently drops or stores altered, this encoder deliberately differs
(``tests/test_builtin_equality.py`` compares both on a real InfluxDB):

* every numeric field is a float, never an ``i`` integer, so an attribute
  that flips between ``21`` and ``21.5`` keeps one field type; booleans
  become ``1.0`` / ``0.0`` (what the built-in's ``float(value)`` does);
* NaN / +-inf values are dropped and counted (``dropped_values``); a
  non-finite *state* is kept as the string field ``state`` (the built-in
  writes ``value=nan``, a line InfluxDB refuses);
* lone surrogates are replaced by U+FFFD (the client raises
  ``UnicodeEncodeError``);
* line breaks in string fields, the measurement and string tag values become
  spaces (the built-in's ``_single_line``); in keys and other tag values a
  line break becomes the two characters ``\n``, as the built-in's client
  writes it; other control characters are kept, as InfluxDB keeps them;
* backslashes are written as they are (the client doubles them in names and
  tag values and InfluxDB 1.x keeps both); a run that would escape the
  following separator is removed;
* a leading ``#`` is stripped from the measurement (a comment: InfluxDB
  answers 204 and stores nothing), a leading ``_`` from tag keys (InfluxDB 2
  discards such points), and the reserved key ``time`` is renamed ``time_``;
* string field values are capped at :attr:`EncoderConfig.max_string_bytes`
  UTF-8 bytes (24 MB by default: InfluxDB 1.x stores any length that fits in
  its default 25 MB request limit), names at
  :attr:`EncoderConfig.max_name_bytes` and tag values at
  :attr:`EncoderConfig.max_tag_value_bytes` (65 530 bytes by default: InfluxDB
  never stores longer ones, the built-in's point is refused then).

Nothing here imports ``homeassistant``; the HA layer builds
:class:`EventRecord` objects.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
import hashlib
import json
import math
import re
from typing import Any, Final, NamedTuple, Protocol

from .levels import GlobMatchers, compile_globs, levels_of, merged

__all__ = [
    "STATE_UNAVAILABLE",
    "STATE_UNKNOWN",
    "EncodeError",
    "EncodeResult",
    "Encoder",
    "EncoderConfig",
    "EventRecord",
    "JsonEventEncoder",
    "LineProtocolEncoder",
    "MeasurementStrategy",
    "Override",
    "Overrides",
    "clean_text",
    "format_line",
    "idempotency_key",
    "json_safe",
    "record_debug_payload",
    "single_line",
    "truncate_utf8",
]

STATE_UNKNOWN: Final = "unknown"
STATE_UNAVAILABLE: Final = "unavailable"
_SKIPPED_STATES: Final = frozenset({STATE_UNKNOWN, STATE_UNAVAILABLE, ""})

# helpers/state.py ``state_as_number`` of HA: these states also get a value.
# ``unknown`` maps to 0 there, but it must never look like a real 0 reading.
_STATE_AS_ONE: Final = frozenset({"on", "locked", "above_horizon", "open", "home"})
_STATE_AS_ZERO: Final = frozenset({"off", "unlocked", "below_horizon", "closed", "not_home"})

# The built-in integration's rule for string attributes that carry a number
# ("12 kWh" -> also a float field); kept for schema compatibility.
_RE_DIGIT_TAIL: Final = re.compile(r"^[^\.]*\d+\.?\d+[^\.]*$")
_RE_DECIMAL: Final = re.compile(r"[^\d.]+")

# A run of backslashes right before a separator (or at the end) would escape
# the separator; InfluxDB 1.x skips "\x" pairs while scanning, so remove them.
_RE_DANGLING_BACKSLASH: Final = re.compile(r"\\+(?=[,= ]|$)")
# Every character str.splitlines() splits on.
_RE_LINE_BREAK: Final = re.compile(r"[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")

_ESCAPE_MEASUREMENT: Final = str.maketrans({",": r"\,", " ": r"\ "})
_ESCAPE_KEY: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_ESCAPE_STRING: Final = str.maketrans({'"': r"\"", "\\": "\\\\"})

# InfluxDB accepts int64 nanosecond timestamps except the two extremes.
_MIN_TIME_NS: Final = -9_223_372_036_854_775_806
_MAX_TIME_NS: Final = 9_223_372_036_854_775_806

_NAME_CACHE_SIZE: Final = 4096
# Longer names are sanitised each time: the cache must stay small.
_CACHED_NAME_CHARS: Final = 256
# The longest name or tag value InfluxDB can store (in a point with a 1-byte
# measurement and field key): 65 535 bytes for series key + "#!~#" + field key.
_MAX_KEY_PART_BYTES: Final = 65_535 - 4 - 1
# Entities whose attribute-derived line parts are kept (one slot each, oldest evicted).
_LINE_CACHE_SIZE: Final = 8192
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_RESERVED_KEY: Final = "time"


class _NameKind:
    """Where a name goes: measurement, tag key or field key (each has its rules)."""


_MEASUREMENT: Final = _NameKind()
_TAG_KEY: Final = _NameKind()
_FIELD_KEY: Final = _NameKind()


class EncodeError(ValueError):
    """A record cannot be encoded; the message is the quarantine reason."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__,
# which makes building one ~4x slower (~1 us more), once per state change.
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
        cls,
        entities: Mapping[str, Mapping[str, Any]] | None,
        domains: Mapping[str, Mapping[str, Any]] | None,
        globs: Mapping[str, Mapping[str, Any]] | None,
    ) -> "Overrides | None":
        """Build from stored options; None when there is no override at all."""
        if not (entities or domains or globs):
            return None
        return cls(
            *(
                {target: Override.from_mapping(values) for target, values in (level or {}).items()}
                for level in (entities, domains, globs)
            )
        )

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
# string helpers


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


def single_line(value: str) -> str:
    """Join the lines of ``value`` with spaces (the built-in's ``_single_line``)."""
    if _RE_LINE_BREAK.search(value):
        return " ".join(value.splitlines())
    return value


def truncate_utf8(value: str, max_bytes: int) -> tuple[str, bool]:
    """Cut ``value`` to at most ``max_bytes`` UTF-8 bytes on a character boundary."""
    if len(value) * 4 <= max_bytes:
        return value, False  # fast path: cannot be too long
    raw = value.encode("utf-8")
    if len(raw) <= max_bytes:
        return value, False
    return raw[:max_bytes].decode("utf-8", "ignore"), True


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


def _dump_json(value: Any) -> str:
    """Compact JSON text used for dict / list attribute values."""
    return json.dumps(json_safe(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _ns_to_iso(time_ns: int) -> str:
    """ISO 8601 UTC with microseconds for an epoch timestamp in ns."""
    seconds, rest = divmod(time_ns, 1_000_000_000)
    moment = _EPOCH + timedelta(seconds=seconds, microseconds=rest // 1000)
    return moment.isoformat(timespec="microseconds")


def _check_record(record: EventRecord) -> None:
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
        if not _MIN_TIME_NS <= stamp <= _MAX_TIME_NS:
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
        return _dump_json(data).encode("utf-8")
    except Exception as exc:  # noqa: BLE001 - last resort for quarantine
        return json.dumps({"unserialisable_record": f"{type(exc).__name__}: {exc}"}).encode()


# --------------------------------------------------------------------------
# line protocol


def _format_float(value: float) -> str:
    """Format like influxdb-client: ``str(value)`` without a trailing ``.0``."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _render(pieces: tuple[str, ...], text: str | None, value: float | None, time_ns: int) -> str:
    """Render a line from its template pieces and the state's ``state`` / ``value`` fields."""
    if text is None:
        number = repr(value)  # _format_float, inlined for the hot path
        if number.endswith(".0"):
            number = number[:-2]
        return f"{pieces[0]}value={number}{pieces[1]}{time_ns}"
    if value is None:
        return f'{pieces[0]}state="{text.translate(_ESCAPE_STRING)}"{pieces[1]}{time_ns}'
    return (
        f'{pieces[0]}state="{text.translate(_ESCAPE_STRING)}"{pieces[1]}'
        f"value={_format_float(value)}{pieces[2]}{time_ns}"
    )


def _field_text(key: str, value: Any) -> str:
    """One escaped ``key=value`` field: strings quoted, numbers as floats."""
    name = key.translate(_ESCAPE_KEY)
    if isinstance(value, str):
        return f'{name}="{value.translate(_ESCAPE_STRING)}"'
    return f"{name}={_format_float(float(value))}"


def format_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, float | str],
    time_ns: int,
) -> str:
    """Serialise one point; names and values must already be sanitised.

    Escaping follows the line-protocol spec (measurement: comma, space; tag
    keys, tag values, field keys: comma, equals, space; string field values:
    double quote, backslash). Tags and fields are sorted by key like
    influxdb-client; empty tag keys or values are left out. Numbers are always
    written as floats. Raises :class:`EncodeError` when there is no field.
    """
    if not fields:
        raise EncodeError("point has no fields left")
    parts = [measurement.translate(_ESCAPE_MEASUREMENT)]
    for key in sorted(tags):
        tag_value = tags[key]
        if key and tag_value:
            parts.append(f",{key.translate(_ESCAPE_KEY)}={tag_value.translate(_ESCAPE_KEY)}")
    separator = " "
    for key in sorted(fields):
        parts.append(f"{separator}{_field_text(key, fields[key])}")
        separator = ","
    parts.append(f" {time_ns}")
    return "".join(parts)


def _unused_key(mapping: Mapping[str, Any]) -> str:
    """First of ``time_``, ``time__``, ... not yet in ``mapping``."""
    key = f"{_RESERVED_KEY}_"
    while key in mapping:
        key = f"{key}_"
    return key


class _Point:
    """Mutable scratch state while encoding one record."""

    __slots__ = ("dropped", "fields", "tags", "truncated")

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}
        self.fields: dict[str, float | str] = {}
        self.dropped = 0
        self.truncated = 0


class _Miss:
    """Marker type: the line cache does not cover this record."""


_MISS: Final = _Miss()


# State shapes (``state`` field present, ``value`` field present): template keys.
_VALUE_ONLY: Final = (False, True)
_TEXT_ONLY: Final = (True, False)
_TEXT_AND_VALUE: Final = (True, True)


class _Template(NamedTuple):
    """Cached part of a line: literal pieces around the ``state`` / ``value`` fields."""

    pieces: tuple[str, ...]
    dropped: int
    truncated: int


def _immutable_values(attributes: Mapping[str, Any]) -> bool:
    """Whether every key is a string and every value an immutable scalar.

    Only then does the identity of the attributes object pin its content: a
    list value could be changed in place while the mapping stays the same.
    """
    for key, value in attributes.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, (str, int, float))):
            return False
    return True


class LineProtocolEncoder:
    """Encode :class:`EventRecord` objects as InfluxDB line protocol."""

    def __init__(
        self,
        config: EncoderConfig | None = None,
        *,
        frozen_mappings: Iterable[type] = (),
    ) -> None:
        """Use ``config`` (defaults: the built-in integration's schema).

        ``frozen_mappings`` names attribute mapping types that are never
        mutated once built (Home Assistant's ``ReadOnlyDict``): lines of records
        whose attributes are one of these reuse the attribute-derived part
        rendered for the same attributes object before (see ``_cached``).
        """
        self.config = config or EncoderConfig()
        self._frozen_types = frozenset(frozen_mappings)
        self._include_unknown = self.config.include_unknown
        # entity_id -> (attributes object, {state shape: template}); holding the
        # attributes object keeps its id() from being reused by another object.
        self._lines: dict[str, tuple[Mapping[str, Any], dict[tuple[bool, bool], _Template]]] = {}
        # Attribute names repeat endlessly; sanitising each once saves ~30 % of the work.
        self._names: dict[tuple[str, _NameKind], str] = {}
        self._overrides = self.config.overrides
        # entity_id -> (override measurement, all ignored attributes), or None when no
        # override names it. Only the template / full paths read it, never the line cache.
        self._resolved: dict[str, tuple[str | None, frozenset[str]] | None] = {}
        self._static_tags: dict[str, str] = {}
        for key, value in self.config.tags.items():
            name = self._name(str(key), _TAG_KEY)
            if name:
                self._static_tags[name], _ = self._tag_value(value)

    # -- sanitising -------------------------------------------------------

    def _name(self, raw: str, kind: _NameKind = _FIELD_KEY) -> str:
        """Sanitise a measurement, tag key or field key ("" if nothing is left)."""
        if len(raw) > _CACHED_NAME_CHARS:
            return self._sanitise_name(raw, kind)
        cache_key = (raw, kind)
        cached = self._names.get(cache_key)
        if cached is not None:
            return cached
        if len(self._names) >= _NAME_CACHE_SIZE:
            self._names.clear()  # bounded: odd inputs cannot grow it forever
        name = self._names[cache_key] = self._sanitise_name(raw, kind)
        return name

    def _sanitise_name(self, raw: str, kind: _NameKind) -> str:
        """Apply the name rules (see the module docstring)."""
        text = clean_text(raw)
        # The built-in joins the lines of a measurement; its client writes a line
        # break in a key as the two characters "\n", which InfluxDB keeps.
        text = single_line(text) if kind is _MEASUREMENT else text.replace("\n", "\\n")
        name, _ = truncate_utf8(text, self.config.max_name_bytes)
        name = _RE_DANGLING_BACKSLASH.sub("", name)
        if kind is _MEASUREMENT:
            return name.lstrip("#")  # "#" starts a comment line: nothing would be stored
        # InfluxDB 2 discards a point with a tag key starting with "_".
        return name.lstrip("_") if kind is _TAG_KEY else name

    def _tag_value(self, raw: Any) -> tuple[str, bool]:
        r"""Sanitise a tag value as the built-in writes it; returns (value, truncated).

        Strings get their lines joined, anything else is ``str(value)``; a line
        break left becomes the two characters ``\n``, as its client writes it.
        """
        text = single_line(raw) if isinstance(raw, str) else str(raw)
        text, cut = truncate_utf8(
            clean_text(text).replace("\n", "\\n"), self.config.max_tag_value_bytes
        )
        return _RE_DANGLING_BACKSLASH.sub("", text), cut

    def _clean(self, raw: str) -> tuple[str, bool]:
        """Sanitise a string field value (one line, valid UTF-8, capped); True if cut."""
        return truncate_utf8(single_line(clean_text(raw)), self.config.max_string_bytes)

    def _string(self, point: _Point, raw: str) -> str:
        """:meth:`_clean`, counting a cut in ``point``."""
        text, cut = self._clean(raw)
        point.truncated += cut
        return text

    @staticmethod
    def _free_key(fields: Mapping[str, Any], key: str) -> str:
        """Apply the built-in's collision rule: append ``_`` once."""
        return f"{key}_" if key in fields else key

    # -- schema -----------------------------------------------------------

    def _override(self, entity_id: str) -> tuple[str | None, frozenset[str]] | None:
        """(measurement, ignored attributes) an override sets for ``entity_id``, cached."""
        if self._overrides is None:
            return None
        try:
            return self._resolved[entity_id]
        except KeyError:
            pass
        if len(self._resolved) >= _LINE_CACHE_SIZE:
            self._resolved.clear()  # bounded: event records bring their own entity ids
        override = self._overrides.resolve(entity_id)
        resolved = (
            None
            if override is None
            else (
                override.measurement or None,
                self.config.ignore_attributes | (override.ignore_attributes or frozenset()),
            )
        )
        self._resolved[entity_id] = resolved
        return resolved

    def _measurement(
        self, record: EventRecord, override: str | None = None
    ) -> tuple[str, bool, bool]:
        """Pick the measurement; returns (name, include_uom, include_dc)."""
        conf = self.config
        attributes = record.attributes
        include_uom = include_dc = True
        measurement: Any
        if override:
            measurement = override
        elif conf.override_measurement:
            measurement = conf.override_measurement
        else:
            strategy = conf.measurement_attr
            if strategy == MeasurementStrategy.ENTITY_ID:
                measurement = record.entity_id
            elif strategy == MeasurementStrategy.DOMAIN:
                measurement = record.domain
            elif strategy == MeasurementStrategy.DOMAIN_DEVICE_CLASS:
                device_class = attributes.get("device_class")
                if device_class is None:  # the built-in writes "sensor__" for ""
                    measurement = record.domain
                else:
                    measurement = f"{record.domain}__{device_class}"
                    include_dc = False
            elif strategy == MeasurementStrategy.OVERRIDE:
                measurement = None
            else:
                measurement = attributes.get(strategy)
                if measurement not in (None, ""):
                    include_uom = strategy != MeasurementStrategy.UNIT_OF_MEASUREMENT
            if measurement in (None, ""):
                measurement = conf.default_measurement or record.entity_id
        name = self._name(str(measurement), _MEASUREMENT)
        return name or self._name(record.entity_id, _MEASUREMENT), include_uom, include_dc

    def _add_number(self, point: _Point, key: str, value: Any) -> bool:
        """Add ``float(value)`` under ``key``; False if it is not a number at all."""
        try:
            number = float(value)
        except OverflowError:
            point.dropped += 1  # an int too large even for a float
            return True
        except Exception:  # noqa: BLE001 - any odd __float__ means "not a number"
            return False
        if math.isfinite(number):
            point.fields[key] = number
        else:
            point.dropped += 1
        return True

    def _add_attribute(self, point: _Point, raw_key: str, value: Any) -> None:
        """Add one attribute as float field or ``<key>_str`` (built-in rules)."""
        key = self._name(raw_key)
        if not key:
            point.dropped += 1
            return
        key = self._free_key(point.fields, key)
        # Like the built-in, anything float() accepts ("21.5", True, 3) is a number.
        if self._add_number(point, key, value):
            return
        try:
            # The built-in's text for anything that is not a number, containers included.
            text = value if isinstance(value, str) else str(value)
        except Exception:  # noqa: BLE001 - a broken __str__ loses only this value
            point.dropped += 1
            return
        text = self._string(point, text)
        point.fields[f"{key}_str"] = text
        if _RE_DIGIT_TAIL.match(text):
            self._add_number(point, key, _RE_DECIMAL.sub("", text))

    def _add_extra(self, point: _Point, raw_key: str, value: Any) -> None:
        """Add one enrichment field: strings stay strings under their own key."""
        if value is None:
            return
        key = self._name(raw_key)
        if not key:
            point.dropped += 1
            return
        key = self._free_key(point.fields, key)
        if isinstance(value, str):
            point.fields[key] = self._string(point, value)
        elif isinstance(value, (Mapping, list, tuple, set, frozenset)):
            point.fields[key] = self._string(point, _dump_json(value))
        elif not self._add_number(point, key, value):
            point.fields[key] = self._string(point, str(value))

    def _state_parts(self, state: str) -> tuple[str | None, float | None, int, int]:
        """State as (``state`` text, ``value``, dropped, truncated); None = no such field.

        Float -> ``value``; bool-ish -> ``value`` + ``state``; else ``state``.
        """
        value: float | None
        text: str | None
        dropped = truncated = 0
        try:
            value = float(state)
            text = None
        except ValueError:
            text = state
            if state in _STATE_AS_ONE:
                value = 1.0
            elif state in _STATE_AS_ZERO:
                value = 0.0
            else:
                value = None
        if value is not None and not math.isfinite(value):
            dropped = 1
            value = None
            text = state  # keep the reading as text rather than lose it
        if text is not None:
            text, cut = self._clean(text)
            truncated = int(cut)
        return text, value, dropped, truncated

    def _state_fields(self, point: _Point, state: str) -> None:
        """Add the ``state`` / ``value`` fields of ``state`` to ``point``."""
        text, value, dropped, truncated = self._state_parts(state)
        point.dropped += dropped
        point.truncated += truncated
        if text is not None:
            point.fields["state"] = text
        if value is not None:
            point.fields["value"] = value

    def _build(self, record: EventRecord) -> tuple[str, _Point] | None:
        """Compute measurement, tags and fields; None if skipped."""
        _check_record(record)
        if record.state in _SKIPPED_STATES and not self.config.include_unknown:
            return None
        point = _Point()
        self._state_fields(point, record.state)
        return self._rest(record, point), point

    def _rest(self, record: EventRecord, point: _Point) -> str:
        """Add everything but the state fields to ``point``; return the measurement.

        The state fields must already be in ``point.fields`` (attribute keys
        that collide with them get the ``_`` suffix).
        """
        conf = self.config
        ignore_attributes = conf.ignore_attributes
        override = self._override(record.entity_id)
        if override is None:
            measurement, include_uom, include_dc = self._measurement(record)
        else:
            measurement, include_uom, include_dc = self._measurement(record, override[0])
            ignore_attributes = override[1]
        point.tags["domain"], _ = self._tag_value(record.domain)
        point.tags["entity_id"], _ = self._tag_value(record.object_id)

        for raw_key, attr_value in record.attributes.items():
            key = str(raw_key)
            if key in conf.tags_attributes:
                if attr_value is None:
                    continue
                tag_key = self._name(key, _TAG_KEY)
                tag_value, cut = self._tag_value(attr_value)
                point.truncated += cut
                if tag_key and tag_value:
                    point.tags[tag_key] = tag_value
            elif (
                (key != "unit_of_measurement" or include_uom)
                and (key != "device_class" or include_dc)
                and key not in ignore_attributes
            ):
                self._add_attribute(point, key, attr_value)
        if conf.entity_tags is not None and (more_tags := conf.entity_tags(record.entity_id)):
            for raw_key, raw_value in more_tags.items():
                tag_key = self._name(raw_key)
                tag_value, cut = self._tag_value(raw_value)
                point.truncated += cut
                if tag_key and tag_value:
                    point.tags[tag_key] = tag_value

        for raw_key, extra_value in (record.extra or {}).items():
            self._add_extra(point, str(raw_key), extra_value)

        # InfluxDB reserves "time" as a key; keep the built-in's rename.
        if _RESERVED_KEY in point.fields:
            point.fields[_unused_key(point.fields)] = point.fields.pop(_RESERVED_KEY)
        if _RESERVED_KEY in point.tags:
            point.tags[_unused_key(point.tags)] = point.tags.pop(_RESERVED_KEY)
        point.tags.update(self._static_tags)
        return measurement

    # -- line cache -------------------------------------------------------
    #
    # Home Assistant hands a new state the *same* attributes object when only
    # the state changed, and most updates are exactly that. Everything but the
    # ``state`` / ``value`` fields and the timestamp is a function of the
    # entity id, the attributes and which of the two state fields are present
    # (they decide attribute key collisions), so that part of the line is
    # rendered once and reused while the entity keeps its attributes object.

    def _cached(self, record: EventRecord) -> tuple[str, int, int] | _Miss | None:
        """Encode through the line cache: (line, dropped, truncated), None if skipped.

        Returns ``_MISS`` for records the cache does not cover (enrichment
        fields, mutable attribute mappings, unusual values).
        """
        state = record.state
        time_ns = record.time_ns
        changed_ns = record.last_changed_ns
        if not (
            type(state) is str
            and type(time_ns) is int
            and type(changed_ns) is int
            and _MIN_TIME_NS <= time_ns <= _MAX_TIME_NS
            and _MIN_TIME_NS <= changed_ns <= _MAX_TIME_NS
        ):
            return _MISS  # let _build raise the precise error
        attributes = record.attributes
        if type(attributes) not in self._frozen_types or record.extra:
            return _MISS
        if state in _SKIPPED_STATES and not self._include_unknown:
            # Only an entity id already checked may be skipped without _check_record.
            return None if record.entity_id in self._lines else _MISS
        text, value, dropped, truncated, shape = self._parse_state(state)
        slot = self._lines.get(record.entity_id)
        if slot is None or slot[0] is not attributes:
            if not _immutable_values(attributes):
                return _MISS
            try:
                _check_record(record)
            except EncodeError:
                return _MISS
            slot = (attributes, {})
            lines = self._lines
            if len(lines) >= _LINE_CACHE_SIZE:
                del lines[next(iter(lines))]  # oldest entity first
            lines[record.entity_id] = slot
        template = slot[1].get(shape)
        if template is None:
            template = slot[1][shape] = self._template(record, shape)
        line = _render(template.pieces, text, value, time_ns)
        return line, dropped + template.dropped, truncated + template.truncated

    def cached_line(
        self, entity_id: str, state: str, attributes: Mapping[str, Any], time_ns: int
    ) -> bytes | None:
        """Return the line of a plain state change straight from the line cache, or None.

        The flush job's fast path for Home Assistant states: no
        :class:`EventRecord` is built when ``attributes`` is the very object
        this entity's cached template was rendered from (HA reuses it while
        only the state changes). None (attributes not seen before, an unknown state, a value dropped or cut) means: encode an
        EventRecord instead, which also fills the cache and counts what it
        drops. ``last_changed`` is not part of a line, so it is not needed here.
        """
        slot = self._lines.get(entity_id)
        if (
            slot is None
            or slot[0] is not attributes
            or not _MIN_TIME_NS <= time_ns <= _MAX_TIME_NS
            or state in _SKIPPED_STATES
        ):
            return None
        text, value, dropped, truncated, shape = self._parse_state(state)
        template = slot[1].get(shape)
        if template is None or dropped or truncated or template.dropped or template.truncated:
            return None
        return _render(template.pieces, text, value, time_ns).encode("utf-8")

    def _parse_state(
        self, state: str
    ) -> tuple[str | None, float | None, int, int, tuple[bool, bool]]:
        """:meth:`_state_parts` plus the line shape, with a shortcut for plain numbers."""
        try:
            value: float | None = float(state)
        except ValueError:
            value = None
        if value is not None and value - value == 0.0:
            # A finite number (the usual state): only the value field.
            return None, value, 0, 0, _VALUE_ONLY
        text, value, dropped, truncated = self._state_parts(state)
        return (
            text,
            value,
            dropped,
            truncated,
            (_TEXT_AND_VALUE if value is not None else _TEXT_ONLY),
        )

    def _template(self, record: EventRecord, shape: tuple[bool, bool]) -> _Template:
        """Render the attribute-derived part of ``record``'s line for one state shape."""
        point = _Point()
        slots: set[str] = set()
        if shape[0]:
            point.fields["state"] = ""
            slots.add("state")
        if shape[1]:
            point.fields["value"] = 0.0
            slots.add("value")
        measurement = self._rest(record, point)
        tags = point.tags
        current = [measurement.translate(_ESCAPE_MEASUREMENT)]
        for key in sorted(tags):
            tag_value = tags[key]
            if key and tag_value:
                current.append(f",{key.translate(_ESCAPE_KEY)}={tag_value.translate(_ESCAPE_KEY)}")
        pieces: list[str] = []
        separator = " "
        fields = point.fields
        for key in sorted(fields):
            current.append(separator)
            separator = ","
            if key in slots:
                pieces.append("".join(current))
                current = []
                continue
            current.append(_field_text(key, fields[key]))
        current.append(" ")
        pieces.append("".join(current))
        return _Template(tuple(pieces), point.dropped, point.truncated)

    # -- public API -------------------------------------------------------

    def forget(self, entity_ids: Iterable[str] | None = None) -> None:
        """Drop the cached lines of ``entity_ids`` (all when None): their tags changed.

        Call it from the thread that encodes, between two records (the flush
        job's convert step does, in capture order), never from another thread.
        """
        if entity_ids is None:
            self._lines.clear()
            return
        for entity_id in entity_ids:
            self._lines.pop(entity_id, None)

    def _line(self, record: EventRecord) -> tuple[str, int, int] | None:
        """(line, dropped, truncated) for ``record``; None if skipped; may raise."""
        cached = self._cached(record)
        return self._uncached(record) if isinstance(cached, _Miss) else cached

    def _uncached(self, record: EventRecord) -> tuple[str, int, int] | None:
        """:meth:`_line` without the line cache."""
        built = self._build(record)
        if built is None:
            return None
        measurement, point = built
        line = format_line(measurement, point.tags, point.fields, record.time_ns)
        return line, point.dropped, point.truncated

    def encode(self, record: EventRecord) -> bytes | None:
        """Encode one record as a line (no trailing newline).

        Returns None when the record is intentionally skipped; raises
        :class:`EncodeError` when it cannot be encoded.
        """
        encoded = self._line(record)
        return None if encoded is None else encoded[0].encode("utf-8")

    def encode_many(self, records: Iterable[EventRecord | Rendered]) -> EncodeResult:
        """Encode many records; never raises (bad records end up in ``rejected``)."""
        result = EncodeResult()
        append = result.lines.append
        cached = self._cached
        for record in records:
            if isinstance(record, tuple):
                append(record)
                continue
            try:
                encoded = cached(record)
                if isinstance(encoded, _Miss):
                    encoded = self._uncached(record)
                if encoded is None:
                    result.skipped += 1
                    continue
                line, dropped, truncated = encoded
                result.dropped_values += dropped
                result.truncated_values += truncated
                append((record.time_ns, line.encode("utf-8")))
            except EncodeError as exc:
                result.rejected.append((record, str(exc)))
            except Exception as exc:  # noqa: BLE001 - one odd record must not stop the batch
                result.rejected.append((record, f"unexpected {type(exc).__name__}: {exc}"[:500]))
        return result


# --------------------------------------------------------------------------
# data-api JSON


def idempotency_key(entity_id: str, time_ns: int, event_type: str) -> str:
    """Stable key for one event: sha256 hex (32 chars) of its identity."""
    raw = f"{entity_id}\x1f{time_ns}\x1f{event_type}"
    return hashlib.sha256(clean_text(raw).encode("utf-8")).hexdigest()[:32]


class JsonEventEncoder:
    """Encode :class:`EventRecord` objects as one compact JSON object each.

    Keys: ``entity_id``, ``domain``, ``state``, ``attributes`` (JSON-safe:
    non-finite floats become null, other objects their ``str``),
    ``last_changed`` / ``last_updated`` (ISO 8601 UTC), ``time_ns``,
    ``context_id``, ``event_type``, ``idempotency_key`` and, when the record
    has any, ``extra``. Unknown / unavailable / empty states are skipped unless
    ``include_unknown`` is set (the same default as :class:`EncoderConfig`).
    """

    def __init__(self, *, include_unknown: bool = False) -> None:
        """Configure whether unknown / unavailable / empty states are sent."""
        self.include_unknown = include_unknown

    def encode(self, record: EventRecord) -> bytes | None:
        """Encode one record; None if skipped, :class:`EncodeError` if unencodable."""
        _check_record(record)
        if record.state in _SKIPPED_STATES and not self.include_unknown:
            return None
        # _check_record bounds both stamps to int64 ns: years 1677-2262, no overflow.
        last_changed = _ns_to_iso(record.last_changed_ns)
        last_updated = _ns_to_iso(record.time_ns)
        data: dict[str, Any] = {
            "entity_id": clean_text(record.entity_id),
            "domain": clean_text(record.domain),
            "state": clean_text(record.state),
            "attributes": json_safe(record.attributes),
            "last_changed": last_changed,
            "last_updated": last_updated,
            "time_ns": record.time_ns,
            "context_id": None if record.context_id is None else clean_text(record.context_id),
            "event_type": clean_text(str(record.event_type)),
            "idempotency_key": idempotency_key(
                record.entity_id, record.time_ns, str(record.event_type)
            ),
        }
        if record.extra:
            data["extra"] = json_safe(record.extra)
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")

    def encode_many(self, records: Iterable[EventRecord | Rendered]) -> EncodeResult:
        """Encode many records; never raises (bad records end up in ``rejected``)."""
        result = EncodeResult()
        for record in records:
            if isinstance(record, tuple):
                result.lines.append(record)
                continue
            try:
                payload = self.encode(record)
            except EncodeError as exc:
                result.rejected.append((record, str(exc)))
            except Exception as exc:  # noqa: BLE001 - one odd record must not stop the batch
                result.rejected.append((record, f"unexpected {type(exc).__name__}: {exc}"[:500]))
            else:
                if payload is None:
                    result.skipped += 1
                else:
                    result.lines.append((record.time_ns, payload))
        return result
