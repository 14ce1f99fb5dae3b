"""Tests for the line-protocol and JSON encoders.

Fast unit tests; the proof of equality with the built-in integration is
tests/test_builtin_equality.py (its own code, a real InfluxDB). Here
influxdb-client's ``Point.to_line_protocol()`` is the reference serializer:
property tests compare our output with it wherever it is correct, and the
unit tests below pin every case where we intentionally differ (int -> float,
NaN, surrogates, line breaks, ``#``/``_`` prefixes, dangling backslashes,
dict/list values, oversize strings).
"""

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
import json
import math
from typing import Any
import warnings

from hypothesis import given, settings, strategies as st
from influxdb_client.client.write import point as client_point
import pytest

from custom_components.ha_ingestor.core.encoder import (
    EncodeError,
    EncoderConfig,
    EncodeResult,
    EventRecord,
    JsonEventEncoder,
    LineProtocolEncoder,
    MeasurementStrategy,
    clean_text,
    format_line,
    idempotency_key,
    json_safe,
    record_debug_payload,
    single_line,
    truncate_utf8,
)

# influxdb-client is untyped; go through Any so mypy --strict stays quiet.
Point: Any = client_point.Point

T = 1_700_000_000_123_456_789
T_CHANGED = 1_700_000_000_000_000_000


def rec(
    state: str = "21.5",
    attributes: Mapping[str, Any] | None = None,
    entity_id: str = "sensor.temp",
    time_ns: Any = T,
    **kwargs: Any,
) -> EventRecord:
    return EventRecord(
        entity_id=entity_id,
        state=state,
        attributes={} if attributes is None else attributes,
        time_ns=time_ns,
        last_changed_ns=kwargs.pop("last_changed_ns", T_CHANGED),
        **kwargs,
    )


def line(record: EventRecord, config: EncoderConfig | None = None) -> str:
    payload = LineProtocolEncoder(config).encode(record)
    assert payload is not None
    text = payload.decode()
    assert "\n" not in text
    return text


def line_of(encoder: LineProtocolEncoder, record: EventRecord) -> str:
    payload = encoder.encode(record)
    assert payload is not None
    return payload.decode()


def one(record: EventRecord, config: EncoderConfig | None = None) -> EncodeResult:
    return LineProtocolEncoder(config).encode_many([record])


def client_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any], time_ns: int
) -> str:
    point: Any = Point(measurement)
    for key, value in tags.items():
        point.tag(key, value)
    for key, value in fields.items():
        point.field(key, value)
    point.time(time_ns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return str(point.to_line_protocol())


# ---------------------------------------------------------------- schema


def test_default_schema_matches_builtin() -> None:
    record = rec(
        "21.5",
        {"unit_of_measurement": "°C", "device_class": "temperature", "friendly_name": "Temp"},
    )
    assert line(record) == (
        f'°C,domain=sensor,entity_id=temp device_class_str="temperature",'
        f'friendly_name_str="Temp",value=21.5 {T}'
    )


def test_default_schema_equals_client_output() -> None:
    record = rec("21", {"unit_of_measurement": "kWh", "power": 3, "friendly_name": "A b"})
    expected = client_line(
        "kWh",
        {"domain": "sensor", "entity_id": "temp"},
        {"value": 21.0, "power": 3.0, "friendly_name_str": "A b"},
        T,
    )
    assert line(record) == expected


def test_no_unit_falls_back_to_entity_id_then_default_measurement() -> None:
    assert line(rec("1")).startswith("sensor.temp,")
    config = EncoderConfig(default_measurement="state")
    assert line(rec("1"), config).startswith("state,")
    assert line(rec("1", {"unit_of_measurement": ""}), config).startswith("state,")


def test_unit_is_a_field_unless_it_is_the_measurement() -> None:
    record = rec("1", {"unit_of_measurement": "W"})
    assert "unit_of_measurement_str" not in line(record)
    config = EncoderConfig(measurement_attr=MeasurementStrategy.ENTITY_ID)
    assert line(record, config) == (
        f'sensor.temp,domain=sensor,entity_id=temp unit_of_measurement_str="W",value=1 {T}'
    )


def test_domain_device_class_strategy() -> None:
    config = EncoderConfig(measurement_attr=MeasurementStrategy.DOMAIN_DEVICE_CLASS)
    with_dc = rec("1", {"device_class": "power", "unit_of_measurement": "W"})
    assert line(with_dc, config) == (
        f'sensor__power,domain=sensor,entity_id=temp unit_of_measurement_str="W",value=1 {T}'
    )
    assert line(rec("1", {"device_class": None}), config).startswith("sensor,")
    # Like the built-in: only a missing device class falls back to the domain.
    assert line(rec("1", {"device_class": ""}), config) == (
        f"sensor__,domain=sensor,entity_id=temp value=1 {T}"
    )


def test_device_class_and_domain_strategies() -> None:
    record = rec("1", {"device_class": "power"})
    config = EncoderConfig(measurement_attr=MeasurementStrategy.DEVICE_CLASS)
    # An attribute strategy other than the unit keeps the attribute as a field.
    assert line(record, config) == (
        f'power,domain=sensor,entity_id=temp device_class_str="power",value=1 {T}'
    )
    config = EncoderConfig(measurement_attr="domain")
    assert line(record, config).startswith("sensor,domain=sensor")
    # Non-string attribute values are usable as a measurement.
    config = EncoderConfig(measurement_attr="floor")
    assert line(rec("1", {"floor": 2}), config).startswith("2,")


def test_override_measurement() -> None:
    record = rec("1", {"unit_of_measurement": "W"})
    config = EncoderConfig(override_measurement="ha")
    # Like the built-in: the unit is kept as a field under an override.
    assert line(record, config) == (
        f'ha,domain=sensor,entity_id=temp unit_of_measurement_str="W",value=1 {T}'
    )
    strategy_only = EncoderConfig(measurement_attr="override", default_measurement="dflt")
    assert line(record, strategy_only).startswith("dflt,")
    assert line(record, EncoderConfig(measurement_attr="override")).startswith("sensor.temp,")


@pytest.mark.parametrize(
    ("state", "fields"),
    [
        ("on", 'state="on",value=1'),
        ("off", 'state="off",value=0'),
        ("locked", 'state="locked",value=1'),
        ("unlocked", 'state="unlocked",value=0'),
        ("above_horizon", 'state="above_horizon",value=1'),
        ("below_horizon", 'state="below_horizon",value=0'),
        ("open", 'state="open",value=1'),
        ("closed", 'state="closed",value=0'),
        ("home", 'state="home",value=1'),
        ("not_home", 'state="not_home",value=0'),
        ("heat", 'state="heat"'),
        ("21", "value=21"),
        ("-0.5", "value=-0.5"),
        ("1e20", "value=1e+20"),
        (" 7 ", "value=7"),
    ],
)
def test_state_as_value_and_string(state: str, fields: str) -> None:
    assert line(rec(state, entity_id="switch.x")) == (
        f"switch.x,domain=switch,entity_id=x {fields} {T}"
    )


@pytest.mark.parametrize("state", ["unknown", "unavailable", ""])
def test_unknown_states_are_skipped_by_default(state: str) -> None:
    encoder = LineProtocolEncoder()
    assert encoder.encode(rec(state)) is None
    result = encoder.encode_many([rec(state), rec("1")])
    assert result.skipped == 1
    assert len(result.lines) == 1
    assert not result.rejected


def test_unknown_states_included_as_string_only() -> None:
    config = EncoderConfig(include_unknown=True)
    # state_as_number() maps "unknown" to 0; that must not look like a reading.
    assert line(rec("unknown"), config) == (
        f'sensor.temp,domain=sensor,entity_id=temp state="unknown" {T}'
    )
    assert line(rec(""), config).endswith(f' state="" {T}')


@pytest.mark.parametrize("state", ["nan", "inf", "-Infinity"])
def test_non_finite_state_kept_as_string(state: str) -> None:
    result = one(rec(state))
    assert result.dropped_values == 1
    assert result.lines == [
        (T, f'sensor.temp,domain=sensor,entity_id=temp state="{state}" {T}'.encode())
    ]


# ---------------------------------------------------------------- fields


def test_all_numbers_are_floats_never_ints() -> None:
    text = line(rec("1", {"a": 21, "b": 21.5, "c": True, "d": False, "e": 2**63, "f": -(2**70)}))
    assert "i," not in text
    assert "i " not in text
    assert "a=21," in text
    assert "b=21.5," in text
    assert "c=1," in text
    assert "d=0," in text
    assert "e=9.223372036854776e+18," in text
    assert "f=-1.1805916207174113e+21," in text


def test_int_flipping_to_float_keeps_one_field_type() -> None:
    first = line(rec("1", {"level": 21}))
    second = line(rec("1", {"level": 21.5}))
    assert "level=21," in first
    assert "level=21.5," in second


def test_non_finite_attributes_dropped_and_counted() -> None:
    result = one(rec("1", {"a": math.nan, "b": math.inf, "c": "nan", "d": 10**400, "e": 1.0}))
    assert result.dropped_values == 4
    assert result.lines[0][1].decode() == (
        f"sensor.temp,domain=sensor,entity_id=temp e=1,value=1 {T}"
    )


def test_string_attributes_follow_builtin_rules() -> None:
    text = line(
        rec("1", {"num": "21.5", "word": "abc", "power": "12 kWh", "version": "v1.2.3", "x": None})
    )
    assert "num=21.5," in text
    assert 'word_str="abc"' in text
    # The built-in's digit-tail rule: "12 kWh" also gives a float field.
    assert 'power=12,power_str="12 kWh"' in text
    assert 'version_str="v1.2.3"' in text
    assert "version=" not in text
    assert 'x_str="None"' in text


def test_digit_tail_overflowing_float_is_dropped() -> None:
    result = one(rec("1", {"big": "9" * 400 + " units"}))
    assert result.dropped_values == 1
    text = result.lines[0][1].decode()
    assert "big_str=" in text
    assert "big=" not in text


def test_container_attributes_are_their_str_like_the_builtin() -> None:
    text = line(
        rec(
            "1",
            {
                "d": {"a": 1, "b": [math.nan, "x"]},
                "l": ["x", "y"],
                "t": ("p",),
                "s": {"only"},
                "nested": {"when": datetime(2024, 1, 2, tzinfo=UTC), 3: object},
                "numbers": [10, 20],
            },
        )
    )
    # The built-in's float() fails on them, so it writes _single_line(str(value)).
    assert """d_str="{'a': 1, 'b': [nan, 'x']}\"""" in text
    assert """l_str="['x', 'y']\"""" in text
    assert """t_str="('p',)\"""" in text
    assert """s_str="{'only'}\"""" in text
    assert (
        """nested_str="{'when': datetime.datetime(2024, 1, 2, 0, 0, tzinfo=datetime.timezone.utc),"""
        """ 3: <class 'object'>}\""""
    ) in text
    # Its digit-tail rule applies to that text too: "[10, 20]" -> 1020.
    assert """numbers=1020,numbers_str="[10, 20]\"""" in text


def test_other_objects_use_str() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert 'when_str="2024-01-02 03:04:05+00:00"' in line(rec("1", {"when": when}))


class Broken:
    def __float__(self) -> float:
        raise RuntimeError("no float")

    def __str__(self) -> str:
        raise RuntimeError("no str")


class Cyclic(dict[str, Any]):
    pass


def test_unconvertible_values_dropped_not_fatal() -> None:
    cyclic = Cyclic()
    cyclic["self"] = cyclic
    result = one(rec("1", {"broken": Broken(), "cyclic": cyclic, "ok": 2}))
    assert result.dropped_values == 1
    assert not result.rejected
    assert (
        result.lines[0][1]
        .decode()
        .endswith(f""" cyclic_str="{{'self': {{...}}}}",ok=2,value=1 {T}""")
    )


def test_field_collisions_and_reserved_time() -> None:
    text = line(rec("on", {"value": 5, "state": "x", "time": 3, "time_": 4}))
    # The built-in appends "_" once on a collision with value/state.
    assert "value_=5" in text
    assert 'state__str="x"' in text
    assert "time_=4" in text
    assert "time__=3" in text
    assert " time=" not in text
    assert ",time=" not in text


def test_ignore_attributes() -> None:
    config = EncoderConfig(ignore_attributes=frozenset({"friendly_name"}))
    assert "friendly" not in line(rec("1", {"friendly_name": "x"}), config)


# ---------------------------------------------------------------- tags


def test_tags_attributes_and_static_tags() -> None:
    config = EncoderConfig(
        tags={"instance": "home", "entity_id": "override", "_hidden": "x", "": "y"},
        tags_attributes=frozenset({"room", "floor", "gone", "empty", "meta", "time"}),
    )
    record = rec(
        "1",
        {
            "room": "living room",
            "floor": 2,
            "gone": None,
            "empty": "",
            "meta": {"a": 1},
            "time": "t",
        },
    )
    text = line(record, config)
    # Static tags are applied last, like the built-in's tags.update(...).
    assert text == (
        r"sensor.temp,domain=sensor,entity_id=override,floor=2,hidden=x,instance=home,"
        r"meta={'a':\ 1},room=living\ room,time_=t value=1 " + str(T)
    )


def test_tag_and_name_escaping_matches_spec() -> None:
    config = EncoderConfig(tags_attributes=frozenset({"a,b c=d"}))
    record = rec("x y", {"a,b c=d": 'v,1 =2"', "f,g h=i": 'q"uo\\te'}, entity_id="sensor.t")
    text = line(record, config)
    assert text == (
        r'sensor.t,a\,b\ c\=d=v\,1\ \=2",domain=sensor,entity_id=t '
        r'f\,g\ h\=i_str="q\"uo\\te",state="x y" ' + str(T)
    )
    expected = client_line(
        "sensor.t",
        {"a,b c=d": 'v,1 =2"', "domain": "sensor", "entity_id": "t"},
        {"f,g h=i_str": 'q"uo\\te', "state": "x y"},
        T,
    )
    assert text == expected


def test_measurement_escaping() -> None:
    config = EncoderConfig(override_measurement="m,1 x=y")
    assert line(rec("1"), config).startswith(r"m\,1\ x=y,domain=")


# ---------------------------------------------------------------- sanitising


def test_lone_surrogates_replaced() -> None:
    bad = "a\ud800b"
    config = EncoderConfig(override_measurement=bad, tags_attributes=frozenset({"t"}))
    text = line(rec(bad, {bad: bad, "t": bad}), config)
    assert "\ud800" not in text
    assert text.startswith("a\ufffdb,")
    assert "t=a\ufffdb" in text
    assert 'a\ufffdb_str="a\ufffdb"' in text
    assert 'state="a\ufffdb"' in text


def test_valid_surrogate_pairs_are_joined() -> None:
    assert clean_text("\ud83d\ude00") == "😀"
    assert clean_text("plain") == "plain"
    assert clean_text("ümlaut") == "ümlaut"


def test_line_breaks_never_split_a_line() -> None:
    config = EncoderConfig(override_measurement="m\nx", tags_attributes=frozenset({"t"}))
    record = rec("a\nb\r\nc", {"k\ney": "v\n1", "t": "x\ty\nz", "u": "p\u2028q"})
    text = line(record, config)
    assert text.startswith(r"m\ x,")
    # A line break in a key: the two characters "\n", as the built-in's client writes it.
    assert r"k\ney_str=" in text
    assert 'state="a b c"' in text
    # Tabs are kept (InfluxDB stores them); string tag values get their lines joined.
    assert "t=x\ty\\ z" in text
    assert 'u_str="p q"' in text


def test_hash_and_underscore_prefixes() -> None:
    assert line(rec("1"), EncoderConfig(override_measurement="#m")).startswith("m,")
    # Nothing left: fall back to the entity id.
    assert line(rec("1"), EncoderConfig(override_measurement="##")).startswith("sensor.temp,")
    # Measurements and field keys keep a leading "_", as the built-in writes them ...
    assert line(rec("1"), EncoderConfig(override_measurement="_#m")).startswith("_#m,")
    result = one(rec("1", {"_private": 1, "__": 2}))
    assert result.dropped_values == 0
    assert result.lines[0][1].decode().endswith(f" __=2,_private=1,value=1 {T}")
    # ... tag keys lose it: InfluxDB 2 discards a point with such a tag key.
    config = EncoderConfig(tags={"_site": "home"}, tags_attributes=frozenset({"_room"}))
    assert line(rec("1", {"_room": "hall"}), config).startswith(
        "sensor.temp,domain=sensor,entity_id=temp,room=hall,site=home "
    )


def test_dangling_backslashes_removed() -> None:
    config = EncoderConfig(
        override_measurement="m\\", tags={"k\\": "v\\\\"}, tags_attributes=frozenset({"t"})
    )
    text = line(rec("1", {"f\\": 1, "t": "a\\,b", "s": "end\\"}), config)
    assert text == f'm,domain=sensor,entity_id=temp,k=v,t=a\\,b f=1,s_str="end\\\\",value=1 {T}'


def test_strings_capped() -> None:
    config = EncoderConfig(max_string_bytes=10, max_name_bytes=4, max_tag_value_bytes=3)
    config = EncoderConfig(
        max_string_bytes=10,
        max_name_bytes=4,
        max_tag_value_bytes=3,
        tags_attributes=frozenset({"tag"}),
    )
    result = one(rec("é" * 20, {"longname": "x" * 50, "tag": "abcdef"}), config)
    assert result.truncated_values == 3
    text = result.lines[0][1].decode()
    assert 'state="ééééé"' in text
    assert 'long_str="xxxxxxxxxx"' in text
    assert ",tag=abc " in text


def test_default_string_cap_fits_influxdb_requests() -> None:
    # InfluxDB 1.x stores any string that fits in its 25 MB request limit.
    assert EncoderConfig().max_string_bytes == 24_000_000
    result = one(rec("1", {"big": "y" * 70_000}))
    assert result.truncated_values == 0
    assert 'big_str="%s"' % ("y" * 70_000) in result.lines[0][1].decode()
    # Longer would make the request too large: the built-in loses its batch then.
    result = one(rec("1", {"huge": "z" * 25_000_000}))
    assert result.truncated_values == 1
    assert 24_000_000 < len(result.lines[0][1]) < 24_000_000 + 200


def test_truncate_utf8_boundaries() -> None:
    assert truncate_utf8("abc", 3) == ("abc", False)
    assert truncate_utf8("ab", 1) == ("a", True)
    assert truncate_utf8("€€", 4) == ("€", True)
    assert truncate_utf8("€", 3) == ("€", False)


def test_single_line() -> None:
    assert single_line("a\nb") == "a b"
    assert single_line("a\x1cb\u2029c") == "a b c"
    assert single_line("plain\ttab") == "plain\ttab"


# ---------------------------------------------------------------- context / extra


def test_extra_fields_and_no_context_id() -> None:
    record = rec(
        "1",
        {"context_id": 5},
        context_id="01HXYZ12",
        extra={
            "user_id": "u12",
            "n": 3,
            "obj": {"k": 1},
            "none": None,
            "_": "kept",
            "when": datetime(2024, 1, 1, tzinfo=UTC),
            "value": "dup",
        },
    )
    result = one(record)
    text = result.lines[0][1].decode()
    assert result.dropped_values == 0
    assert '_="kept"' in text
    assert "01HXYZ12" not in text  # the context id is not a field
    assert "context_id=5" in text
    # Extra strings stay strings (a ULID must not hit the digit-tail rule).
    assert 'user_id="u12"' in text
    assert "n=3" in text
    assert r'obj="{\"k\":1}"' in text
    assert 'when="2024-01-01 00:00:00+00:00"' in text
    assert 'value_="dup"' in text
    assert "none" not in text
    assert "context_id" not in line(rec("1", context_id="c"))


# ---------------------------------------------------------------- rejection


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (rec("1", entity_id="nodot"), "is not '<domain>.<object_id>'"),
        (rec("1", entity_id=".x"), "is not '<domain>.<object_id>'"),
        (rec("1", entity_id=""), "entity_id is not a non-empty string"),
        (rec("1", time_ns=1.5), "time_ns is not an integer"),
        (rec("1", time_ns=True), "time_ns is not an integer"),
        (rec("1", time_ns=2**63), "outside InfluxDB's int64 range"),
        (rec("1", last_changed_ns=-(2**63)), "last_changed_ns"),
        (rec(5), "state is not a string"),  # type: ignore[arg-type]
    ],
)
def test_bad_records_rejected_not_raised(record: EventRecord, reason: str) -> None:
    for encoder in (LineProtocolEncoder(), JsonEventEncoder()):
        result = encoder.encode_many([record, rec("1")])
        assert len(result.lines) == 1
        assert len(result.rejected) == 1
        assert result.rejected[0][0] is record
        assert reason in result.rejected[0][1]
        with pytest.raises(EncodeError):
            encoder.encode(record)


class ExplodingAttributes(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


def test_unexpected_errors_rejected() -> None:
    record = rec("1", ExplodingAttributes())
    for encoder in (LineProtocolEncoder(), JsonEventEncoder()):
        result = encoder.encode_many([record])
        assert result.rejected == [(record, "unexpected RuntimeError: boom")]
    payload = json.loads(record_debug_payload(record))
    assert payload == {"unserialisable_record": "RuntimeError: boom"}


def test_record_debug_payload() -> None:
    record = rec("on", {"x": math.nan, "s": {"a"}}, context_id="c", extra={"u": "v"})
    assert json.loads(record_debug_payload(record)) == {
        "entity_id": "sensor.temp",
        "state": "on",
        "attributes": {"x": None, "s": ["a"]},
        "time_ns": T,
        "last_changed_ns": T_CHANGED,
        "context_id": "c",
        "event_type": "state_changed",
        "extra": {"u": "v"},
    }


def test_format_line_contract() -> None:
    with pytest.raises(EncodeError, match="no fields"):
        format_line("m", {"a": "b"}, {}, 1)
    assert format_line("m", {"": "x", "e": "", "a": "b"}, {"f": 2, "s": "t"}, 5) == (
        'm,a=b f=2,s="t" 5'
    )


def test_record_properties() -> None:
    record = rec("1", entity_id="light.kitchen_main")
    assert record.domain == "light"
    assert record.object_id == "kitchen_main"


# ---------------------------------------------------------------- JSON encoder


def test_json_event_shape() -> None:
    record = rec(
        "21.5",
        {"unit": "°C", "bad": math.inf, "obj": object(), "when": datetime(2024, 1, 1, tzinfo=UTC)},
        context_id="ctx",
        extra={"user_id": "u"},
    )
    payload = JsonEventEncoder().encode(record)
    assert payload is not None
    assert b'", "' not in payload  # compact separators
    assert b'": ' not in payload
    data = json.loads(payload)
    assert data["entity_id"] == "sensor.temp"
    assert data["domain"] == "sensor"
    assert data["state"] == "21.5"
    assert data["attributes"]["unit"] == "°C"
    assert data["attributes"]["bad"] is None
    assert data["attributes"]["obj"].startswith("<object object")
    assert data["attributes"]["when"] == "2024-01-01T00:00:00+00:00"
    assert data["last_updated"] == "2023-11-14T22:13:20.123456+00:00"
    assert data["last_changed"] == "2023-11-14T22:13:20.000000+00:00"
    assert data["time_ns"] == T
    assert data["context_id"] == "ctx"
    assert data["event_type"] == "state_changed"
    assert data["extra"] == {"user_id": "u"}
    assert data["idempotency_key"] == idempotency_key("sensor.temp", T, "state_changed")
    assert len(data["idempotency_key"]) == 32
    assert "extra" not in json.loads(JsonEventEncoder().encode(rec("1")) or b"")


def test_json_idempotency_key_stable() -> None:
    encoder = JsonEventEncoder()
    first = json.loads(encoder.encode(rec("1", {"a": 1})) or b"")
    again = json.loads(JsonEventEncoder().encode(rec("2", {"b": 2})) or b"")
    assert first["idempotency_key"] == again["idempotency_key"]
    other_time = json.loads(encoder.encode(rec("1", time_ns=T + 1)) or b"")
    other_entity = json.loads(encoder.encode(rec("1", entity_id="sensor.b")) or b"")
    other_type = json.loads(encoder.encode(rec("1", event_type="custom")) or b"")
    keys = {first["idempotency_key"]} | {
        d["idempotency_key"] for d in (other_time, other_entity, other_type)
    }
    assert len(keys) == 4
    # A pinned value: the key must never change between releases.
    assert idempotency_key("sensor.temp", 1, "state_changed") == (
        "3cbca5a6dd9ca267169f1cf4eb4852b3"
    )


def test_json_skips_and_includes_unknown() -> None:
    assert JsonEventEncoder().encode(rec("unavailable")) is None
    result = JsonEventEncoder().encode_many([rec("unknown"), rec("1")])
    assert result.skipped == 1
    assert len(result.lines) == 1
    payload = JsonEventEncoder(include_unknown=True).encode(rec("unavailable"))
    assert json.loads(payload or b"")["state"] == "unavailable"


def test_json_surrogates_and_null_context() -> None:
    payload = JsonEventEncoder().encode(rec("a\udc80", {"k\ud800": "v"}))
    assert payload is not None
    data = json.loads(payload)
    assert data["state"] == "a\ufffd"
    assert data["attributes"] == {"k\ufffd": "v"}
    assert data["context_id"] is None


def test_json_safe() -> None:
    assert json_safe({"a": (1, 2.5, math.nan), 3: {None}, "b": b"x"}) == {
        "a": [1, 2.5, None],
        "3": [None],
        "b": "b'x'",
    }


def test_encoders_satisfy_protocol() -> None:
    from custom_components.ha_ingestor.core.encoder import Encoder  # noqa: PLC0415

    encoders: list[Encoder] = [LineProtocolEncoder(), JsonEventEncoder()]
    for encoder in encoders:
        assert encoder.encode_many([]) == EncodeResult()


# ---------------------------------------------------------------- properties vs influxdb-client

# Characters we intentionally rewrite are excluded: control characters (no
# escape in line protocol), surrogates (client raises), backslash (dangling
# backslash rule).
SAFE_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\\")
safe_text = st.text(SAFE_CHARS, max_size=20)
safe_name = st.text(SAFE_CHARS, min_size=1, max_size=12).filter(
    lambda s: s[0] not in "_#" and s not in ("time", "value", "state")
)
finite = st.floats(allow_nan=False, allow_infinity=False)
timestamps = st.integers(min_value=-(2**62), max_value=2**62)


@settings(max_examples=300, deadline=None)
@given(
    measurement=safe_name,
    tags=st.dictionaries(safe_name, safe_text, max_size=4),
    fields=st.dictionaries(safe_name, st.one_of(finite, safe_text), min_size=1, max_size=5),
    time_ns=timestamps,
)
def test_format_line_matches_influxdb_client(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, float | str],
    time_ns: int,
) -> None:
    assert format_line(measurement, tags, fields, time_ns) == client_line(
        measurement, tags, fields, time_ns
    )


# Letters only for string attributes: a digit pair would add a digit-tail float.
letters = st.text(st.characters(categories=("Lu", "Ll", "Zs")), max_size=15).filter(
    lambda s: not _parses_as_float(s)
)


SPECIAL_STATES = frozenset(
    {"", "unknown", "unavailable", "on", "off", "locked", "unlocked", "open", "closed"}
    | {"home", "not_home", "above_horizon", "below_horizon"}
)


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(
    object_id=st.text(st.sampled_from("abcxyz_0123"), min_size=1, max_size=10),
    unit=st.one_of(st.none(), safe_name),
    state=st.one_of(finite.map(repr), letters.filter(lambda s: s not in SPECIAL_STATES)),
    attributes=st.dictionaries(
        safe_name.filter(lambda s: s != "unit_of_measurement" and not s.endswith("_str")),
        st.one_of(finite, st.integers(-(2**52), 2**52), letters),
        max_size=5,
    ),
    time_ns=timestamps,
)
def test_encoder_matches_client_fed_with_builtin_fields(
    object_id: str,
    unit: str | None,
    state: str,
    attributes: dict[str, Any],
    time_ns: int,
) -> None:
    attrs = dict(attributes)
    if unit is not None:
        attrs["unit_of_measurement"] = unit
    record = rec(state, attrs, entity_id=f"sensor.{object_id}", time_ns=time_ns)
    # The dict the built-in's event_to_json would produce (ints as floats).
    fields: dict[str, Any] = {}
    try:
        fields["value"] = float(state)
    except ValueError:
        fields["state"] = state
    for key, value in attributes.items():
        if isinstance(value, str):
            fields[f"{key}_str"] = value
        else:
            fields[key] = float(value)
    expected = client_line(
        unit or f"sensor.{object_id}",
        {"domain": "sensor", "entity_id": object_id},
        fields,
        time_ns,
    )
    assert line(record) == expected


def test_name_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from custom_components.ha_ingestor.core import line_protocol as encoder_mod  # noqa: PLC0415

    monkeypatch.setattr(encoder_mod, "_NAME_CACHE_SIZE", 3)
    encoder = LineProtocolEncoder()
    records = [rec("1", {"_a": 1, f"k{i}": 2}) for i in range(5)]
    result = encoder.encode_many(records + records)
    assert len(result.lines) == 10
    assert len(encoder._names) <= 3
    assert result.lines[0][1] == result.lines[5][1]
    assert b" _a=1,k0=2,value=1 " in result.lines[0][1]
    # Long names (InfluxDB stores up to ~64 KiB) are written whole but never cached.
    encoder = LineProtocolEncoder()
    text = line_of(encoder, rec("1", {"n" * 70_000: 1, "m" * 300: 2}))
    assert f" {'m' * 300}=2,{'n' * 65_530}=1,value=1 " in text
    assert all(len(raw) <= 256 for raw, _ in encoder._names)
