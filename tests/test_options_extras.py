"""Options flow for registry tags, heartbeat, throttle and deadband: forms and stored options."""

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import (
    CONF_BATCH_SIZE,
    CONF_DEADBAND,
    CONF_DOMAIN_OVERRIDES,
    CONF_ENTITY_OVERRIDES,
    CONF_GLOB_OVERRIDES,
    CONF_HEARTBEAT_MINUTES,
    CONF_REGISTRY_TAGS,
    CONF_THROTTLE,
    REGISTRY_TAG_KINDS,
)
from tests.test_config_flow import TRANSLATIONS, _options


async def test_registry_tags_step(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Chosen kinds are stored in a fixed order; choosing none removes the option."""
    result = await _options(hass, entry, "registry_tags")
    schema = result["data_schema"]
    assert schema is not None
    selector = schema.schema[next(iter(schema.schema))]
    assert selector.config["options"] == list(REGISTRY_TAG_KINDS)
    assert set(TRANSLATIONS["selector"]["registry_tags"]["options"]) == set(REGISTRY_TAG_KINDS)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_REGISTRY_TAGS: ["labels", "area"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_BATCH_SIZE: 100, CONF_REGISTRY_TAGS: ["area", "labels"]}

    result = await _options(hass, entry, "registry_tags")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_REGISTRY_TAGS: []}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_BATCH_SIZE: 100}


async def test_heartbeat_step(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Minutes are stored as a whole number; 0 (off, the default) removes the option."""
    result = await _options(hass, entry, "heartbeat")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_HEARTBEAT_MINUTES: 15.0}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_BATCH_SIZE: 100, CONF_HEARTBEAT_MINUTES: 15}
    result = await _options(hass, entry, "heartbeat")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_HEARTBEAT_MINUTES: 0}
    )
    assert entry.options == {CONF_BATCH_SIZE: 100}


async def test_throttle_and_deadband_overrides(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """An override may set only a throttle or a deadband; the list shows them; 0 means off."""
    for target in (
        {"domain": "sensor", CONF_THROTTLE: 60.0, CONF_DEADBAND: 0.5},
        {"glob": "sensor.*_power", CONF_DEADBAND: 2.0},
        {"entity_id": "sensor.fast_power", CONF_THROTTLE: 0.0},
    ):
        result = await _options(hass, entry, "overrides")
        result = await hass.config_entries.options.async_configure(result["flow_id"], {"add": True})
        assert [str(key) for key in result["data_schema"].schema][-2:] == [
            CONF_THROTTLE,
            CONF_DEADBAND,
        ]
        result = await hass.config_entries.options.async_configure(result["flow_id"], target)
        assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_BATCH_SIZE: 100,
        CONF_DOMAIN_OVERRIDES: {"sensor": {CONF_THROTTLE: 60, CONF_DEADBAND: 0.5}},
        CONF_GLOB_OVERRIDES: {"sensor.*_power": {CONF_DEADBAND: 2}},
        CONF_ENTITY_OVERRIDES: {"sensor.fast_power": {CONF_THROTTLE: 0}},
    }
    result = await _options(hass, entry, "overrides")
    remove = next(key for key in result["data_schema"].schema if str(key) == "remove")
    labels = [option["label"] for option in result["data_schema"].schema[remove].config["options"]]
    assert labels == [
        "sensor.fast_power (entity_id) - throttle: off",
        "sensor (domain) - throttle: 60 s - deadband: 0.5",
        "sensor.*_power (glob) - deadband: 2",
    ]
