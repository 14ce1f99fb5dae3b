"""Sensors of ha_ingestor: health, connection, retries, backlog and throughput."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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

from .core.errors import ErrorCategory
from .core.health import HealthStatus
from .core.retry import RetryStage
from .core.state import ConnectionState
from .entity import IngestorEntity
from .redact import scrub_text
from .runtime import IngestorConfigEntry, IngestorRuntime

PARALLEL_UPDATES = 0

#: ENUM state for "no retry scheduled" / "no error yet".
NONE = "none"
UNIT_EVENTS = "events"
UNIT_POINTS = "points"

# HA's own "unknown" state represents HealthStatus.UNKNOWN (starting, never
# connected), so it is not an option of its own.
HEALTH_OPTIONS = [status.value for status in HealthStatus if status is not HealthStatus.UNKNOWN]


def _timestamp(wall: float | None) -> datetime | None:
    # Whole seconds: a value recomputed from two clocks must not change every refresh.
    return None if wall is None else datetime.fromtimestamp(round(wall), UTC)


def _health(runtime: IngestorRuntime) -> str | None:
    report = runtime.health
    if report is None or report.status is HealthStatus.UNKNOWN:
        return None
    return report.status.value


def _health_attributes(runtime: IngestorRuntime) -> dict[str, Any]:
    report = runtime.health
    if report is None:
        return {}
    # Reasons quote destination error messages: never let a credential through.
    return {
        "reason": scrub_text(report.reason),
        "recommendations": [scrub_text(tip) for tip in report.recommendations],
    }


def _backfill_attributes(runtime: IngestorRuntime) -> dict[str, Any]:
    # The backlog is where a running backfill shows up, so its progress sits here.
    return {} if runtime.backfill is None else runtime.backfill.attributes()


def _connection_attributes(runtime: IngestorRuntime) -> dict[str, Any]:
    """With fallback URLs: each URL (no credentials) and its breaker state."""
    endpoints = runtime.pipeline.uploader.endpoint_states()
    if len(endpoints) < 2:
        return {}
    return {
        "endpoints": [
            {"url": scrub_text(e["url"]), "breaker_state": e["breaker_state"]} for e in endpoints
        ]
    }


def _oldest_age(runtime: IngestorRuntime) -> float | None:
    report = runtime.health
    if report is None or report.inputs.backlog_oldest_age is None:
        return None
    return round(report.inputs.backlog_oldest_age)


@dataclass(frozen=True, kw_only=True)
class IngestorSensorEntityDescription(SensorEntityDescription):
    """Describes one ha_ingestor sensor."""

    value_fn: Callable[[IngestorRuntime], datetime | float | int | str | None]
    attr_fn: Callable[[IngestorRuntime], Mapping[str, Any]] | None = None


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
        options=[state.value for state in ConnectionState],
        value_fn=lambda rt: rt.pipeline.resilience.state.value,
        attr_fn=_connection_attributes,
    ),
    IngestorSensorEntityDescription(
        key="retry_stage",
        translation_key="retry_stage",
        device_class=SensorDeviceClass.ENUM,
        entity_category=EntityCategory.DIAGNOSTIC,
        options=[NONE, *(stage.value for stage in RetryStage)],
        value_fn=lambda rt: (
            NONE if (stage := rt.pipeline.resilience.stage) is None else stage.value
        ),
    ),
    IngestorSensorEntityDescription(
        key="backlog",
        translation_key="backlog",
        native_unit_of_measurement=UNIT_EVENTS,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda rt: rt.backlog,
        # Backfill progress, and how long the spool's disk holds at the event rate.
        attr_fn=lambda rt: {**_backfill_attributes(rt), **rt.pipeline.spool_outlook()},
    ),
    IngestorSensorEntityDescription(
        key="oldest_pending_age",
        translation_key="oldest_pending_age",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=_oldest_age,
    ),
    IngestorSensorEntityDescription(
        key="events_sent",
        translation_key="events_sent",
        native_unit_of_measurement=UNIT_EVENTS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda rt: rt.pipeline.resilience.metrics.events_sent,
    ),
    IngestorSensorEntityDescription(
        key="events_dropped",
        translation_key="events_dropped",
        native_unit_of_measurement=UNIT_EVENTS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda rt: rt.pipeline.resilience.metrics.events_dropped,
    ),
    IngestorSensorEntityDescription(
        key="points_quarantined",
        translation_key="points_quarantined",
        native_unit_of_measurement=UNIT_POINTS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        # Points in the dead-letter table now (goes down after a requeue).
        value_fn=lambda rt: (
            None if (stats := rt.pipeline.stats) is None else stats.dead_letter_count
        ),
    ),
    IngestorSensorEntityDescription(
        key="quarantine_dropped",
        translation_key="quarantine_dropped",
        native_unit_of_measurement=UNIT_POINTS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        # Quarantined points deleted by the dead-letter size cap (persisted in the spool).
        value_fn=lambda rt: (
            None if (stats := rt.pipeline.stats) is None else stats.dead_letter_dropped
        ),
    ),
    IngestorSensorEntityDescription(
        key="last_success",
        translation_key="last_success",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda rt: _timestamp(rt.pipeline.resilience.last_success_wall),
    ),
    IngestorSensorEntityDescription(
        key="next_retry",
        translation_key="next_retry",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda rt: _timestamp(rt.pipeline.resilience.next_retry_at_wall),
    ),
    IngestorSensorEntityDescription(
        key="consecutive_failures",
        translation_key="consecutive_failures",
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda rt: rt.pipeline.resilience.consecutive_failures,
    ),
    IngestorSensorEntityDescription(
        key="last_error_category",
        translation_key="last_error_category",
        device_class=SensorDeviceClass.ENUM,
        entity_category=EntityCategory.DIAGNOSTIC,
        options=[NONE, *(category.value for category in ErrorCategory)],
        value_fn=lambda rt: (
            NONE
            if (category := rt.pipeline.resilience.last_error_category) is None
            else category.value
        ),
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
    """A sensor reading one fact of the pipeline."""

    entity_description: IngestorSensorEntityDescription

    @property
    @override
    def native_value(self) -> datetime | float | int | str | None:
        """The current value."""
        return self.entity_description.value_fn(self.runtime)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Extra attributes (health: reason and tips; backlog: backfill progress)."""
        if self.entity_description.attr_fn is None:
            return None
        return self.entity_description.attr_fn(self.runtime)
