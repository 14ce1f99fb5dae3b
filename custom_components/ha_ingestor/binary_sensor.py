"""Binary sensors of ha_ingestor: a problem indicator and connectivity."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import override

from homeassistant.components.binary_sensor import (  # type: ignore[attr-defined]
    # Moved to binary_sensor.const (re-exported without "as") after our 2026.3 minimum.
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import IngestorEntity
from .runtime import IngestorConfigEntry
from .snapshot import IngestorSnapshot

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class IngestorBinarySensorEntityDescription(BinarySensorEntityDescription):
    """Describes one ha_ingestor binary sensor."""

    is_on_fn: Callable[[IngestorSnapshot], bool]


BINARY_SENSORS: tuple[IngestorBinarySensorEntityDescription, ...] = (
    IngestorBinarySensorEntityDescription(
        key="problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on_fn=lambda s: s.problem,
    ),
    IngestorBinarySensorEntityDescription(
        key="connected",
        translation_key="connected",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        is_on_fn=lambda s: s.connected,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: IngestorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the binary sensors of an entry."""
    async_add_entities(
        IngestorBinarySensorEntity(entry, description) for description in BINARY_SENSORS
    )


class IngestorBinarySensorEntity(IngestorEntity, BinarySensorEntity):
    """A binary sensor derived from the entry's snapshot."""

    entity_description: IngestorBinarySensorEntityDescription

    @property
    @override
    def is_on(self) -> bool:
        """Whether the condition holds."""
        return self.entity_description.is_on_fn(self.snapshot)
