r"""Encode HA-free event snapshots as InfluxDB line protocol (data-api JSON: ``json_events``).

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

from collections.abc import Iterable, Mapping
import math
import re
from typing import Any, Final

from .encoding import (
    MAX_TIME_NS,
    MIN_TIME_NS,
    SKIPPED_STATES,
    EncodeError,
    EncoderConfig,
    EncodeResult,
    EventRecord,
    MeasurementStrategy,
    Rendered,
    check_record,
    clean_text,
    dump_json,
)
from .line_cache import (
    LINE_CACHE_SIZE,
    MISS,
    SHAPE_SLOTS,
    TEXT_AND_VALUE,
    TEXT_ONLY,
    VALUE_ONLY,
    LineCache,
    Miss,
    Template,
    immutable_values,
)

__all__ = ["LineProtocolEncoder", "format_line", "line_pieces", "single_line", "truncate_utf8"]

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

_NAME_CACHE_SIZE: Final = 4096
# Longer names are sanitised each time: the cache must stay small.
_CACHED_NAME_CHARS: Final = 256
_RESERVED_KEY: Final = "time"


class _NameKind:
    """Where a name goes: measurement, tag key or field key (each has its rules)."""


_MEASUREMENT: Final = _NameKind()
_TAG_KEY: Final = _NameKind()
_FIELD_KEY: Final = _NameKind()


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


def _format_float(value: float) -> str:
    """Format like influxdb-client: ``str(value)`` without a trailing ``.0``."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _render(pieces: tuple[str, ...], text: str | None, value: float | None, time_ns: int) -> str:
    """Render a line from its template pieces and the state's ``state`` / ``value`` fields."""
    # The line cache's hot path: _field_text's generic key escaping is not needed here.
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
    return f"{line_pieces(measurement, tags, fields)[0]}{time_ns}"


def line_pieces(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, float | str],
    slots: frozenset[str] = frozenset(),
) -> tuple[str, ...]:
    """Render the line up to its timestamp, cut where each field named in ``slots`` goes.

    The fields in ``slots`` are left out (the line cache fills them in per
    state); without slots this is the whole line up to its timestamp.
    """
    current = [measurement.translate(_ESCAPE_MEASUREMENT)]
    for key in sorted(tags):
        tag_value = tags[key]
        if key and tag_value:
            current.append(f",{key.translate(_ESCAPE_KEY)}={tag_value.translate(_ESCAPE_KEY)}")
    pieces: list[str] = []
    separator = " "
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
    return tuple(pieces)


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
        self._lines = LineCache()
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
        if len(self._resolved) >= LINE_CACHE_SIZE:
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
            point.fields[key] = self._string(point, dump_json(value))
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
        check_record(record)
        if record.state in SKIPPED_STATES and not self.config.include_unknown:
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

    # -- line cache (see .line_cache) -------------------------------------

    def _cached(self, record: EventRecord) -> tuple[str, int, int] | Miss | None:
        """Encode through the line cache: (line, dropped, truncated), None if skipped.

        Returns ``MISS`` for records the cache does not cover (enrichment
        fields, mutable attribute mappings, unusual values).
        """
        state = record.state
        time_ns = record.time_ns
        changed_ns = record.last_changed_ns
        if not (
            type(state) is str
            and type(time_ns) is int
            and type(changed_ns) is int
            and MIN_TIME_NS <= time_ns <= MAX_TIME_NS
            and MIN_TIME_NS <= changed_ns <= MAX_TIME_NS
        ):
            return MISS  # let _build raise the precise error
        attributes = record.attributes
        if type(attributes) not in self._frozen_types or record.extra:
            return MISS
        if state in SKIPPED_STATES and not self._include_unknown:
            # Only an entity id already checked may be skipped without check_record.
            return None if record.entity_id in self._lines else MISS
        text, value, dropped, truncated, shape = self._parse_state(state)
        slot = self._lines.get(record.entity_id)
        if slot is None or slot[0] is not attributes:
            if not immutable_values(attributes):
                return MISS
            try:
                check_record(record)
            except EncodeError:
                return MISS
            slot = self._lines.admit(record.entity_id, attributes)
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
            or not MIN_TIME_NS <= time_ns <= MAX_TIME_NS
            or state in SKIPPED_STATES
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
            return None, value, 0, 0, VALUE_ONLY
        text, value, dropped, truncated = self._state_parts(state)
        return (
            text,
            value,
            dropped,
            truncated,
            (TEXT_AND_VALUE if value is not None else TEXT_ONLY),
        )

    def _template(self, record: EventRecord, shape: tuple[bool, bool]) -> Template:
        """Render the attribute-derived part of ``record``'s line for one state shape."""
        point = _Point()
        if shape[0]:
            point.fields["state"] = ""
        if shape[1]:
            point.fields["value"] = 0.0
        measurement = self._rest(record, point)
        pieces = line_pieces(measurement, point.tags, point.fields, SHAPE_SLOTS[shape])
        return Template(pieces, point.dropped, point.truncated)

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
        return self._uncached(record) if isinstance(cached, Miss) else cached

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
                if isinstance(encoded, Miss):
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
