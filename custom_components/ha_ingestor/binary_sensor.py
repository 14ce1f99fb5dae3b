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

from .core.health import HealthStatus
from .core.state import ConnectionState
from .entity import IngestorEntity
from .runtime import IngestorConfigEntry, IngestorRuntime

PARALLEL_UPDATES = 0

#: Statuses that are not a problem. ``unknown`` (starting up, no attempt has
#: finished yet) is not one: a restart must not trigger problem automations.
NOT_A_PROBLEM = frozenset({HealthStatus.HEALTHY, HealthStatus.UNKNOWN})


def _problem(runtime: IngestorRuntime) -> bool:
    report = runtime.health
    return report is not None and report.status not in NOT_A_PROBLEM


@dataclass(frozen=True, kw_only=True)
class IngestorBinarySensorEntityDescription(BinarySensorEntityDescription):
    """Describes one ha_ingestor binary sensor."""

    is_on_fn: Callable[[IngestorRuntime], bool]


BINARY_SENSORS: tuple[IngestorBinarySensorEntityDescription, ...] = (
    IngestorBinarySensorEntityDescription(
        key="problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on_fn=_problem,
    ),
    IngestorBinarySensorEntityDescription(
        key="connected",
        translation_key="connected",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        is_on_fn=lambda rt: rt.pipeline.resilience.state is ConnectionState.ACTIVE,
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
    """A binary sensor derived from the pipeline's state."""

    entity_description: IngestorBinarySensorEntityDescription

    @property
    @override
    def is_on(self) -> bool:
        """Whether the condition holds."""
        return self.entity_description.is_on_fn(self.runtime)
