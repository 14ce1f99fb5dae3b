"""Options flow for per entity, domain and pattern overrides, and what they write."""

from datetime import timedelta
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_BATCH_SIZE,
    CONF_DATABASE,
    CONF_DOMAIN_OVERRIDES,
    CONF_ENTITY_OVERRIDES,
    CONF_GLOB_OVERRIDES,
    CONF_IGNORE_ATTRIBUTES,
    CONF_KIND,
    CONF_OVERRIDE_MEASUREMENT,
    CONF_URL,
    CONF_VERIFY_SSL,
    DOMAIN,
)
from tests.common import current, delivered, settle, setup_entry, unload_entry
from tests.servers import InfluxV1Server
from tests.test_config_flow import _options, api_entry, assert_translated, refused_then_saved

IMPORTED = {
    CONF_ENTITY_OVERRIDES: {"sensor.kitchen": {CONF_IGNORE_ATTRIBUTES: []}},
    CONF_DOMAIN_OVERRIDES: {"sensor": {CONF_OVERRIDE_MEASUREMENT: ""}},
    CONF_GLOB_OVERRIDES: {
        "sensor.*_power": {CONF_OVERRIDE_MEASUREMENT: "power", CONF_IGNORE_ATTRIBUTES: ["a", "b"]}
    },
}


async def _edit(hass: HomeAssistant, entry: MockConfigEntry) -> ConfigFlowResult:
    """Open the overrides step and go on to the edit form."""
    result = await _options(hass, entry, "overrides")
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"add": True})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "override_edit"
    assert_translated(result, "options")
    return result


async def test_data_api_overrides_only_shape(hass: HomeAssistant) -> None:
    """The data-api has no measurements nor tags: its overrides only throttle or deadband.

    No registry tags step either; the heartbeat applies to every destination.
    """
    with (
        patch("custom_components.ha_ingestor.async_setup_entry", return_value=True),
        patch("custom_components.ha_ingestor.async_unload_entry", return_value=True),
    ):
        entry = api_entry()
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        result = await hass.config_entries.options.async_init(entry.entry_id)
        assert result["menu_options"] == [
            "retry",
            "pipeline",
            "filters",
            "schema",
            "overrides",
            "heartbeat",
        ]
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"next_step_id": "overrides"}
        )
        result = await hass.config_entries.options.async_configure(result["flow_id"], {"add": True})
        assert_translated(result, "options")
        schema = result["data_schema"]
        assert schema is not None
        assert [str(key) for key in schema.schema] == [
            "entity_id",
            "domain",
            "glob",
            "throttle",
            "deadband",
        ]
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"domain": "sensor", "throttle": 30.0}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert entry.options[CONF_DOMAIN_OVERRIDES] == {"sensor": {"throttle": 30}}


async def test_add_first_override(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """No override yet: "add" is preselected; one entity override is stored, the rest kept."""
    result = await _options(hass, entry, "overrides")
    schema = result["data_schema"]
    assert schema is not None
    assert [str(key) for key in schema.schema] == ["add"]
    result = await _edit(hass, entry)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"entity_id": "sensor.kitchen", CONF_OVERRIDE_MEASUREMENT: " kitchen "},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_BATCH_SIZE: 100,
        CONF_ENTITY_OVERRIDES: {"sensor.kitchen": {CONF_OVERRIDE_MEASUREMENT: "kitchen"}},
    }


async def test_list_remove_and_replace(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Imported overrides are listed; removing one and replacing another in one pass."""
    hass.config_entries.async_update_entry(entry, options=entry.options | IMPORTED)
    result = await _options(hass, entry, "overrides")
    assert result["description_placeholders"] == {"count": "3"}
    schema = result["data_schema"]
    assert schema is not None
    remove = next(key for key in schema.schema if str(key) == "remove")
    labels = {
        option["value"]: option["label"] for option in schema.schema[remove].config["options"]
    }
    assert labels == {
        "entity_id:sensor.kitchen": "sensor.kitchen (entity_id) - ignored: (none)",
        "domain:sensor": "sensor (domain) - measurement: (rule of the entry)",
        "glob:sensor.*_power": "sensor.*_power (glob) - measurement: power - ignored: a, b",
    }
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"remove": ["entity_id:sensor.kitchen"], "add": True}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"glob": "sensor.*_power", CONF_IGNORE_ATTRIBUTES: ["c", " ", "c"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_BATCH_SIZE: 100,
        CONF_DOMAIN_OVERRIDES: IMPORTED[CONF_DOMAIN_OVERRIDES],
        CONF_GLOB_OVERRIDES: {"sensor.*_power": {CONF_IGNORE_ATTRIBUTES: ["c"]}},
    }


async def test_remove_all(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Removing every override drops the option keys."""
    hass.config_entries.async_update_entry(entry, options=entry.options | IMPORTED)
    result = await _options(hass, entry, "overrides")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "remove": ["entity_id:sensor.kitchen", "domain:sensor", "glob:sensor.*_power"],
            "add": False,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_BATCH_SIZE: 100}


@pytest.mark.parametrize(
    ("user_input", "errors"),
    [
        ({CONF_OVERRIDE_MEASUREMENT: "m"}, {"base": "override_one_target"}),
        (
            {"entity_id": "sensor.a", "domain": "sensor", CONF_OVERRIDE_MEASUREMENT: "m"},
            {"base": "override_one_target"},
        ),
        ({"domain": "Not A Domain", CONF_OVERRIDE_MEASUREMENT: "m"}, {"domain": "invalid_domain"}),
        (
            {"glob": "sensor.*", CONF_OVERRIDE_MEASUREMENT: "#m"},
            {"override_measurement": "invalid_measurement"},
        ),
        ({"glob": "sensor.*", CONF_IGNORE_ATTRIBUTES: [" "]}, {"base": "override_empty"}),
    ],
    ids=["no_target", "two_targets", "bad_domain", "comment_measurement", "empty"],
)
async def test_edit_errors(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    user_input: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Each invalid input is explained; the form then accepts a valid one."""
    result = await _edit(hass, entry)
    good = {"domain": "light", CONF_IGNORE_ATTRIBUTES: ["icon"]}
    await refused_then_saved(hass, result, user_input, good, errors)
    assert entry.options[CONF_DOMAIN_OVERRIDES] == {"light": {CONF_IGNORE_ATTRIBUTES: ["icon"]}}


@pytest.mark.servers
async def test_override_set_in_options_is_written(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """An override saved in the options flow reloads the entry and moves the points.

    3 changes, 3 points: one before (unit as measurement), two after (override).
    """
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=f"influxdb_v1:{influxdb_v1.url}|{influx_db}",
        data={
            CONF_KIND: "influxdb_v1",
            CONF_URL: influxdb_v1.url,
            CONF_DATABASE: influx_db,
            CONF_VERIFY_SSL: True,
        },
    )
    await setup_entry(hass, entry)
    attributes = {"unit_of_measurement": "W", "battery": 50}
    hass.states.async_set("sensor.heater_power", "1", attributes)
    freezer.tick(timedelta(milliseconds=10))

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "overrides"}
    )
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"add": True})
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "glob": "sensor.*_power",
            CONF_OVERRIDE_MEASUREMENT: "power",
            CONF_IGNORE_ATTRIBUTES: ["battery"],
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()  # the entry reloads with the new options
    for value in ("2", "3"):
        hass.states.async_set("sensor.heater_power", value, attributes)
        freezer.tick(timedelta(milliseconds=10))
    await settle(
        hass,
        freezer,
        lambda: delivered(entry) and current(entry).events_sent >= 2,
    )
    before = await influxdb_v1.aquery('SELECT "value", battery FROM "W"', influx_db)
    after = await influxdb_v1.aquery('SELECT * FROM "power"', influx_db)
    assert [(row["value"], row["battery"]) for row in before] == [(1.0, 50.0)]
    assert [row["value"] for row in after] == [2.0, 3.0]
    assert all("battery" not in row for row in after)
    await unload_entry(hass, entry)
