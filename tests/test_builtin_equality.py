"""Dashboards intact: HA Ingestor's points equal those of the built-in's own code.

One test HA runs Home Assistant's built-in ``influxdb`` integration (set up from its
YAML and its entry) and HA Ingestor (with the options the import takes over from that
YAML) side by side against one real InfluxDB 1.6.7, each writing to its own database.
The same state changes go through ``hass.states.async_set`` as integrations make them;
then every stored point is compared: measurement, tags, timestamp to the nanosecond,
fields with their types and values.

Every difference is intended (the built-in loses or alters the point, HA Ingestor
keeps it intact) and asserted one by one: :func:`_kept_only_by_us` and
:func:`_renamed`, listed in the README's compatibility section. Anything else fails.
The built-in's writer thread batches for one real second: the whole file takes about
11 s of real time (seven runs of about 1.5 s).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time as clock, timedelta
from enum import IntEnum, StrEnum
import math
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import MAJOR_VERSION, MINOR_VERSION, UnitOfTemperature
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_DATABASE,
    CONF_FALLBACK_URLS,
    CONF_KIND,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
    DestinationKind,
)
from custom_components.ha_ingestor.import_builtin import async_builtin_yaml, options_from_yaml
from tests.builtin import builtin_flushed, points, v1_builtin
from tests.common import current, settle, setup_entry, unload_entry
from tests.conftest import SNAPSHOT_RELEASE
from tests.servers import InfluxV1Server, unique_name

# The built-in's InfluxDB 1.x client (not our code) uses a deprecated datetime call.
pytestmark = [
    pytest.mark.servers,
    pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp"),
    # The schema follows the newest built-in. Older ones differ where they corrupted
    # points (before 2026.10 a line break in a name or value reached the line
    # protocol as is); the comparison is against the built-in of that release.
    pytest.mark.skipif(
        (MAJOR_VERSION, MINOR_VERSION) != SNAPSHOT_RELEASE,
        reason="compares with the built-in of the release the schema follows",
    ),
]


class Color(StrEnum):
    """A string enum as integrations put into attributes."""

    RED = "red"


class Level(IntEnum):
    """An int enum as integrations put into attributes."""

    HIGH = 3


#: Longer than InfluxDB's documented 64 KB string field limit.
LONG = "x" * 70_000

RICH_ATTRIBUTES: dict[str, Any] = {
    "friendly_name": "Wohnzimmer ☀️ Temperatur 🌡",
    "int": 21,
    "float": 21.5,
    "negative": -3,
    "big_int": 2**63,
    "bool_true": True,
    "bool_false": False,
    "none": None,
    "text": "abc",
    "kwh_text": "12 kWh",
    "exp_text": "1e3",
    "spaced_text": " 5 ",
    "hex_text": "0x10",
    "nan_text": "nan",
    "inf_text": "inf",
    "empty_text": "",
    "nan": math.nan,
    "inf": -math.inf,
    "list": [1, "two", 3.5, None],
    "tuple": ("a", 2),
    "set": {"only"},
    "dict": {"a": 1, "b": [1, 2], "c": None, "d": "q'uote"},
    "nested": {"when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "color": Color.RED},
    "str_enum": Color.RED,
    "int_enum": Level.HIGH,
    "unit_enum": UnitOfTemperature.CELSIUS,
    "datetime": datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    "date": date(2024, 1, 2),
    "clock": clock(3, 4, 5),
    "duration": timedelta(minutes=5),
    "long": LONG,
    "multiline": "line1\nline2\r\nline3",
    "tabbed": "a\tb",
    "control": "bell\x07nul\x00",
    "quoted": 'say "hi" \\ back\\',
    "unicode": "Überfluß ☀️ 🌡",
    "with space": 1,
    "a,b": 2,
    "a=b": 3,
    'q"uote': 4,
    "back\\slash": 5,
    "new\nline": 6,
    "tab\tkey": 7,
    "cr\rkey": 7.5,
    "_leading": 8,
    "value": 9,
    "state": "s",
    "time": 10,
    "room": "Living room",
    "floor": 2,
    "tag_list": ["a", "b"],
    "tag_none": None,
    "tag_bool": True,
    "tag_newline": "up\nstairs",
    "tag_empty": "",
    "tag_backslash": "in\\out",
    "tag_long": "t" * 2000,
    "n" * 300: "a long name",
    "icon": "mdi:flash",
    "battery": 97,
    "firmware": "v1.2",
}

#: (entity_id, state, attributes): the changes, in order.
CHANGES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "sensor.eq_energy",
        "12.5",
        {
            "unit_of_measurement": "kWh",
            "device_class": "energy",
            "state_class": "total_increasing",
            "friendly_name": "Energy",
        },
    ),
    ("sensor.eq_rich", "3", RICH_ATTRIBUTES),
    ("sensor.eq_power", "21.5", RICH_ATTRIBUTES | {"unit_of_measurement": "W"}),
    ("sensor.eq_glob_a", "7", {"unit_of_measurement": "W", "device_class": "power"}),
    ("sensor.eq_text_state", "12 kWh", {}),
    ("sensor.eq_exp", "1e3", {}),
    ("sensor.eq_spaced", " 5 ", {}),
    ("sensor.eq_hex", "0x10", {}),
    ("sensor.eq_unicode", "Überfluß ☀️", {}),
    ("sensor.eq_multiline", "a\nb", {}),
    ("sensor.eq_nan", "nan", {}),
    ("sensor.eq_inf", "inf", {}),
    ("sensor.eq_skipped", "unknown", {}),
    ("sensor.eq_skipped", "unavailable", {}),
    ("sensor.eq_skipped", "", {}),
    ("binary_sensor.eq_door", "on", {"device_class": "door", "battery": 50, "room": "Hall"}),
    ("binary_sensor.eq_door", "off", {"device_class": "door", "battery": 50, "room": "Hall"}),
    ("switch.eq_pump", "on", {"state": "x", "value": 3, "friendly_name": "Pump"}),
    ("sensor.eq_flip", "1", {"unit_of_measurement": "W", "level": 21}),
    ("sensor.eq_flip", "2", {"unit_of_measurement": "W", "level": 21.5}),
    ("sensor.eq_flip", "3", {"unit_of_measurement": "W", "level": "high"}),
    ("sensor.eq_unit_space", "1", {"unit_of_measurement": "a b,c=d"}),
    ("sensor.eq_unit_quote", "1", {"unit_of_measurement": 'q"u\\o'}),
    ("sensor.eq_unit_newline", "1", {"unit_of_measurement": "new\nline"}),
    ("sensor.eq_unit_tab", "1", {"unit_of_measurement": "a\tb"}),
    ("sensor.eq_unit_backslash", "1", {"unit_of_measurement": "end\\"}),
    ("sensor.eq_unit_emoji", "1", {"unit_of_measurement": "☀️"}),
    ("sensor.eq_unit_under", "1", {"unit_of_measurement": "_under"}),
    ("sensor.eq_unit_hash", "1", {"unit_of_measurement": "#hash"}),
    ("sensor.eq_unit_empty", "1", {"unit_of_measurement": ""}),
    (
        "sensor.eq_unit_enum",
        "1",
        {
            "unit_of_measurement": UnitOfTemperature.CELSIUS,
            "device_class": SensorDeviceClass.TEMPERATURE,
        },
    ),
    ("sensor.eq_dc_empty", "1", {"device_class": ""}),
    (
        "weather.eq_home",
        "sunny",
        {
            "temperature": 3.5,
            "temperature_unit": UnitOfTemperature.CELSIUS,
            "forecast": [{"datetime": "2024-01-02T00:00:00+00:00", "temperature": 3.5}],
        },
    ),
]
OBJECT_IDS = {entity_id.partition(".")[2] for entity_id, _, _ in CHANGES}

BASE_YAML = "homeassistant:\n  name: Test\n"

#: The built-in's ``influxdb:`` blocks: its defaults, then non-default schema options.
YAML_BLOCKS = {
    "defaults": "influxdb:\n",
    "domain_device_class": """
influxdb:
  measurement_attr: domain__device_class
  default_measurement: fallback
  tags:
    site: home
    room key: "v,al=ue"
  tags_attributes:
    - room
    - floor
    - tag_list
    - tag_none
    - tag_bool
    - tag_newline
    - tag_empty
    - a=b
    - _leading
    - tag_backslash
    - tag_long
  ignore_attributes:
    - icon
  component_config:
    sensor.eq_power:
      override_measurement: power_entity
      ignore_attributes:
        - firmware
  component_config_domain:
    binary_sensor:
      ignore_attributes:
        - battery
    switch:
      override_measurement: switches
  component_config_glob:
    sensor.eq_glob_*:
      override_measurement: globbed
""",
    "entity_id": """
influxdb:
  measurement_attr: entity_id
  tags_attributes:
    - room
  component_config_domain:
    weather:
      override_measurement: weather
""",
    "default_measurement": """
influxdb:
  default_measurement: fallback
  ignore_attributes:
    - friendly_name
  component_config_glob:
    sensor.eq_unit_*:
      ignore_attributes:
        - device_class
""",
    "override_measurement": """
influxdb:
  override_measurement: everything
  component_config:
    sensor.eq_energy:
      override_measurement: energy
""",
}


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: States neither integration writes.
SKIPPED = ("unknown", "unavailable", "")

#: Where the changes start: a fixed instant, so the change times below are fixed too.
START = datetime(2027, 1, 1, tzinfo=UTC)


def _change_times() -> list[float]:
    """Change times (s) with fractions that are no whole microsecond, as real clocks give.

    Some are floats where ``round(t * 1e6)`` and ``datetime.fromtimestamp(t)`` (the
    built-in's ``time_fired``) disagree by 1 us: the timestamps must still be equal.
    """
    start = START.timestamp()
    return [start + index * 0.1234567891 + 0.4999997 for index in range(len(CHANGES))]


@dataclass
class Stored:
    """What one database holds for the compared entities."""

    #: (object id, time in ns) -> (measurement, every non-empty column: tags and fields)
    points: dict[tuple[str, int], tuple[str, dict[str, Any]]]
    #: (measurement, field key) -> field type
    field_types: dict[tuple[str, str], str]
    tag_keys: set[tuple[str, str]]
    measurements: set[str]


async def _stored(server: InfluxV1Server, database: str) -> Stored:
    """The points of the compared entities (the built-in also writes HA Ingestor's sensors)."""
    stored: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
    for row in points(await server.aquery("SELECT * FROM /.*/", database)):
        if (object_id := row.get("entity_id")) not in OBJECT_IDS:
            continue
        measurement, when = row.pop("_measurement"), row.pop("time")
        assert (object_id, when) not in stored
        stored[object_id, when] = (measurement, row)
    kept = {measurement for measurement, _ in stored.values()}
    return Stored(
        stored,
        {
            (row["_measurement"], row["fieldKey"]): row["fieldType"]
            for row in await server.aquery("SHOW FIELD KEYS", database)
            if row["_measurement"] in kept
        },
        {
            (row["_measurement"], row["tagKey"])
            for row in await server.aquery("SHOW TAG KEYS", database)
            if row["_measurement"] in kept
        },
        {row["name"] for row in await server.aquery("SHOW MEASUREMENTS", database)},
    )


async def _run(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    config_dir: Path,
    yaml_block: str,
    *,
    changes: list[tuple[tuple[str, str, dict[str, Any]], float]],
    one_database: bool = False,
) -> tuple[Stored, Stored]:
    """Feed the ``changes`` (each with its time) to both integrations.

    Returns what (the built-in, HA Ingestor) stored.

    With ``one_database`` both write to the built-in's database (a switch in progress)
    and both results are read from it.
    """
    freezer.move_to(START)
    (config_dir / "configuration.yaml").write_text(BASE_YAML + yaml_block, encoding="utf-8")
    builtin_db = unique_name("builtin")
    ours_db = builtin_db if one_database else unique_name("ours")
    for database in {builtin_db, ours_db}:
        await influxdb_v1.acreate_database(database)
    try:
        builtin = v1_builtin(influxdb_v1.url, builtin_db)
        await setup_entry(hass, builtin)
        assert builtin.state is ConfigEntryState.LOADED

        # HA Ingestor with the options the import takes over from the same YAML.
        conf, error = await async_builtin_yaml(hass)
        assert error is None
        options, _ = options_from_yaml(conf)
        ours = MockConfigEntry(
            domain=DOMAIN,
            title="ours",
            data={
                CONF_KIND: DestinationKind.INFLUXDB_V1.value,
                CONF_URL: influxdb_v1.url,
                CONF_DATABASE: ours_db,
                CONF_VERIFY_SSL: False,
                CONF_FALLBACK_URLS: [],
            },
            options=options,
        )
        await setup_entry(hass, ours)

        for (entity_id, state, attributes), timestamp in changes:
            hass.states.async_set(entity_id, state, attributes, timestamp=timestamp)
        await hass.async_block_till_done()
        await builtin_flushed(hass, builtin)
        written = sum(state not in SKIPPED for (_, state, _), _ in changes)
        await settle(hass, freezer, lambda: current(ours).events_sent >= written)
        return await _stored(influxdb_v1, builtin_db), await _stored(influxdb_v1, ours_db)
    finally:
        for entry in hass.config_entries.async_entries():
            if entry.state is ConfigEntryState.LOADED:
                await unload_entry(hass, entry)
        for database in {builtin_db, ours_db}:
            await influxdb_v1.adrop_database(database)


def _time_of(object_id: str, state: str) -> int:
    """The point time (ns) of a change: its ``time_fired`` to the microsecond."""
    for (entity_id, changed, _), timestamp in zip(CHANGES, _change_times(), strict=True):
        if entity_id.partition(".")[2] == object_id and changed == state:
            moment = dt_util.utc_from_timestamp(timestamp) - EPOCH
            return (
                (moment.days * 86_400 + moment.seconds) * 1_000_000 + moment.microseconds
            ) * 1000
    raise KeyError(object_id)


#: The static tags of each run.
STATIC_TAGS: dict[str, dict[str, str]] = {
    "defaults": {},
    "domain_device_class": {"site": "home", "room key": "v,al=ue"},
    "entity_id": {},
    "default_measurement": {},
    "override_measurement": {},
}

#: Measurement of the "nan" / "inf" sensors per run (they have no unit nor device class).
PLAIN_SENSOR_MEASUREMENT = {
    "defaults": "sensor.{}",
    "domain_device_class": "sensor",
    "entity_id": "sensor.{}",
    "default_measurement": "fallback",
    "override_measurement": "everything",
}


def _kept_only_by_us(options: str, theirs: Stored, ours: Stored) -> None:
    """Points the built-in loses and HA Ingestor keeps: assert them, then leave them out."""
    for object_id, state in (("eq_nan", "nan"), ("eq_inf", "inf")):
        # The built-in writes value=nan / value=inf: InfluxDB refuses the line (400).
        key = (object_id, _time_of(object_id, state))
        assert key not in theirs.points
        assert ours.points.pop(key) == (
            PLAIN_SENSOR_MEASUREMENT[options].format(object_id),
            {"domain": "sensor", "entity_id": object_id, "state": state} | STATIC_TAGS[options],
        )
    if options not in {"defaults", "default_measurement"}:
        return  # the measurement is not the unit
    # A unit starting with "#" makes the built-in's line a comment: 204, nothing stored.
    key = ("eq_unit_hash", _time_of("eq_unit_hash", "1"))
    assert key not in theirs.points
    assert not any(name.startswith("#") for name in theirs.measurements)
    assert ours.points.pop(key) == (
        "hash",
        {"domain": "sensor", "entity_id": "eq_unit_hash", "value": 1},
    )
    # A unit ending with a backslash escapes the built-in's next separator: its point
    # lands in a measurement named after its own tags, without them.
    key = ("eq_unit_backslash", _time_of("eq_unit_backslash", "1"))
    assert key not in theirs.points
    assert "end,domain=sensor" in theirs.measurements
    assert ours.points.pop(key) == (
        "end",
        {"domain": "sensor", "entity_id": "eq_unit_backslash", "value": 1},
    )


def _renamed(theirs: Stored, ours: Stored) -> set[str]:
    """Names the built-in stores altered and HA Ingestor as they are: assert, then align.

    Its client doubles every backslash in a measurement, tag or field key and
    InfluxDB 1.x keeps both; HA Ingestor writes the name as Home Assistant has it.
    HA Ingestor writes a tag key without its leading "_" (InfluxDB 2 discards such
    points); the built-in writes it as it is. Returns the built-in's names aligned.
    """
    fields = {"back\\\\slash": "back\\slash"}
    tags = {"_leading": "leading"}
    tag_values = {"in\\\\out": "in\\out"}
    measurements = {'q"u\\\\o': 'q"u\\o'}
    seen: set[str] = set()
    for key, (measurement, columns) in list(theirs.points.items()):
        renamed = {}
        for column, value in columns.items():
            is_tag = (measurement, column) in theirs.tag_keys
            new = (tags if is_tag else fields).get(column, column)
            aligned = tag_values.get(value, value) if is_tag else value
            if aligned != value:
                seen.add(value)
            if new != column:
                seen.add(column)
            if (new, aligned) != (column, value):
                assert ours.points[key][1][new] == aligned
            renamed[new] = aligned
        if measurement in measurements:
            seen.add(measurement)
        theirs.points[key] = (measurements.get(measurement, measurement), renamed)
    theirs.field_types = {
        (measurements.get(m, m), fields.get(f, f)): kind
        for (m, f), kind in theirs.field_types.items()
    }
    theirs.tag_keys = {(measurements.get(m, m), tags.get(t, t)) for m, t in theirs.tag_keys}
    return seen


#: The built-in's altered names per run (the measurement one only where the unit is it).
RENAMED = {
    "defaults": {"back\\\\slash", 'q"u\\\\o'},
    "domain_device_class": {"back\\\\slash", "_leading", "in\\\\out"},
    "entity_id": {"back\\\\slash"},
    "default_measurement": {"back\\\\slash", 'q"u\\\\o'},
    "override_measurement": {"back\\\\slash"},
}


def _kinds(stored: Stored) -> dict[tuple[str, str], str | None]:
    """Field type (or "tag") of every column of the compared points, per measurement."""
    return {
        (measurement, column): stored.field_types.get((measurement, column))
        or ("tag" if (measurement, column) in stored.tag_keys else None)
        for measurement, row in stored.points.values()
        for column in row
    }


@pytest.mark.parametrize("options", list(YAML_BLOCKS))
async def test_points_equal_the_builtins(
    hass: HomeAssistant,
    *,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    config_dir: Path,
    socket_enabled: None,
    options: str,
) -> None:
    """Every point HA Ingestor stores equals the built-in's, but for the intended differences.

    30 of the 33 changes are written (unknown, unavailable and "" are skipped by both).
    Equal: measurement, tags, timestamp to the nanosecond, every field with its type
    and value (70 000-character strings whole, containers as ``str()``). Intended, each
    asserted: 2 points (4 under the default options) the built-in loses and HA Ingestor
    keeps, and 1 to 3 names the built-in alters. Real time: about 1.5 s per run.
    """
    theirs, ours = await _run(
        hass,
        freezer,
        influxdb_v1,
        config_dir,
        YAML_BLOCKS[options],
        changes=list(zip(CHANGES, _change_times(), strict=True)),
    )
    # The change times include floats where rounding the whole product misses by 1 us.
    assert any(
        round(timestamp * 1e6) * 1000 != _time_of(entity_id.partition(".")[2], state)
        for (entity_id, state, _), timestamp in zip(CHANGES, _change_times(), strict=True)
        if entity_id != "sensor.eq_skipped"
    )
    assert len(ours.points) == 30
    _kept_only_by_us(options, theirs, ours)
    assert _renamed(theirs, ours) == RENAMED[options]
    assert ours.points == theirs.points
    assert _kinds(ours) == _kinds(theirs)
    # The attribute that flips int -> float -> string keeps one field type in both.
    flips = [ours.points[key][1] for key in sorted(ours.points) if key[0] == "eq_flip"]
    assert [(row.get("level"), row.get("level_str")) for row in flips] == [
        (21, None),
        (21.5, None),
        (None, "high"),
    ]
    long_texts = [row["long_str"] for _, row in ours.points.values() if "long_str" in row]
    assert long_texts == [LONG, LONG]


async def test_one_database_during_a_switch(
    hass: HomeAssistant,
    *,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    config_dir: Path,
    socket_enabled: None,
) -> None:
    """Both integrations write the same changes to one database: one point per change.

    28 changes are written (unknown, unavailable and "" skipped; the two units whose
    names the built-in alters are left out): 28 points, each at its change's time.
    The same change gives the same measurement, tags and timestamp, so the second
    write overwrites the first. Real time: about 1.5 s.
    """
    changes = [
        (change, timestamp)
        for change, timestamp in zip(CHANGES, _change_times(), strict=True)
        if change[0] not in {"sensor.eq_unit_quote", "sensor.eq_unit_backslash"}
    ]
    theirs, _ = await _run(
        hass,
        freezer,
        influxdb_v1,
        config_dir,
        YAML_BLOCKS["defaults"],
        changes=changes,
        one_database=True,
    )
    written = [change for change, _ in changes if change[1] not in SKIPPED]
    assert len(written) == 28
    assert len(theirs.points) == 28
    assert theirs.points.keys() == {
        (entity_id.partition(".")[2], _time_of(entity_id.partition(".")[2], state))
        for entity_id, state, _ in written
    }


async def test_lone_surrogate_costs_the_builtin_its_whole_batch(
    hass: HomeAssistant,
    *,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    config_dir: Path,
    socket_enabled: None,
) -> None:
    """A lone surrogate in one attribute: the built-in loses every point of that batch.

    Its client cannot encode the batch (``UnicodeEncodeError``, logged and dropped),
    so neither the faulty change nor the clean one next to it is stored: 0 of 2.
    HA Ingestor stores both, the surrogate replaced by U+FFFD: 2 of 2. Real time: about 1.5 s.
    """
    start = START.timestamp()
    changes = [
        (("sensor.eq_rich", "1", {"name": "bad \ud800 text"}), start + 0.25),
        (("sensor.eq_energy", "2", {"unit_of_measurement": "kWh"}), start + 0.5),
    ]
    theirs, ours = await _run(
        hass, freezer, influxdb_v1, config_dir, YAML_BLOCKS["defaults"], changes=changes
    )
    assert theirs.points == {}
    assert ours.points == {
        ("eq_rich", 1_798_761_600_250_000_000): (
            "sensor.eq_rich",
            {"domain": "sensor", "entity_id": "eq_rich", "name_str": "bad \ufffd text", "value": 1},
        ),
        ("eq_energy", 1_798_761_600_500_000_000): (
            "kWh",
            {"domain": "sensor", "entity_id": "eq_energy", "value": 2},
        ),
    }
