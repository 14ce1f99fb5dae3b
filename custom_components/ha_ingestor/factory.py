"""Building one entry's runtime from its data and options (nothing touches the network)."""

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .backfill import BackfillRunner
from .const import (
    CONF_AUTO_BACKFILL,
    CONF_BACKLOG_TOLERANCE,
    CONF_BATCH_BYTES,
    CONF_BATCH_SIZE,
    CONF_COMPRESS,
    CONF_CONTEXT_ENTITIES,
    CONF_DEFAULT_MEASUREMENT,
    CONF_EVENT_TYPES,
    CONF_FALLBACK_URLS,
    CONF_FLUSH_INTERVAL,
    CONF_HEARTBEAT_MINUTES,
    CONF_IDLE_TOLERANCE,
    CONF_IGNORE_ATTRIBUTES,
    CONF_INCLUDE_UNAVAILABLE,
    CONF_KIND,
    CONF_MEASUREMENT_STRATEGY,
    CONF_MEMORY_MAX_MB,
    CONF_OVERFLOW_POLICY,
    CONF_OVERRIDE_MEASUREMENT,
    CONF_PRESET,
    CONF_REGISTRY_SYNC,
    CONF_REGISTRY_TAGS,
    CONF_RETRY_OVERRIDES,
    CONF_SPOOL_MAX_AGE_DAYS,
    CONF_SPOOL_MAX_MB,
    CONF_STATIC_TAGS,
    CONF_TAGS_ATTRIBUTES,
    DEFAULT_BACKLOG_TOLERANCE,
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_IDLE_TOLERANCE,
    DEFAULT_MEMORY_MAX_MB,
    DEFAULT_SPOOL_MAX_MB,
    SPOOL_DIR,
    SPOOL_ENCODED_PER_DISK_BYTE,
    kind_info,
)
from .coordinator import IngestorCoordinator
from .core.breaker import CircuitBreaker
from .core.clock import SystemClock
from .core.encoder import Encoder, EncoderConfig, EventRecord, JsonEventEncoder, Rendered
from .core.health import HealthTolerances
from .core.metrics import Metrics
from .core.pipeline import Pipeline, PipelineConfig
from .core.resilience import Resilience
from .core.retry import DEFAULT_PRESET, build_policy
from .core.shaping import Shaper, ShapingEncoder
from .core.sinks import DataApiSink, create_sink
from .core.spool import OverflowPolicy, Spool
from .core.spool_types import MiB
from .core.uploader import ENDPOINT_BREAKER, Endpoint
from .destination import async_ssl_context, target_from_data
from .filters import EntityMatcher
from .heartbeat import Heartbeat
from .listener import EventCapture
from .records import RoutingLineEncoder, overrides_from_options, to_record
from .redact import entry_secrets
from .registry_sync import RegistrySync
from .registry_tags import RegistryTags, tags_convert
from .repairs import RepairTracker
from .runtime import IngestorConfigEntry, IngestorRuntime
from .shaping import shape_rules_from_options, shaped_convert
from .snapshot import IngestorSnapshot, take_snapshot

#: A point waiting longer than this many flush intervals (and at least
#: :data:`OVERDUE_MIN` seconds) is overdue: counted in the backlog, and a stall
#: when no write was confirmed for as long.
OVERDUE_FLUSHES = 3
OVERDUE_MIN = 10.0


def encoder_config(options: Mapping[str, Any]) -> EncoderConfig:
    """Build encoder settings from entry options (defaults match the built-in influxdb)."""
    kwargs: dict[str, Any] = {}
    if strategy := options.get(CONF_MEASUREMENT_STRATEGY):
        kwargs["measurement_attr"] = strategy
    if default := options.get(CONF_DEFAULT_MEASUREMENT):
        kwargs["default_measurement"] = default
    if override := options.get(CONF_OVERRIDE_MEASUREMENT):
        kwargs["override_measurement"] = override
    return EncoderConfig(
        tags=dict(options.get(CONF_STATIC_TAGS) or {}),
        tags_attributes=frozenset(options.get(CONF_TAGS_ATTRIBUTES) or ()),
        ignore_attributes=frozenset(options.get(CONF_IGNORE_ATTRIBUTES) or ()),
        include_unknown=bool(options.get(CONF_INCLUDE_UNAVAILABLE, False)),
        overrides=overrides_from_options(options),
        **kwargs,
    )


def spool_path(hass: HomeAssistant, entry_id: str) -> Path:
    """Where an entry's spool lives (config dir, survives HACS upgrades)."""
    return Path(hass.config.path(SPOOL_DIR, f"{entry_id}.sqlite"))


async def async_create_runtime(hass: HomeAssistant, entry: IngestorConfigEntry) -> IngestorRuntime:
    """Build the pipeline for ``entry`` and everything around it."""
    data, options = entry.data, entry.options
    clock = SystemClock()
    session = async_get_clientsession(hass)
    ssl_context = await async_ssl_context(hass, data)
    target = target_from_data(data)
    policy = build_policy(
        options.get(CONF_PRESET, DEFAULT_PRESET), options.get(CONF_RETRY_OVERRIDES) or {}
    )
    urls: list[str | None] = [
        None,
        *(options.get(CONF_FALLBACK_URLS) or data.get(CONF_FALLBACK_URLS) or []),
    ]
    sinks = [
        create_sink(
            target,
            session,
            url=url,
            ssl=ssl_context,
            offload=hass.async_add_executor_job,
            compress=bool(options.get(CONF_COMPRESS, True)),
        )
        for url in urls
    ]
    endpoints = [
        Endpoint(
            sink=sink,
            # Per-URL breakers only matter when there is something to fall back to;
            # their thresholds suit a fallback, whatever the retry preset. Named by
            # the URL without credentials (the name is logged).
            breaker=CircuitBreaker(ENDPOINT_BREAKER, clock, name=sink.endpoint)
            if len(sinks) > 1
            else None,
        )
        for sink in sinks
    ]
    encoder: Encoder
    convert: Callable[[Any], EventRecord | Rendered | None] = to_record
    registry_tags: RegistryTags | None = None
    if not kind_info(data[CONF_KIND]).line_protocol:
        encoder = JsonEventEncoder(
            include_unknown=bool(options.get(CONF_INCLUDE_UNAVAILABLE, False))
        )
    else:
        config = encoder_config(options)
        if options.get(CONF_REGISTRY_TAGS):
            registry_tags = RegistryTags(hass, options[CONF_REGISTRY_TAGS])
            config = replace(config, entity_tags=registry_tags.get)
        encoder = line_encoder = RoutingLineEncoder(config)
        convert = line_encoder.convert
        if registry_tags is not None:
            convert = tags_convert(convert, registry_tags, line_encoder.forget)
    shaper: Shaper | None = None
    if (rules := shape_rules_from_options(options)) is not None:
        shaper = Shaper(rules)
        encoder = ShapingEncoder(encoder, shaper)
        convert = shaped_convert(convert, shaper)
    max_age_days = options.get(CONF_SPOOL_MAX_AGE_DAYS)
    max_disk_bytes = int(options.get(CONF_SPOOL_MAX_MB, DEFAULT_SPOOL_MAX_MB) * MiB)
    spool = Spool(
        spool_path(hass, entry.entry_id),
        # The option is disk space; segments hold lines compressed.
        max_disk_bytes=max_disk_bytes,
        max_bytes=max_disk_bytes * SPOOL_ENCODED_PER_DISK_BYTE,
        max_age_seconds=float(max_age_days) * 86400 if max_age_days else None,
        overflow=OverflowPolicy(options.get(CONF_OVERFLOW_POLICY, OverflowPolicy.DROP_OLDEST)),
        max_memory_bytes=int(options.get(CONF_MEMORY_MAX_MB, DEFAULT_MEMORY_MAX_MB) * MiB),
    )
    flush_interval = float(options.get(CONF_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL))
    tolerances = HealthTolerances(
        backlog_age=float(options.get(CONF_BACKLOG_TOLERANCE, DEFAULT_BACKLOG_TOLERANCE)),
        idle_events=float(idle)
        if (idle := options.get(CONF_IDLE_TOLERANCE, DEFAULT_IDLE_TOLERANCE))
        else None,
        stalled_after=max(OVERDUE_MIN, OVERDUE_FLUSHES * flush_interval),
    )
    metrics = Metrics(clock)
    resilience = Resilience(policy, clock, metrics, name=entry.title)

    def on_change() -> None:
        # Set before the first change can happen: the pipeline only changes once started.
        runtime.async_refresh()

    pipeline = Pipeline(
        encoder=encoder,
        spool=spool,
        endpoints=endpoints,
        resilience=resilience,
        clock=clock,
        run_sync=hass.async_add_executor_job,
        convert=convert,
        config=PipelineConfig(
            batch_points=int(options.get(CONF_BATCH_SIZE, DEFAULT_BATCH_SIZE)),
            batch_bytes=int(options.get(CONF_BATCH_BYTES, DEFAULT_BATCH_BYTES)),
            tolerances=tolerances,
        ),
        on_change=on_change,
    )
    matcher = EntityMatcher(hass, options)
    backfill = BackfillRunner(hass, entry, pipeline, matcher, on_progress=on_change)
    secrets = entry_secrets(data)

    def take() -> IngestorSnapshot:
        progress = backfill.progress
        return take_snapshot(
            pipeline,
            tolerances=tolerances,
            secrets=secrets,
            backfill=None if progress is None else progress.snapshot(),
            now=clock.time(),
        )

    context_entities = frozenset(options.get(CONF_CONTEXT_ENTITIES) or ())
    capture = EventCapture(
        hass,
        matcher,
        pipeline.capture,
        event_types=list(options.get(CONF_EVENT_TYPES) or []),
        context_entities=context_entities,
        registry_tags=registry_tags,
    )
    heartbeat: Heartbeat | None = None
    if minutes := options.get(CONF_HEARTBEAT_MINUTES):
        heartbeat = Heartbeat(
            hass,
            float(minutes) * 60,
            wanted=matcher.decisions,
            capture_many=pipeline.capture_many,
            context=capture.context_fields if context_entities else None,
        )
    runtime = IngestorRuntime(
        hass=hass,
        entry=entry,
        pipeline=pipeline,
        capture=capture,
        coordinator=IngestorCoordinator(hass, entry, take, RepairTracker(hass, entry)),
        backfill=backfill,
        flush_interval=flush_interval,
        auto_backfill=bool(options.get(CONF_AUTO_BACKFILL, False)),
        registry_tags=registry_tags,
        shaper=shaper,
        heartbeat=heartbeat,
    )
    primary = endpoints[0].sink
    if options.get(CONF_REGISTRY_SYNC) and isinstance(primary, DataApiSink):
        runtime.registry_sync = RegistrySync(hass, sink=primary, policy=policy, clock=clock)
    return runtime
