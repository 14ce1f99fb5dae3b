"""Sensors of ha_ingestor: health, connection, retries, backlog and throughput."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, override

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import IngestorEntity
from .runtime import IngestorConfigEntry
from .snapshot import (
    CONNECTION_OPTIONS,
    ERROR_CATEGORY_OPTIONS,
    HEALTH_OPTIONS,
    NONE,
    RETRY_STAGE_OPTIONS,
    IngestorSnapshot,
)

PARALLEL_UPDATES = 0

UNIT_EVENTS = "events"
UNIT_POINTS = "points"


def _health(snapshot: IngestorSnapshot) -> str | None:
    # HA's own "unknown" state stands for "not known yet" (starting, never connected).
    return snapshot.health if snapshot.health in HEALTH_OPTIONS else None


def _health_attributes(snapshot: IngestorSnapshot) -> dict[str, Any]:
    return {"reason": snapshot.reason, "recommendations": list(snapshot.recommendations)}


def _backlog_attributes(snapshot: IngestorSnapshot) -> dict[str, Any]:
    # How long the spool's disk holds at the event rate, and (the backlog is where a
    # running backfill shows up) backfill progress.
    outlook = {
        key: value
        for key, value in (
            ("spool_capacity_hours", snapshot.spool_capacity_hours),
            ("spool_full_in_hours", snapshot.spool_full_in_hours),
        )
        if value is not None
    }
    backfill = snapshot.backfill
    if backfill is None:
        return outlook
    return {
        **outlook,
        "backfill_status": backfill.status,
        "backfill_percent": backfill.percent,
        "backfill_position": backfill.position.isoformat() if backfill.position else None,
        "backfill_states": backfill.states,
    }


def _connection_attributes(snapshot: IngestorSnapshot) -> dict[str, Any]:
    """With fallback URLs: each URL (no credentials) and its breaker state."""
    if not snapshot.endpoints:
        return {}
    return {
        "endpoints": [
            {"url": endpoint.url, "breaker_state": endpoint.breaker_state}
            for endpoint in snapshot.endpoints
        ]
    }


@dataclass(frozen=True, kw_only=True)
class IngestorSensorEntityDescription(SensorEntityDescription):
    """Describes one ha_ingestor sensor."""

    value_fn: Callable[[IngestorSnapshot], datetime | float | int | str | None]
    attr_fn: Callable[[IngestorSnapshot], Mapping[str, Any]] | None = None


SENSORS: tuple[IngestorSensorEntityDescription, ...] = (
    IngestorSensorEntityDescription(
        key="health",
        translation_key="health",
        device_class=SensorDeviceClass.ENUM,
        options=HEALTH_OPTIONS,
        value_fn=_health,
        attr_fn=_health_attributes,
    ),
    IngestorSensorEntityDescription(
        key="connection_state",
        translation_key="connection_state",
        device_class=SensorDeviceClass.ENUM,
        options=CONNECTION_OPTIONS,
        value_fn=lambda s: s.connection_state,
        attr_fn=_connection_attributes,
    ),
    IngestorSensorEntityDescription(
        key="retry_stage",
        translation_key="retry_stage",
        device_class=SensorDeviceClass.ENUM,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        options=RETRY_STAGE_OPTIONS,
        value_fn=lambda s: s.retry_stage or NONE,
    ),
    IngestorSensorEntityDescription(
        key="backlog",
        translation_key="backlog",
        native_unit_of_measurement=UNIT_EVENTS,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.backlog,
        attr_fn=_backlog_attributes,
    ),
    IngestorSensorEntityDescription(
        key="oldest_pending_age",
        translation_key="oldest_pending_age",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda s: s.oldest_pending_age,
    ),
    IngestorSensorEntityDescription(
        key="events_sent",
        translation_key="events_sent",
        native_unit_of_measurement=UNIT_EVENTS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda s: s.events_sent,
    ),
    IngestorSensorEntityDescription(
        key="events_dropped",
        translation_key="events_dropped",
        native_unit_of_measurement=UNIT_EVENTS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.events_dropped,
    ),
    IngestorSensorEntityDescription(
        key="points_quarantined",
        translation_key="points_quarantined",
        native_unit_of_measurement=UNIT_POINTS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        # Points in the dead-letter table now (goes down after a requeue).
        value_fn=lambda s: None if s.spool is None else s.spool.dead_letter_count,
    ),
    IngestorSensorEntityDescription(
        key="quarantine_dropped",
        translation_key="quarantine_dropped",
        native_unit_of_measurement=UNIT_POINTS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        # Quarantined points deleted by the dead-letter size cap (persisted in the spool).
        value_fn=lambda s: None if s.spool is None else s.spool.dead_letter_dropped,
    ),
    IngestorSensorEntityDescription(
        key="last_success",
        translation_key="last_success",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        # Changes with every write: enabled, it would fill the logbook while healthy.
        entity_registry_enabled_default=False,
        value_fn=lambda s: s.last_success,
    ),
    IngestorSensorEntityDescription(
        key="next_retry",
        translation_key="next_retry",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda s: s.next_retry,
    ),
    IngestorSensorEntityDescription(
        key="consecutive_failures",
        translation_key="consecutive_failures",
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda s: s.consecutive_failures,
    ),
    IngestorSensorEntityDescription(
        key="last_error_category",
        translation_key="last_error_category",
        device_class=SensorDeviceClass.ENUM,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        options=ERROR_CATEGORY_OPTIONS,
        value_fn=lambda s: s.last_error_category or NONE,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: IngestorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the sensors of an entry."""
    async_add_entities(IngestorSensorEntity(entry, description) for description in SENSORS)


class IngestorSensorEntity(IngestorEntity, SensorEntity):
    """A sensor showing one fact of the entry's snapshot."""

    entity_description: IngestorSensorEntityDescription

    @property
    @override
    def native_value(self) -> datetime | float | int | str | None:
        """The value as of the latest snapshot."""
        return self.entity_description.value_fn(self.snapshot)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Extra attributes (health: reason, tips; connection: URLs; backlog: outlook, backfill)."""
        if self.entity_description.attr_fn is None:
            return None
        return self.entity_description.attr_fn(self.snapshot)
