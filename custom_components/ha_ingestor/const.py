"""Constants for ha_ingestor."""

from dataclasses import dataclass
from enum import StrEnum
import logging
from typing import Final

from .core.health import HealthTolerances
from .core.pipeline import PipelineConfig
from .core.sinks import DataApiTarget, InfluxV1Target, InfluxV2Target, Target
from .core.spool_types import DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMORY_BYTES, MiB

DOMAIN: Final = "ha_ingestor"
LOGGER = logging.getLogger(__package__)


class DestinationKind(StrEnum):
    """The kinds of destination an entry can ship to."""

    INFLUXDB_V2 = "influxdb_v2"
    INFLUXDB_V1 = "influxdb_v1"
    DATA_API = "data_api"


@dataclass(frozen=True, slots=True, kw_only=True)
class KindInfo:
    """What the integration knows about one kind of destination (the one place for it)."""

    #: Device model and title prefix.
    title: str
    #: The core target; built from the URL and :attr:`fields`, each of which names one of
    #: its attributes (see ``destination.target_from_data``).
    target: type[Target]
    #: Connection fields besides the URL, in form order.
    fields: tuple[str, ...]
    #: Fields the form requires.
    required: frozenset[str]
    #: Fields never shown back to the browser or written to logs.
    secrets: tuple[str, ...]
    #: Fields asked for again on reauthentication.
    credentials: tuple[str, ...]
    #: Fields that, with the URL, identify the destination (``unique_id``).
    identity: tuple[str, ...] = ()
    #: The field naming the database or bucket (titles, "not found" errors).
    name_field: str | None = None
    #: Whether points are written as line protocol (encoder, schema and override
    #: options, registry tags).
    line_protocol: bool = True
    #: Whether the destination takes the entity registry (the registry sync option).
    registry_sync: bool = False


# Entry data (connection; changed through reconfigure/reauth).
CONF_KIND: Final = "kind"
CONF_URL: Final = "url"
CONF_ORG: Final = "org"
CONF_BUCKET: Final = "bucket"
CONF_TOKEN: Final = "token"  # noqa: S105
CONF_DATABASE: Final = "database"
CONF_RETENTION_POLICY: Final = "retention_policy"
CONF_USERNAME: Final = "username"
CONF_PASSWORD: Final = "password"  # noqa: S105
CONF_VERIFY_SSL: Final = "verify_ssl"
CONF_SSL_CA_CERT: Final = "ssl_ca_cert"
CONF_FALLBACK_URLS: Final = "fallback_urls"

# Entry options (behaviour; changed through the options flow, applied by reload).
CONF_PRESET: Final = "retry_preset"
CONF_RETRY_OVERRIDES: Final = "retry_overrides"
CONF_BATCH_SIZE: Final = "batch_size"
CONF_BATCH_BYTES: Final = "batch_bytes"
CONF_FLUSH_INTERVAL: Final = "flush_interval"
CONF_SPOOL_MAX_MB: Final = "spool_max_mb"
CONF_SPOOL_MAX_AGE_DAYS: Final = "spool_max_age_days"
CONF_MEMORY_MAX_MB: Final = "memory_max_mb"
CONF_COMPRESS: Final = "compress"
CONF_OVERFLOW_POLICY: Final = "overflow_policy"
CONF_BACKLOG_TOLERANCE: Final = "backlog_tolerance"
CONF_IDLE_TOLERANCE: Final = "idle_tolerance"
CONF_OUTAGE_REPAIR_AFTER: Final = "outage_repair_after"
CONF_INCLUDE_ENTITIES: Final = "include_entities"
CONF_EXCLUDE_ENTITIES: Final = "exclude_entities"
CONF_INCLUDE_DOMAINS: Final = "include_domains"
CONF_EXCLUDE_DOMAINS: Final = "exclude_domains"
CONF_INCLUDE_GLOBS: Final = "include_entity_globs"
CONF_EXCLUDE_GLOBS: Final = "exclude_entity_globs"
CONF_INCLUDE_DEVICES: Final = "include_devices"
CONF_EXCLUDE_DEVICES: Final = "exclude_devices"
CONF_INCLUDE_AREAS: Final = "include_areas"
CONF_EXCLUDE_AREAS: Final = "exclude_areas"
CONF_INCLUDE_LABELS: Final = "include_labels"
CONF_EXCLUDE_LABELS: Final = "exclude_labels"
CONF_MEASUREMENT_STRATEGY: Final = "measurement_strategy"
CONF_DEFAULT_MEASUREMENT: Final = "default_measurement"
CONF_OVERRIDE_MEASUREMENT: Final = "override_measurement"
CONF_STATIC_TAGS: Final = "static_tags"
CONF_TAGS_ATTRIBUTES: Final = "tags_attributes"
CONF_IGNORE_ATTRIBUTES: Final = "ignore_attributes"
CONF_INCLUDE_UNAVAILABLE: Final = "include_unavailable"
CONF_EVENT_TYPES: Final = "event_types"
CONF_CONTEXT_ENTITIES: Final = "context_entities"
CONF_REGISTRY_SYNC: Final = "registry_sync"
CONF_AUTO_BACKFILL: Final = "auto_backfill"
# Per-entity, domain and glob overrides (the built-in's component_config*): each maps a
# target to {CONF_OVERRIDE_MEASUREMENT: str, CONF_IGNORE_ATTRIBUTES: [str]}.
CONF_ENTITY_OVERRIDES: Final = "entity_overrides"
CONF_DOMAIN_OVERRIDES: Final = "domain_overrides"
CONF_GLOB_OVERRIDES: Final = "glob_overrides"
# An override may also set "throttle" (s) and "deadband" (see core/shaping.py).
CONF_THROTTLE: Final = "throttle"
CONF_DEADBAND: Final = "deadband"
# Registry facts written as tags (InfluxDB): a list of REGISTRY_TAG_KINDS.
CONF_REGISTRY_TAGS: Final = "registry_tags"
REGISTRY_TAG_KINDS: Final = ("area", "floor", "device", "manufacturer", "model", "labels")
# Re-send the current state of shipped entities every this many minutes (0 = off).
CONF_HEARTBEAT_MINUTES: Final = "heartbeat_minutes"

# Defaults the core defines, in the units the options use.
DEFAULT_BATCH_SIZE: Final = PipelineConfig().batch_points
DEFAULT_BATCH_BYTES: Final = PipelineConfig().batch_bytes
DEFAULT_FLUSH_INTERVAL: Final = 1.0
# Disk space of the spool (the core's default): typical lines take ~14 B each on
# disk (compressed segments), so 512 MiB hold 7 days at 50 events/s.
DEFAULT_SPOOL_MAX_MB: Final = DEFAULT_MAX_BYTES // MiB
# Encoded bytes the spool may hold per byte of its disk limit: far more than
# lines ever compress, so only the disk limit binds on disk.
SPOOL_ENCODED_PER_DISK_BYTE: Final = 32
# RAM for the spool's memory fallback while the disk fails (Python objects included).
DEFAULT_MEMORY_MAX_MB: Final = DEFAULT_MAX_MEMORY_BYTES // MiB
DEFAULT_BACKLOG_TOLERANCE: Final = round(HealthTolerances().backlog_age)
# 0 = off: "no events from Home Assistant" is then shown, never a problem state.
DEFAULT_IDLE_TOLERANCE: Final = 0
DEFAULT_OUTAGE_REPAIR_AFTER: Final = 3600

# Fired on every health transition, for automations.
EVENT_HEALTH_CHANGED: Final = "ha_ingestor_health_changed"

# Where spools live: inside the config dir, never under custom_components/
# (HACS replaces that folder on upgrade).
SPOOL_DIR: Final = ".storage/ha_ingestor"

KINDS: Final[dict[DestinationKind, KindInfo]] = {
    DestinationKind.INFLUXDB_V2: KindInfo(
        title="InfluxDB v2",
        target=InfluxV2Target,
        fields=(CONF_ORG, CONF_BUCKET, CONF_TOKEN),
        required=frozenset({CONF_ORG, CONF_BUCKET, CONF_TOKEN}),
        secrets=(CONF_TOKEN,),
        credentials=(CONF_TOKEN,),
        identity=(CONF_ORG, CONF_BUCKET),
        name_field=CONF_BUCKET,
    ),
    DestinationKind.INFLUXDB_V1: KindInfo(
        title="InfluxDB v1",
        target=InfluxV1Target,
        fields=(CONF_DATABASE, CONF_RETENTION_POLICY, CONF_USERNAME, CONF_PASSWORD),
        required=frozenset({CONF_DATABASE}),
        secrets=(CONF_PASSWORD,),
        credentials=(CONF_USERNAME, CONF_PASSWORD),
        identity=(CONF_DATABASE, CONF_RETENTION_POLICY),
        name_field=CONF_DATABASE,
    ),
    DestinationKind.DATA_API: KindInfo(
        title="Data API",
        target=DataApiTarget,
        fields=(CONF_TOKEN,),
        required=frozenset({CONF_TOKEN}),
        secrets=(CONF_TOKEN,),
        credentials=(CONF_TOKEN,),
        line_protocol=False,
        registry_sync=True,
    ),
}


def kind_info(kind: DestinationKind | str) -> KindInfo:
    """Return what is known about ``kind``."""
    return KINDS[DestinationKind(kind)]
