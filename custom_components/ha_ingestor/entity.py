"""Base entity of ha_ingestor: one service device per entry, updated by push."""

from typing import override

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity, EntityDescription

from .const import CONF_KIND, DOMAIN, SIGNAL_UPDATE, DestinationKind
from .runtime import IngestorConfigEntry, IngestorRuntime

MODELS: dict[str, str] = {
    DestinationKind.INFLUXDB_V1: "InfluxDB v1",
    DestinationKind.INFLUXDB_V2: "InfluxDB v2",
    DestinationKind.DATA_API: "Data API",
}


def device_info(entry: IngestorConfigEntry) -> DeviceInfo:
    """Describe the service device that represents one destination."""
    kind = str(entry.data.get(CONF_KIND, ""))
    return DeviceInfo(
        entry_type=DeviceEntryType.SERVICE,
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="HA Ingestor",
        model=MODELS.get(kind, kind),
    )


class IngestorEntity(Entity):
    """An entity reporting on one entry's pipeline.

    The runtime sends a dispatcher signal (throttled to once a second) whenever
    something changed, so entities never poll.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: IngestorConfigEntry, description: EntityDescription) -> None:
        """Describe the entity and attach it to the entry's device."""
        self.entity_description = description
        self._entry = entry
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = device_info(entry)

    @property
    def runtime(self) -> IngestorRuntime:
        """The entry's runtime."""
        return self._entry.runtime_data

    @override
    async def async_added_to_hass(self) -> None:
        """Subscribe to the entry's update signal."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, SIGNAL_UPDATE.format(self._entry.entry_id), self._handle_update
            )
        )

    @callback
    def _handle_update(self) -> None:
        self.async_write_ha_state()
