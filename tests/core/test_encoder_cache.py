"""The line encoder's attribute cache must never change a single byte of output.

Records are encoded by an encoder with the cache (attributes of a "frozen"
mapping type, reused across records like Home Assistant does) and one without;
lines, counters and rejections must be identical.
"""

from typing import Any

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.ha_ingestor.core import line_cache as encoder_module
from custom_components.ha_ingestor.core.encoder import (
    EncodeError,
    EncoderConfig,
    EncodeResult,
    EventRecord,
    JsonEventEncoder,
    LineProtocolEncoder,
    MeasurementStrategy,
    Override,
    Overrides,
)
from tests.core.test_encoder import T, rec


class Frozen(dict[str, Any]):
    """Stands in for Home Assistant's ReadOnlyDict."""


def cached(config: EncoderConfig | None = None) -> LineProtocolEncoder:
    return LineProtocolEncoder(config, frozen_mappings=(Frozen,))


def outcome(result: EncodeResult) -> tuple[Any, ...]:
    return (
        result.lines,
        result.skipped,
        [(id(r), reason) for r, reason in result.rejected],
        result.dropped_values,
        result.truncated_values,
    )


def encode_one(encoder: LineProtocolEncoder, record: EventRecord) -> Any:
    try:
        return encoder.encode(record)
    except EncodeError as exc:
        return ("error", str(exc))


# --------------------------------------------------------------------------- strategies

# Names chosen to hit every naming rule: collisions with state / value / *_str,
# the reserved "time", stripped prefixes, escapes, control characters, emptiness.
KEYS = st.sampled_from(
    [
        "friendly_name",
        "unit_of_measurement",
        "device_class",
        "state_class",
        "state",
        "value",
        "state_str",
        "value_",
        "time",
        "time_",
        "_hidden",
        "#comment",
        "a,b=c d",
        "tab\there",
        "line\nbreak",
        "trail\\",
        "",
        "_",
        "ünï",
        "\ud800lone",
        "room",
        "floor",
    ]
)
TEXT = st.one_of(
    st.sampled_from(
        ["12 kWh", "3.5", "1.2.3", "on", "x\ny", 'q"uo\\te', "", "W", "°C", "a,b c=d", "\\"]
    ),
    st.text(max_size=12),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
VALUES = st.one_of(
    SCALARS,
    # Mutable values: the cache must step aside for them.
    st.lists(SCALARS, max_size=2),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
)
ATTRIBUTES = st.dictionaries(KEYS, VALUES, max_size=6)
STATES = st.one_of(
    st.sampled_from(
        [
            "21.5",
            "21",
            "-0",
            "1e400",
            "nan",
            "inf",
            "-inf",
            "on",
            "off",
            "home",
            "not_home",
            "unknown",
            "unavailable",
            "",
            "idle",
            'say "hi"\\',
            "two\nlines",
            "x" * 40,
            "\ud800",
        ]
    ),
    st.text(max_size=10),
    st.floats(allow_nan=False).map(repr),
)
ENTITY_IDS = st.sampled_from(
    ["sensor.temp", "sensor.power_1", "binary_sensor.door", "light.a b,c", "bad", "sensor."]
)
# Every level and both settings, including an empty measurement (falls back).
OVERRIDES = Overrides(
    entities={"sensor.temp": Override("temp room", frozenset({"room"}))},
    domains={
        "sensor": Override(None, frozenset({"friendly_name"})),
        "binary_sensor": Override("", None),
    },
    globs={"sensor.power_*": Override("_power", None), "light.*": Override(None, frozenset())},
)
CONFIGS = st.builds(
    EncoderConfig,
    measurement_attr=st.sampled_from([*list(MeasurementStrategy), "state_class", "room"]),
    default_measurement=st.sampled_from([None, "", "units", "_x"]),
    override_measurement=st.sampled_from([None, "", "over ride"]),
    tags=st.sampled_from([{}, {"site": "home"}, {"domain": "x", "time": "t", "_a": "b"}]),
    tags_attributes=st.sampled_from([frozenset(), frozenset({"room", "floor", "time"})]),
    ignore_attributes=st.sampled_from([frozenset(), frozenset({"state_class", "value"})]),
    include_unknown=st.booleans(),
    max_string_bytes=st.sampled_from([16 * 1024, 8]),
    max_name_bytes=st.sampled_from([256, 4]),
    max_tag_value_bytes=st.sampled_from([1024, 3]),
    overrides=st.sampled_from([None, OVERRIDES]),
)


@st.composite
def record_batches(draw: st.DrawFn) -> list[EventRecord]:
    """Records sharing a few attribute objects (identity reuse), like HA states."""
    pool = [Frozen(a) for a in draw(st.lists(ATTRIBUTES, min_size=1, max_size=3))]
    if draw(st.booleans()):
        pool.append({"plain": "dict"})  # a mutable mapping type: never cached
    return [
        rec(
            draw(STATES),
            draw(st.sampled_from(pool)),
            entity_id=draw(ENTITY_IDS),
            time_ns=draw(st.sampled_from([T, T + 1, -1, 2**63, True, 1.5])),
            last_changed_ns=draw(st.sampled_from([T, 2**64])),
            context_id=draw(st.sampled_from([None, "", "01CTX"])),
            extra=draw(st.sampled_from([None, {}, {"ctx_x": "1", "ctx_y": 2.5}])),
        )
        for _ in range(draw(st.integers(min_value=1, max_value=12)))
    ]


@settings(max_examples=400, deadline=None)
@given(config=CONFIGS, records=record_batches())
def test_cache_is_byte_identical(config: EncoderConfig, records: list[EventRecord]) -> None:
    with_cache, without = cached(config), LineProtocolEncoder(config)
    # Twice over the same batch: the second pass is served from the cache.
    for _ in range(2):
        assert outcome(with_cache.encode_many(records)) == outcome(without.encode_many(records))
    for record in records:
        assert encode_one(with_cache, record) == encode_one(without, record)


# --------------------------------------------------------------------------- units


def test_same_attributes_object_is_rendered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = cached()
    calls = []
    real = encoder._template

    def counting(*args: Any) -> Any:
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(encoder, "_template", counting)
    attrs = Frozen(unit_of_measurement="W", friendly_name="P")
    lines = [encoder.encode(rec(str(i), attrs, time_ns=T + i)) for i in range(5)]
    assert calls == [(False, True)]
    assert lines[3] == b'W,domain=sensor,entity_id=temp friendly_name_str="P",value=3 %d' % (T + 3)
    encoder.encode(rec("on", attrs))  # a new state shape: one more template
    encoder.encode(rec("idle", attrs))
    assert calls == [(False, True), (True, True), (True, False)]
    encoder.encode(rec("1", Frozen(attrs)))  # equal but another object: rendered again
    assert len(calls) == 4


def test_plain_dicts_and_mutable_values_are_not_cached() -> None:
    encoder = cached()
    plain: dict[str, Any] = {"a": "x"}
    assert (
        encoder.encode(rec("1", plain))
        == b'sensor.temp,domain=sensor,entity_id=temp a_str="x",value=1 %d' % T
    )
    plain["a"] = "y"  # a mutable mapping may change under the same identity
    assert b'a_str="y"' in (encoder.encode(rec("1", plain)) or b"")
    with_list = Frozen(options=["a"])
    encoder.encode(rec("1", with_list))
    with_list["options"].append("b")  # in place: the same mapping, new content
    assert b"options_str=\"['a', 'b']\"" in (encoder.encode(rec("1", with_list)) or b"")
    assert not encoder._lines


def test_cache_is_bounded_and_evicts_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder_module, "LINE_CACHE_SIZE", 3)
    encoder = cached()
    attrs = Frozen(unit_of_measurement="W")
    for i in range(5):
        encoder.encode(rec("1", attrs, entity_id=f"sensor.s{i}"))
    assert list(encoder._lines) == ["sensor.s2", "sensor.s3", "sensor.s4"]


def test_skipped_states_and_bad_records_through_the_cache() -> None:
    encoder = cached()
    attrs = Frozen(unit_of_measurement="W")
    # Unknown entity: the full check runs (and rejects a bad entity id).
    with pytest.raises(EncodeError, match=r"is not '<domain>\.<object_id>'"):
        encoder.encode(rec("unknown", attrs, entity_id="bad"))
    assert encoder.encode(rec("unavailable", attrs)) is None
    assert encoder.encode(rec("1", attrs)) is not None
    assert encoder.encode(rec("unknown", attrs)) is None  # known entity: skipped at once
    with pytest.raises(EncodeError, match="time_ns"):
        encoder.encode(rec("1", attrs, time_ns=2**63))
    with pytest.raises(EncodeError, match=r"not '<domain>\.<object_id>'"):
        encoder.encode(rec("1", attrs, entity_id="sensor."))
    result = encoder.encode_many([rec("nan", attrs), rec("x" * 20, attrs)])
    assert result.dropped_values == 1
    assert not result.rejected


def test_extra_bypasses_the_cache() -> None:
    encoder = cached(EncoderConfig())
    attrs = Frozen(unit_of_measurement="W")
    line = encoder.encode(rec("1", attrs, context_id="01C", extra={"ctx_t": 2}))
    assert line == b"W,domain=sensor,entity_id=temp ctx_t=2,value=1 %d" % T
    assert not encoder._lines


# --------------------------------------------------------------------------- cached_line


def _uncached_outcome(config: EncoderConfig, record: EventRecord) -> tuple[Any, ...]:
    result = LineProtocolEncoder(config).encode_many([record])
    return (
        result.lines,
        result.skipped,
        result.rejected,
        result.dropped_values,
        result.truncated_values,
    )


@settings(max_examples=400, deadline=None)
@given(config=CONFIGS, records=record_batches())
def test_cached_line_answers_only_what_the_full_path_writes_unchanged(
    config: EncoderConfig, records: list[EventRecord]
) -> None:
    """Whenever ``cached_line`` answers, the full path writes exactly that line.

    Only bare states reach it (no enrichment ``extra``), and Home Assistant's
    ``last_changed`` is never after ``last_updated``, so it is in range
    whenever the timestamp is: records outside those premises are left out.
    """
    encoder = cached(config)
    for record in records:
        if record.extra or record.last_changed_ns != T:
            continue
        encoder.encode_many([record])  # fills the cache the way a flush does
        answer = (
            encoder.cached_line(record.entity_id, record.state, record.attributes, record.time_ns)
            if type(record.time_ns) is int
            else None
        )
        if answer is None:
            continue
        lines, skipped, rejected, dropped, truncated = _uncached_outcome(config, record)
        assert lines == [(record.time_ns, answer)]
        assert (skipped, rejected, dropped, truncated) == (0, [], 0, 0)


def test_cached_line_answers_plain_states_of_a_known_attributes_object() -> None:
    encoder = cached(EncoderConfig(max_string_bytes=8))
    attrs = Frozen(unit_of_measurement="W", friendly_name="P")
    assert encoder.cached_line("sensor.temp", "1", attrs, T) is None  # nothing cached yet
    encoder.encode(rec("0", attrs))
    for state, fields in [
        ("21.5", "value=21.5"),
        ("3", "value=3"),
        ("on", 'state="on",value=1'),
        ("idle", 'state="idle"'),
        ('a"b', 'state="a\\"b"'),
    ]:
        expected = b'W,domain=sensor,entity_id=temp friendly_name_str="P",%s %d' % (
            fields.encode(),
            T + 1,
        )
        # A state shape met for the first time needs its template rendered first.
        assert encoder.cached_line("sensor.temp", state, attrs, T + 1) in (None, expected)
        assert encoder.encode(rec(state, attrs, time_ns=T + 1)) == expected
        assert encoder.cached_line("sensor.temp", state, attrs, T + 1) == expected
    # Everything the full path must see: its counters or its checks.
    assert encoder.cached_line("sensor.temp", "1", Frozen(attrs), T) is None  # other object
    assert encoder.cached_line("sensor.other", "1", attrs, T) is None  # other entity
    assert encoder.cached_line("sensor.temp", "unknown", attrs, T) is None  # skipped
    assert encoder.cached_line("sensor.temp", "nan", attrs, T) is None  # value dropped
    assert encoder.cached_line("sensor.temp", "x" * 20, attrs, T) is None  # text cut
    assert encoder.cached_line("sensor.temp", "1", attrs, 2**63) is None  # out of range


def test_a_cut_attribute_keeps_its_state_on_the_full_path() -> None:
    """A template that dropped or cut a value is never used without its counters."""
    encoder = cached(EncoderConfig(max_string_bytes=4))
    attrs = Frozen(friendly_name="a long name", bad=float("nan"))
    result = encoder.encode_many([rec("1", attrs)])
    assert (result.dropped_values, result.truncated_values) == (1, 1)
    assert encoder._lines  # cached, with its counts ...
    assert encoder.cached_line("sensor.temp", "2", attrs, T) is None  # ... so no shortcut


def test_rendered_points_pass_through_in_order() -> None:
    rendered = (T + 5, b"already rendered")
    for encoder in (cached(), JsonEventEncoder()):
        result = encoder.encode_many([rec("1", time_ns=T), rendered, rec("2", time_ns=T + 9)])
        assert [time_ns for time_ns, _ in result.lines] == [T, T + 5, T + 9]
        assert result.lines[1] is rendered
