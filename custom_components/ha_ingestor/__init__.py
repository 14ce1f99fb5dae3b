"""HA Ingestor: ship Home Assistant events to InfluxDB or a data-api without losing data."""

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .config_flow import IngestorConfigFlow
from .const import CONF_MEASUREMENT_STRATEGY, CONF_SSL_CA_CERT, DOMAIN
from .core.encoder import MeasurementStrategy
from .core.spool import spool_files
from .destination import CaCertError
from .factory import async_create_runtime, spool_path
from .runtime import IngestorConfigEntry
from .services import async_setup_services

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.BUTTON, Platform.SENSOR]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

_V1_DOMAIN_DEVICE_CLASS = "domain__device_class"


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions once."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: IngestorConfigEntry) -> bool:
    """Set up an entry: capture starts now, whether or not the destination answers.

    Never raises ConfigEntryNotReady for an unreachable destination: events
    are spooled from the first second and delivered when it comes back.
    """
    try:
        runtime = await async_create_runtime(hass, entry)
    except CaCertError as err:
        # A broken CA file is a configuration fault, not an unreachable database.
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="invalid_ca_cert",
            translation_placeholders={
                "path": str(entry.data.get(CONF_SSL_CA_CERT)),
                "error": str(err),
            },
        ) from err
    entry.runtime_data = runtime
    await runtime.async_start()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: IngestorConfigEntry) -> bool:
    """Bring an entry written by an older release to the current format.

    Version 1 stored the "domain and device class" measurement strategy as
    ``domain__device_class``, which is not a valid translation key for the
    option's label; version 2 stores ``domain_device_class``. The measurement
    names written to the database are unchanged (``sensor__power``). A major
    version, because an older release would read the new value as an
    attribute name.
    """
    if entry.version > IngestorConfigFlow.VERSION:
        # Written by a newer release (a downgrade): its format is unknown here.
        return False
    if entry.version == 1:
        options = dict(entry.options)
        if options.get(CONF_MEASUREMENT_STRATEGY) == _V1_DOMAIN_DEVICE_CLASS:
            options[CONF_MEASUREMENT_STRATEGY] = MeasurementStrategy.DOMAIN_DEVICE_CLASS.value
        hass.config_entries.async_update_entry(entry, options=options, version=2, minor_version=1)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: IngestorConfigEntry) -> bool:
    """Unload an entry; the memory batch is flushed to the spool, nothing is lost."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_shutdown()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: IngestorConfigEntry) -> None:
    """Delete the entry's spool: the user removed the destination, and its backlog with it."""
    path = spool_path(hass, entry.entry_id)

    def _remove() -> None:
        # The WAL and shared-memory files belong to the same database, and
        # copies renamed aside (damaged, or from a newer version) to the entry.
        for file in spool_files(path):
            file.unlink(missing_ok=True)

    await hass.async_add_executor_job(_remove)
