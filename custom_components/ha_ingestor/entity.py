"""Base entity of ha_ingestor: one service device per entry, updated by push."""

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import CONF_KIND, DOMAIN, kind_info
from .coordinator import IngestorCoordinator
from .runtime import IngestorConfigEntry
from .snapshot import IngestorSnapshot


def device_info(entry: IngestorConfigEntry) -> DeviceInfo:
    """Describe the service device that represents one destination."""
    return DeviceInfo(
        entry_type=DeviceEntryType.SERVICE,
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="HA Ingestor",
        model=kind_info(entry.data[CONF_KIND]).title,
    )


class IngestorEntity(CoordinatorEntity[IngestorCoordinator]):
    """An entity showing one entry's published snapshot (never the pipeline itself)."""

    _attr_has_entity_name = True

    def __init__(self, entry: IngestorConfigEntry, description: EntityDescription) -> None:
        """Describe the entity and attach it to the entry's device."""
        super().__init__(entry.runtime_data.coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = device_info(entry)

    @property
    def snapshot(self) -> IngestorSnapshot:
        """The latest published snapshot."""
        return self.coordinator.data
