"""Import from Home Assistant's built-in ``influxdb`` integration, loaded for real.

The built-in keeps its connection in its config entry and reads its shipping options
from configuration.yaml at setup; these tests give it both (a YAML file in the test's
config dir and its own entry), run it against a real InfluxDB 1.6.7, and import.
"""

from pathlib import Path
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryDisabler, ConfigEntryState, ConfigFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor import destination, import_builtin
from custom_components.ha_ingestor.config_flow import CONF_DISABLE_BUILTIN, IMPORT_BUILTIN
from custom_components.ha_ingestor.const import (
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_DEFAULT_MEASUREMENT,
    CONF_DOMAIN_OVERRIDES,
    CONF_ENTITY_OVERRIDES,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_GLOBS,
    CONF_FALLBACK_URLS,
    CONF_GLOB_OVERRIDES,
    CONF_IGNORE_ATTRIBUTES,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_GLOBS,
    CONF_INCLUDE_UNAVAILABLE,
    CONF_KIND,
    CONF_MEASUREMENT_STRATEGY,
    CONF_ORG,
    CONF_OVERRIDE_MEASUREMENT,
    CONF_PASSWORD,
    CONF_SSL_CA_CERT,
    CONF_STATIC_TAGS,
    CONF_TAGS_ATTRIBUTES,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    DOMAIN,
    DestinationKind,
)
from custom_components.ha_ingestor.core.encoder import MeasurementStrategy
from custom_components.ha_ingestor.import_builtin import (
    BUILTIN_DOMAIN,
    NOTHING_LEFT,
    REASON_INCLUDED,
    REASON_MAX_RETRIES,
    REASON_MEASUREMENT_ATTR,
    REASON_PRECISION,
    REASON_TAG,
    REASON_TAG_AND_IGNORED,
    BuiltinConnectionError,
    NotMapped,
    connection_data,
    options_from_yaml,
)
from custom_components.ha_ingestor.records import timestamp_ns
from tests.builtin import builtin_flushed, points, v1_builtin
from tests.common import current, delivered, settle, setup_entry
from tests.servers import InfluxV1Server, VictoriaMetricsServer, free_port, unique_name
from tests.test_config_flow import assert_translated

# The built-in's InfluxDB 1.x client (not our code) uses a deprecated datetime call on import.
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp")

RICH_YAML = """
homeassistant:
  name: Test
influxdb:
  max_retries: 3
  measurement_attr: domain__device_class
  default_measurement: fallback
  tags:
    site: home
    _private: hidden
  tags_attributes:
    - room
  ignore_attributes:
    - icon
    - room
  include:
    domains:
      - sensor
    entity_globs:
      - binary_sensor.door_*
    entities:
      - switch.pump
  exclude:
    entities:
      - sensor.secret
      - switch.pump
    domains:
      - light
    entity_globs:
      - sensor.tmp_*
  component_config:
    sensor.kitchen_power:
      ignore_attributes:
        - firmware
  component_config_domain:
    sensor:
      override_measurement: sensor_domain
      ignore_attributes:
        - battery
  component_config_glob:
    sensor.*_power:
      override_measurement: power
"""

RICH_OPTIONS = {
    CONF_INCLUDE_ENTITIES: ["switch.pump"],
    CONF_INCLUDE_DOMAINS: ["sensor"],
    CONF_INCLUDE_GLOBS: ["binary_sensor.door_*"],
    CONF_EXCLUDE_ENTITIES: ["sensor.secret"],
    CONF_EXCLUDE_DOMAINS: ["light"],
    CONF_EXCLUDE_GLOBS: ["sensor.tmp_*"],
    CONF_MEASUREMENT_STRATEGY: MeasurementStrategy.DOMAIN_DEVICE_CLASS.value,
    CONF_DEFAULT_MEASUREMENT: "fallback",
    CONF_STATIC_TAGS: {"site": "home"},
    CONF_TAGS_ATTRIBUTES: ["room"],
    CONF_IGNORE_ATTRIBUTES: ["icon"],
    CONF_INCLUDE_UNAVAILABLE: False,
    CONF_ENTITY_OVERRIDES: {"sensor.kitchen_power": {CONF_IGNORE_ATTRIBUTES: ["firmware"]}},
    CONF_DOMAIN_OVERRIDES: {
        "sensor": {CONF_OVERRIDE_MEASUREMENT: "sensor_domain", CONF_IGNORE_ATTRIBUTES: ["battery"]}
    },
    CONF_GLOB_OVERRIDES: {"sensor.*_power": {CONF_OVERRIDE_MEASUREMENT: "power"}},
}

RICH_NOT_MAPPED = [
    NotMapped("exclude.entities", "switch.pump", REASON_INCLUDED),
    NotMapped("tags._private", "'hidden'", REASON_TAG),
    NotMapped("ignore_attributes", "room", REASON_TAG_AND_IGNORED),
    NotMapped("max_retries", "3", REASON_MAX_RETRIES),
]


async def start_import(hass: HomeAssistant) -> ConfigFlowResult:
    """Open the user flow and choose the import: the confirm form."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == [IMPORT_BUILTIN, "influxdb_v2", "influxdb_v1", "data_api"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": IMPORT_BUILTIN}
    )
    assert_translated(result)
    return result


# --- menu ----------------------------------------------------------------------------------


async def test_menu_offers_import_only_with_a_builtin_entry(
    hass: HomeAssistant, config_dir: Path
) -> None:
    """No built-in entry (or an ignored one): the plain menu; an entry: import comes first."""
    MockConfigEntry(domain=BUILTIN_DOMAIN, source=config_entries.SOURCE_IGNORE).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["menu_options"] == ["influxdb_v2", "influxdb_v1", "data_api"]

    v1_builtin("http://127.0.0.1:8086", "db").add_to_hass(hass)
    result = await start_import(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "import_builtin_confirm"


# --- the real built-in ------------------------------------------------------------------


@pytest.mark.servers
async def test_import_real_builtin_ships_the_same_point(
    hass: HomeAssistant,
    *,
    freezer: FrozenDateTimeFactory,
    config_dir: Path,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    unload_all: None,
) -> None:
    """Import from the running built-in, then both write the same 4 changes: 4 points each.

    Measurement (through entity, glob and domain overrides), tags, fields with their
    types and the timestamp (to the nanosecond) of each of HA Ingestor's points equal
    the built-in's; the only difference is the one tag listed as not taken over.
    """
    (config_dir / "configuration.yaml").write_text(RICH_YAML, encoding="utf-8")
    builtin = v1_builtin(influxdb_v1.url, influx_db)
    await setup_entry(hass, builtin)
    assert builtin.state is ConfigEntryState.LOADED
    for entity_id in (
        "sensor.kitchen",
        "sensor.secret",
        "sensor.tmp_probe",
        "switch.pump",
        "light.hall",
        "binary_sensor.door_front",
        "binary_sensor.window",
    ):
        hass.states.async_set(entity_id, "1")

    result = await start_import(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {}
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert placeholders["source"] == builtin.title
    assert placeholders["destination"] == f"InfluxDB v1 {influx_db}@127.0.0.1"
    # sensor.kitchen, switch.pump and binary_sensor.door_front of the 7.
    assert (placeholders["matched"], placeholders["total"]) == ("3", "7")
    # Like the built-in, which writes switch.pump although it is also excluded.
    await builtin_flushed(hass, builtin)
    pump = await influxdb_v1.aquery("SELECT * FROM \"switch\" WHERE entity_id = 'pump'", influx_db)
    assert len(pump) == 1
    assert placeholders["not_mapped"] == "\n".join(str(item) for item in RICH_NOT_MAPPED)
    assert "- static_tags: site=home" in placeholders["settings"].splitlines()

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DISABLE_BUILTIN: False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.data == {
        CONF_KIND: DestinationKind.INFLUXDB_V1.value,
        CONF_URL: influxdb_v1.url,
        CONF_DATABASE: influx_db,
        CONF_VERIFY_SSL: False,
        CONF_FALLBACK_URLS: [],
    }
    assert entry.unique_id == destination.unique_id_from_data(entry.data)
    assert entry.options == RICH_OPTIONS
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert builtin.disabled_by is None
    assert builtin.state is ConfigEntryState.LOADED

    # Both would write to one database; point ours at another to compare the two points.
    ours_db = unique_name("db")
    await influxdb_v1.acreate_database(ours_db)
    try:
        hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_DATABASE: ours_db})
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()

        # Overrides: the domain's for sensor.outside, the glob's over the domain's for
        # sensor.garage_power, the entity's ignore list over the domain's for
        # sensor.kitchen_power; none for binary_sensor.door_back.
        attributes = {
            "unit_of_measurement": "W",
            "device_class": "power",
            "friendly_name": "Probe",
            "room": "garden",
            "icon": "mdi:flash",
            "battery": 97,
            "firmware": "v1.2",
        }
        compared = ("outside", "garage_power", "kitchen_power", "door_back")
        for object_id in compared[:3]:
            hass.states.async_set(f"sensor.{object_id}", "21.5", attributes)
        hass.states.async_set(
            "binary_sensor.door_back", "on", attributes | {"device_class": "door"}
        )
        changed = hass.states.get("sensor.outside")
        assert changed is not None
        query = f"SELECT * FROM /.*/ WHERE entity_id =~ /^({'|'.join(compared)})$/"
        await builtin_flushed(hass, builtin)
        builtin_rows = await influxdb_v1.aquery(query, influx_db)
        assert len(builtin_rows) == len(compared)
        await settle(
            hass,
            freezer,
            lambda: delivered(entry) and current(entry).events_sent >= len(compared),
        )
        ours_rows = await influxdb_v1.aquery(query, ours_db)
        by_entity = {row["entity_id"]: row for row in builtin_rows}
        assert len(by_entity) == len(builtin_rows) == len(compared)
        assert {key: row["_measurement"] for key, row in by_entity.items()} == {
            "outside": "sensor_domain",
            "garage_power": "power",
            "kitchen_power": "power",
            "door_back": "binary_sensor__door",
        }
        assert [by_entity[key].get("battery") for key in compared] == [None, None, 97, 97]
        assert [by_entity[key].get("firmware_str") for key in compared] == [
            "v1.2",
            "v1.2",
            None,
            "v1.2",
        ]
        # The one difference is the static tag listed as not taken over.
        for row in builtin_rows:
            assert row.pop("_private") == "hidden"
        assert points(ours_rows) == points(builtin_rows)
        assert {row["time"] for row in builtin_rows} == {
            timestamp_ns(changed.last_updated_timestamp)
        }
        assert {(row["site"], row["room"]) for row in builtin_rows} == {("home", "garden")}
        assert all(row.get("icon_str") is None for row in builtin_rows)
        # Same field types. The built-in's database also holds HA Ingestor's own
        # sensors (its filter includes their domain): its field list is a superset.
        fields = "SHOW FIELD KEYS"
        ours_types = {
            (r["_measurement"], r["fieldKey"], r["fieldType"])
            for r in await influxdb_v1.aquery(fields, ours_db)
        }
        builtin_types = {
            (r["_measurement"], r["fieldKey"], r["fieldType"])
            for r in await influxdb_v1.aquery(fields, influx_db)
        }
        assert len(ours_types) >= 8
        assert ours_types <= builtin_types
    finally:
        await influxdb_v1.adrop_database(ours_db)


@pytest.mark.servers
async def test_import_disables_the_builtin(
    hass: HomeAssistant,
    config_dir: Path,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    unload_all: None,
) -> None:
    """Asked to, the import disables the built-in entry (unloaded): no change is written twice.

    Without an influxdb: block, the built-in's defaults are imported and nothing is left out.
    """
    builtin = v1_builtin(influxdb_v1.url, influx_db)
    await setup_entry(hass, builtin)

    result = await start_import(hass)
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert placeholders["not_mapped"] == NOTHING_LEFT
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DISABLE_BUILTIN: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"] == {
        CONF_MEASUREMENT_STRATEGY: MeasurementStrategy.UNIT_OF_MEASUREMENT.value,
        CONF_INCLUDE_UNAVAILABLE: False,
    }
    await hass.async_block_till_done()
    assert builtin.disabled_by is ConfigEntryDisabler.USER
    assert builtin.state is ConfigEntryState.NOT_LOADED
    assert (config_dir / "configuration.yaml").read_text(encoding="utf-8") == (
        "homeassistant:\n  name: Test\n"
    )


@pytest.mark.servers
async def test_import_checks_the_connection(
    hass: HomeAssistant,
    config_dir: Path,
    influxdb_v1: InfluxV1Server,
    socket_enabled: None,
    unload_all: None,
) -> None:
    """The connection is checked like a manual setup; the form recovers once it works."""
    database = unique_name("db")
    v1_builtin(influxdb_v1.url, database).add_to_hass(hass)
    result = await start_import(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DISABLE_BUILTIN: False}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "database_not_found"}
    assert_translated(result)

    await influxdb_v1.acreate_database(database)
    try:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_DISABLE_BUILTIN: False}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
    finally:
        await influxdb_v1.adrop_database(database)


@pytest.mark.servers
async def test_import_v2_entry(
    hass: HomeAssistant,
    config_dir: Path,
    victoria_metrics: VictoriaMetricsServer,
    socket_enabled: None,
) -> None:
    """A v2 entry (URL, token, organization, bucket) imports as an InfluxDB v2 destination.

    Checked against a real v2 write API (VictoriaMetrics): 1 entry created.
    """
    MockConfigEntry(
        domain=BUILTIN_DOMAIN,
        title="b (url)",
        data={
            "api_version": "2",
            "url": f"{victoria_metrics.url}/",
            "token": "tok",
            "organization": "o",
            "bucket": "b",
            "verify_ssl": True,
            "ssl_ca_cert": None,
        },
    ).add_to_hass(hass)
    result = await start_import(hass)
    with patch("custom_components.ha_ingestor.async_setup_entry", return_value=True):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_DISABLE_BUILTIN: False}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
    assert result["data"] == {
        CONF_KIND: DestinationKind.INFLUXDB_V2.value,
        CONF_URL: victoria_metrics.url,
        CONF_ORG: "o",
        CONF_BUCKET: "b",
        CONF_TOKEN: "tok",
        CONF_VERIFY_SSL: True,
        CONF_FALLBACK_URLS: [],
    }
    assert result["title"] == "InfluxDB v2 b@127.0.0.1"


async def test_import_unreachable(
    hass: HomeAssistant, config_dir: Path, socket_enabled: None
) -> None:
    """A dead port: the confirm form shows cannot_connect and creates nothing."""
    v1_builtin(f"http://127.0.0.1:{free_port()}", "db").add_to_hass(hass)
    result = await start_import(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DISABLE_BUILTIN: True}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    assert not hass.config_entries.async_entries(DOMAIN)


# --- aborts --------------------------------------------------------------------------------


async def test_import_duplicate_aborts(hass: HomeAssistant, config_dir: Path) -> None:
    """A destination already set up (same identity as a manual setup) is not imported twice."""
    v1_builtin("http://127.0.0.1:8086", "home").add_to_hass(hass)
    data = connection_data({"host": "127.0.0.1", "database": "home"})
    MockConfigEntry(
        domain=DOMAIN, unique_id=destination.unique_id_from_data(data), data=data
    ).add_to_hass(hass)
    result = await start_import(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_import_builtin_removed_meanwhile(hass: HomeAssistant, config_dir: Path) -> None:
    """The built-in entry removed between the menu and the import: a clear abort."""
    builtin = v1_builtin("http://127.0.0.1:8086", "home")
    builtin.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    await hass.config_entries.async_remove(builtin.entry_id)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": IMPORT_BUILTIN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "builtin_not_found"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"api_version": "2", "url": "http://127.0.0.1:8086", "bucket": "b"}, "organization"),
        ({"api_version": "1", "port": "not a port"}, "invalid URL, host, port or path"),
        ({"api_version": "2", "url": "ftp://x", "organization": "o", "token": "secret-1"}, "URL"),
    ],
    ids=["missing_key", "bad_port", "bad_url"],
)
async def test_import_unusable_connection(
    hass: HomeAssistant, config_dir: Path, data: dict[str, Any], reason: str
) -> None:
    """Connection data our destination cannot use aborts with the reason, never a secret."""
    MockConfigEntry(domain=BUILTIN_DOMAIN, data=data).add_to_hass(hass)
    result = await start_import(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "builtin_unusable"
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert reason in placeholders["reason"]
    assert "secret-1" not in placeholders["reason"]


async def test_disable_fails_gracefully(
    hass: HomeAssistant, config_dir: Path, influxdb_v1: InfluxV1Server, influx_db: str
) -> None:
    """The built-in entry removed before confirming: the import still completes."""
    builtin = v1_builtin(influxdb_v1.url, influx_db)
    builtin.add_to_hass(hass)
    result = await start_import(hass)
    await hass.config_entries.async_remove(builtin.entry_id)
    with patch("custom_components.ha_ingestor.async_setup_entry", return_value=True):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_DISABLE_BUILTIN: True}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()


# --- YAML ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml", "error"),
    [
        ("influxdb:\n  tags: [unclosed\n", "configuration.yaml cannot be read"),
        (None, "configuration.yaml cannot be read"),
        ("influxdb:\n  measurement_attr: bogus\n", "the influxdb: block is invalid"),
        ("influxdb:\n  api_version: 2\n", "the influxdb: block is invalid"),
    ],
    ids=["broken_yaml", "missing_file", "invalid_value", "invalid_combination"],
)
async def test_unreadable_yaml_is_listed(
    hass: HomeAssistant, config_dir: Path, yaml: str | None, error: str
) -> None:
    """YAML the built-in cannot read: the connection is imported, the problem listed first."""
    if yaml is None:
        (config_dir / "configuration.yaml").unlink()
    else:
        (config_dir / "configuration.yaml").write_text(yaml, encoding="utf-8")
    v1_builtin("http://127.0.0.1:8086", "home").add_to_hass(hass)
    result = await start_import(hass)
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    lines = placeholders["not_mapped"].splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"- influxdb: (configuration.yaml): {error}")


async def test_builtin_code_missing_is_listed(hass: HomeAssistant, config_dir: Path) -> None:
    """The built-in's client library missing (a fake: it is installed here): listed, not fatal."""
    (config_dir / "configuration.yaml").write_text(RICH_YAML, encoding="utf-8")
    v1_builtin("http://127.0.0.1:8086", "home").add_to_hass(hass)
    with patch(
        "homeassistant.loader.Integration.async_get_component",
        side_effect=ImportError("No module named 'influxdb'"),
    ):
        result = await start_import(hass)
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert placeholders["not_mapped"].startswith(
        "- influxdb: (configuration.yaml): the built-in integration cannot be loaded"
    )


# --- mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"api_version": "1", "host": None, "port": None, "path": None, "database": None},
            {
                CONF_KIND: DestinationKind.INFLUXDB_V1.value,
                CONF_URL: "http://localhost:8086",
                CONF_DATABASE: "home_assistant",
                CONF_VERIFY_SSL: True,
                CONF_FALLBACK_URLS: [],
            },
        ),
        (
            {
                "host": "Influx.Example.org",
                "port": 443,
                "ssl": True,
                "path": "proxy/",
                "database": "ha",
                "username": "writer",
                "password": "pw",
                "verify_ssl": True,
                "ssl_ca_cert": "/ssl/ca.pem",
            },
            {
                CONF_KIND: DestinationKind.INFLUXDB_V1.value,
                CONF_URL: "https://influx.example.org/proxy",
                CONF_DATABASE: "ha",
                CONF_USERNAME: "writer",
                CONF_PASSWORD: "pw",
                CONF_VERIFY_SSL: True,
                CONF_SSL_CA_CERT: "/ssl/ca.pem",
                CONF_FALLBACK_URLS: [],
            },
        ),
        (
            # A password without a user and a CA file the 1.x client ignores without checking.
            {"host": "h", "password": "pw", "verify_ssl": False, "ssl_ca_cert": "/ssl/ca.pem"},
            {
                CONF_KIND: DestinationKind.INFLUXDB_V1.value,
                CONF_URL: "http://h:8086",
                CONF_DATABASE: "home_assistant",
                CONF_VERIFY_SSL: False,
                CONF_FALLBACK_URLS: [],
            },
        ),
        (
            {"host": "h", "username": "reader", "password": None},
            {
                CONF_KIND: DestinationKind.INFLUXDB_V1.value,
                CONF_URL: "http://h:8086",
                CONF_DATABASE: "home_assistant",
                CONF_USERNAME: "reader",
                CONF_VERIFY_SSL: True,
                CONF_FALLBACK_URLS: [],
            },
        ),
        (
            {
                "api_version": "2",
                "url": "https://eu.influx.cloud/",
                "token": "tok",
                "organization": "org",
                "bucket": None,
                "verify_ssl": True,
            },
            {
                CONF_KIND: DestinationKind.INFLUXDB_V2.value,
                CONF_URL: "https://eu.influx.cloud",
                CONF_ORG: "org",
                CONF_BUCKET: "Home Assistant",
                CONF_TOKEN: "tok",
                CONF_VERIFY_SSL: True,
                CONF_FALLBACK_URLS: [],
            },
        ),
    ],
    ids=["v1_defaults", "v1_full", "v1_password_only", "v1_user_only", "v2"],
)
def test_connection_data(data: dict[str, Any], expected: dict[str, Any]) -> None:
    """Entry data resolves as the built-in's clients resolve it."""
    assert connection_data(data) == expected


def test_connection_data_error_has_no_secret() -> None:
    """A v2 URL may carry credentials: the error does not repeat it."""
    with pytest.raises(BuiltinConnectionError) as err:
        connection_data(
            {"api_version": "2", "url": "http://u:secret-2@h", "organization": "o", "token": "t"}
        )
    assert "secret-2" not in str(err.value)


@pytest.mark.parametrize(
    ("conf", "options", "not_mapped"),
    [
        (
            {"override_measurement": "all", "measurement_attr": "entity_id", "precision": "s"},
            {
                CONF_MEASUREMENT_STRATEGY: MeasurementStrategy.OVERRIDE.value,
                CONF_OVERRIDE_MEASUREMENT: "all",
                CONF_INCLUDE_UNAVAILABLE: False,
            },
            [NotMapped("precision", "s", REASON_PRECISION)],
        ),
        (
            {"measurement_attr": "entity_id", "precision": "us", "max_retries": 0},
            {
                CONF_MEASUREMENT_STRATEGY: MeasurementStrategy.ENTITY_ID.value,
                CONF_INCLUDE_UNAVAILABLE: False,
            },
            [],
        ),
        (
            {"measurement_attr": "friendly_name", "tags": {"empty": ""}},
            {
                CONF_MEASUREMENT_STRATEGY: MeasurementStrategy.UNIT_OF_MEASUREMENT.value,
                CONF_INCLUDE_UNAVAILABLE: False,
            },
            [
                NotMapped("measurement_attr", "friendly_name", REASON_MEASUREMENT_ATTR),
                NotMapped("tags.empty", "''", REASON_TAG),
            ],
        ),
        (
            {"include": {"entities": ["light.a"]}, "exclude": {"entities": ["light.a"]}},
            {
                CONF_INCLUDE_ENTITIES: ["light.a"],
                CONF_MEASUREMENT_STRATEGY: MeasurementStrategy.UNIT_OF_MEASUREMENT.value,
                CONF_INCLUDE_UNAVAILABLE: False,
            },
            [NotMapped("exclude.entities", "light.a", REASON_INCLUDED)],
        ),
        (
            {
                "include": {"entities": ["light.a"], "domains": ["switch"]},
                "exclude": {"entities": ["light.b", "light.a"]},
            },
            {
                CONF_INCLUDE_ENTITIES: ["light.a"],
                CONF_INCLUDE_DOMAINS: ["switch"],
                CONF_EXCLUDE_ENTITIES: ["light.b"],
                CONF_MEASUREMENT_STRATEGY: MeasurementStrategy.UNIT_OF_MEASUREMENT.value,
                CONF_INCLUDE_UNAVAILABLE: False,
            },
            [NotMapped("exclude.entities", "light.a", REASON_INCLUDED)],
        ),
    ],
    ids=["override_precision", "full_precision", "unknown_attr", "entity_in_both", "one_of_two"],
)
def test_options_from_yaml(
    conf: dict[str, Any], options: dict[str, Any], not_mapped: list[NotMapped]
) -> None:
    """Each built-in option maps to ours, or is listed with its reason."""
    assert options_from_yaml(conf) == (options, not_mapped)


def test_describe_options() -> None:
    """Imported options render as one list line each."""
    assert import_builtin.describe_options(RICH_OPTIONS).splitlines()[:2] == [
        "- include_entities: switch.pump",
        "- include_domains: sensor",
    ]
