"""Config entries written by an older release load and keep their meaning."""

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.config_flow import IngestorConfigFlow
from custom_components.ha_ingestor.const import (
    CONF_BATCH_SIZE,
    CONF_MEASUREMENT_STRATEGY,
    DOMAIN,
)
from tests.common import setup_entry, tick, unload_entry, v1_entry
from tests.servers import InfluxV1Server


def entry_at_version(
    url: str, database: str, version: int, options: dict[str, object], minor_version: int = 1
) -> MockConfigEntry:
    """The InfluxDB 1.x entry of ``tests.common`` as stored at ``version.minor_version``."""
    template = v1_entry(url, database)
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id=template.entry_id,
        title=template.title,
        unique_id=template.unique_id,
        data=dict(template.data),
        options=options,
        version=version,
        minor_version=minor_version,
    )


async def test_v1_domain_device_class_migrates_and_still_names_measurements(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """A version 1 entry holding ``domain__device_class`` loads as version 2 with the new value.

    The entry is written exactly as version 1 of the config flow stored it. After
    migration the points still land in ``sensor__power`` (the built-in's naming):
    1 point written, 1 point read back, 0 lost.
    """
    entry = entry_at_version(
        influxdb_v1.url,
        influx_db,
        1,
        {CONF_MEASUREMENT_STRATEGY: "domain__device_class", CONF_BATCH_SIZE: 5000},
    )
    await setup_entry(hass, entry)

    assert entry.state is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (
        IngestorConfigFlow.VERSION,
        IngestorConfigFlow.MINOR_VERSION,
    )
    assert dict(entry.options) == {
        CONF_MEASUREMENT_STRATEGY: "domain_device_class",
        CONF_BATCH_SIZE: 5000,
    }

    hass.states.async_set("sensor.heater", "1500", {"device_class": "power"})
    rows: list[dict[str, object]] = []
    for _ in range(30):
        await tick(hass, freezer, 1.0)
        rows = await influxdb_v1.aquery('SELECT "value" FROM "sensor__power"', influx_db)
        if rows:
            break
    assert [row["value"] for row in rows] == [1500.0]
    await unload_entry(hass, entry)


async def test_v1_entry_without_the_old_value_keeps_its_options(
    hass: HomeAssistant, influxdb_v1: InfluxV1Server, influx_db: str
) -> None:
    """A version 1 entry with another strategy is only re-versioned: options unchanged."""
    options = {CONF_MEASUREMENT_STRATEGY: "entity_id"}
    entry = entry_at_version(influxdb_v1.url, influx_db, 1, options)
    await setup_entry(hass, entry)

    assert entry.state is ConfigEntryState.LOADED
    assert entry.version == 2
    assert dict(entry.options) == options
    await unload_entry(hass, entry)


async def test_entry_from_a_newer_release_is_not_loaded(
    hass: HomeAssistant, influxdb_v1: InfluxV1Server, influx_db: str
) -> None:
    """An entry written by a future major version is refused, not guessed at."""
    entry = entry_at_version(influxdb_v1.url, influx_db, IngestorConfigFlow.VERSION + 1, {})
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.MIGRATION_ERROR


async def test_entry_from_a_newer_minor_version_loads_unchanged(
    hass: HomeAssistant, influxdb_v1: InfluxV1Server, influx_db: str
) -> None:
    """A newer minor version promises compatibility: it loads, version and options untouched."""
    options = {CONF_MEASUREMENT_STRATEGY: "domain_device_class"}
    entry = entry_at_version(
        influxdb_v1.url,
        influx_db,
        IngestorConfigFlow.VERSION,
        options,
        minor_version=IngestorConfigFlow.MINOR_VERSION + 1,
    )
    await setup_entry(hass, entry)

    assert entry.state is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (
        IngestorConfigFlow.VERSION,
        IngestorConfigFlow.MINOR_VERSION + 1,
    )
    assert dict(entry.options) == options
    await unload_entry(hass, entry)
