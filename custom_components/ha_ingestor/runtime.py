"""Wiring one config entry's pipeline into Home Assistant.

Data: bus listener -> :class:`Pipeline` memory batch -> flush timer -> spool ->
uploader background task. State: pipeline changes -> health assessment ->
``ha_ingestor_health_changed`` event, repairs, reauth, and (throttled)
entity updates through a dispatcher signal.
"""

import asyncio
from collections.abc import Callable, Mapping
import contextlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
import time
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import (
    EVENT_HOMEASSISTANT_FINAL_WRITE,
    EVENT_HOMEASSISTANT_STOP,
    EVENT_STATE_CHANGED,
)
from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.util import dt as dt_util

from .backfill import BackfillProgress, async_run_backfill, candidate_entities
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
    DEFAULT_TIMEOUT,
    DOMAIN,
    EVENT_HEALTH_CHANGED,
    LOGGER,
    SIGNAL_UPDATE,
    SPOOL_DIR,
    SPOOL_ENCODED_PER_DISK_BYTE,
    DestinationKind,
)
from .core.breaker import CircuitBreaker
from .core.clock import SystemClock
from .core.encoder import Encoder, EncoderConfig, EventRecord, JsonEventEncoder, Rendered
from .core.errors import ErrorCategory
from .core.health import HealthReport, HealthStatus, HealthTolerances
from .core.metrics import Metrics
from .core.pipeline import Pipeline, PipelineConfig
from .core.resilience import Resilience
from .core.retry import DEFAULT_PRESET, build_policy
from .core.shaping import Shaper, ShapingEncoder
from .core.sinks import DataApiSink, create_sink
from .core.spool import OverflowPolicy, Spool
from .core.state import ConnectionState
from .core.uploader import ENDPOINT_BREAKER, Endpoint
from .destination import async_ssl_context, target_from_data
from .filters import EntityMatcher
from .heartbeat import Heartbeat
from .records import RoutingLineEncoder, context_fields, overrides_from_options, to_record
from .registry_sync import RegistrySync
from .registry_tags import RegistryTags, tags_convert
from .repairs import RecentDrops, async_clear_issues, async_sync_issues
from .shaping import shape_rules_from_options, shaped_convert

#: Entities are refreshed at most this often, so an event storm cannot flood the recorder.
ENTITY_UPDATE_INTERVAL = 1.0
#: Counters and timestamps (events sent, last success...) change on every write; pushing
#: them at most this often keeps the recorder from storing a row per sensor per second.
ROUTINE_UPDATE_INTERVAL = 30.0
#: Ages (backlog age, idle time) move with the clock: re-assess this often.
PERIODIC_REFRESH = timedelta(seconds=30)


class BackfillRunningError(Exception):
    """A backfill is already running for this entry."""


type HealthListener = Callable[[HealthReport | None, HealthReport], None]


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


@dataclass(kw_only=True)
class IngestorRuntime:
    """Everything one entry owns while loaded (``entry.runtime_data``)."""

    hass: HomeAssistant
    entry: ConfigEntry[Any]
    pipeline: Pipeline
    matcher: EntityMatcher
    flush_interval: float
    event_types: list[str]
    context_entities: frozenset[str] = frozenset()
    auto_backfill: bool = False
    _context: dict[str, Any] = field(default_factory=dict)
    _wanted: dict[str, bool] = field(init=False)
    _capture: Callable[[Any], None] = field(init=False)
    #: The bus listener for state changes (see :meth:`_build_state_listener`).
    state_listener: Callable[[Event[EventStateChangedData]], None] = field(init=False)

    def __post_init__(self) -> None:
        """Bind the listener's hot-path lookups once."""
        self._wanted = self.matcher.decisions
        self._capture = self.pipeline.capture
        self.state_listener = self._build_state_listener()

    health: HealthReport | None = None
    backfill: BackfillProgress | None = None
    registry_sync: RegistrySync | None = None
    #: Registry facts as tags (option ``registry_tags``, InfluxDB only).
    registry_tags: RegistryTags | None = None
    #: Throttle and deadband (overrides with ``throttle`` / ``deadband``).
    shaper: Shaper | None = None
    #: Re-sends unchanged states (option ``heartbeat_minutes``).
    heartbeat: Heartbeat | None = None
    _was_active: bool = False
    _ever_active: bool = False
    _backfill_task: asyncio.Task[None] | None = None
    health_listeners: list[HealthListener] = field(default_factory=list)
    _unsubs: list[CALLBACK_TYPE] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _entity_update_pending: CALLBACK_TYPE | None = None
    _entity_update_urgent: bool = False
    _last_connection: ConnectionState | None = None
    _closed: bool = False
    #: Wall time the runtime was created (outage length before any success).
    started_at: float = field(default_factory=time.time)
    #: Repair issues currently raised for this entry (owned by repairs.py).
    issues: dict[str, Any] = field(default_factory=dict)
    #: Quarantined points deleted by the dead-letter cap, recently (owned by repairs.py).
    quarantine_drops: RecentDrops = field(default_factory=RecentDrops)

    # --- lifecycle ---------------------------------------------------------------------

    async def async_start(self) -> None:
        """Open the spool, start capturing and start the uploader."""
        hass, entry = self.hass, self.entry
        await self.pipeline.async_open()
        self._refresh_context()
        # Capture from the first second, whether or not the destination answers.
        self._unsubs.append(hass.bus.async_listen(EVENT_STATE_CHANGED, self.state_listener))
        for event_type in self.event_types:
            self._unsubs.append(hass.bus.async_listen(event_type, self._on_event))
        self._unsubs.append(self.matcher.async_track_registries())
        if self.registry_tags is not None:
            self._unsubs.append(self.registry_tags.async_track(self.pipeline.capture))
        if self.heartbeat is not None:
            self._unsubs.append(self.heartbeat.async_start())
        self._unsubs.append(
            async_track_time_interval(
                hass,
                self._async_flush_tick,
                timedelta(seconds=self.flush_interval),
                name=f"{DOMAIN} flush",
            )
        )
        self._unsubs.append(
            async_track_time_interval(
                hass, self._async_periodic, PERIODIC_REFRESH, name=f"{DOMAIN} health"
            )
        )
        # HA cancels background tasks before EVENT_HOMEASSISTANT_STOP and never
        # unloads entries at shutdown: write the memory batch to disk on STOP,
        # and flush + close the spool at FINAL_WRITE.
        self._unsubs.append(hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, self._async_on_stop))
        self._unsubs.append(
            hass.bus.async_listen(EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_on_final_write)
        )
        self._tasks.append(
            entry.async_create_background_task(
                hass, self.pipeline.run_uploader(), name=f"{DOMAIN} uploader {entry.title}"
            )
        )
        if self.registry_sync is not None:
            self.registry_sync.async_start()
            self._unsubs.append(self.registry_sync.async_stop)
            self._tasks.append(
                entry.async_create_background_task(
                    hass, self.registry_sync.run(), name=f"{DOMAIN} registry sync {entry.title}"
                )
            )
        self.async_refresh()

    async def async_shutdown(self) -> None:
        """Unload: stop listening, flush memory to the spool and close it."""
        self._stop_listening()
        # Issues describe a running pipeline; an unloaded entry has none.
        async_clear_issues(self.hass, self.entry)
        await self._async_close()

    @callback
    def _stop_listening(self) -> None:
        """Drop every bus listener and timer (state changes, flush ticks, refreshes)."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        if self._entity_update_pending is not None:
            self._entity_update_pending()
            self._entity_update_pending = None

    async def _async_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # The uploader must be gone before the spool closes under it. Rows it
        # was sending stay spooled: a cancelled write is simply sent again.
        await self.async_cancel_backfill()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.shaper is not None:
            await self._async_flush_held()
        await self.pipeline.async_close()

    async def _async_on_stop(self, _event: Event) -> None:
        if self.shaper is not None:
            await self._async_flush_held()
        else:
            await self.pipeline.flush()

    async def _async_flush_held(self) -> None:
        """Write every change the throttle/deadband holds back (stop, unload, reload).

        Changes are held back while the flush job encodes them, so what is in
        memory is flushed first, then what that flush held back.
        """
        await self.pipeline.flush()
        if self._release_held(everything=True):
            await self.pipeline.flush()

    @callback
    def _release_held(self, *, everything: bool = False) -> bool:
        """Capture the held-back changes whose run ended (all of them when stopping)."""
        if self.shaper is None or not self.shaper.holding:
            return False
        released = (
            self.shaper.take_all()
            if everything
            else self.shaper.take_due(round(time.time() * 1_000_000) * 1000)
        )
        self.pipeline.capture_many(released)
        return bool(released)

    async def _async_on_final_write(self, _event: Event) -> None:
        # The spool closes now: a flush tick or a capture after this would only
        # fail or pile up in memory (entries are not unloaded at shutdown).
        self._stop_listening()
        await self._async_close()

    # --- capture -----------------------------------------------------------------------

    def _build_state_listener(self) -> Callable[[Event[EventStateChangedData]], None]:
        """Return the state-change listener: a closure unless context entities are set.

        It runs for every state change in HA. Without context entities it needs
        neither their check nor any attribute of this instance: two closure cells
        (``scripts/bench``: ~175 ns per event against ~220 ns for the method).
        """
        if self.context_entities:
            return self._on_state_changed
        wanted = self._wanted
        capture = self._capture

        @callback
        def on_state_changed(event: Event[EventStateChangedData]) -> None:
            data = event.data
            if wanted[data["entity_id"]]:
                capture(data["new_state"])

        return on_state_changed

    @callback
    def _on_state_changed(self, event: Event[EventStateChangedData]) -> None:
        """Bus listener: filter lookup and an append; everything else is off-loop."""
        # Hot path (every state change in HA): two dict lookups and a C append.
        data = event.data
        entity_id = data["entity_id"]
        if self.context_entities and entity_id in self.context_entities:
            self._refresh_context()
        if self._wanted[entity_id]:
            # The context dict is replaced, never mutated, so sharing it is safe.
            self._capture(
                (data["new_state"], self._context) if self._context else data["new_state"]
            )

    def context_fields(self) -> Mapping[str, Any]:
        """Return the enrichment fields of the context entities, as of their last change."""
        return self._context

    @callback
    def _refresh_context(self) -> None:
        """Rebuild the enrichment fields from the context entities' current states."""
        states = [s for e in self.context_entities if (s := self.hass.states.get(e))]
        self._context = context_fields(states)

    @callback
    def _on_event(self, event: Event[Any]) -> None:
        self.pipeline.capture(event)

    async def _async_flush_tick(self, _now: Any) -> None:
        await self.pipeline.flush()
        # After the flush, which shaped what was captured: a change is due only when
        # nothing newer of its entity came in. Released changes go out with the next flush.
        self._release_held()

    async def _async_periodic(self, _now: Any) -> None:
        self.async_refresh()

    # --- state -------------------------------------------------------------------------

    async def async_flush(self) -> None:
        """Flush now (action / button) and try to deliver at once."""
        await self.pipeline.flush()
        self.pipeline.uploader.wake()

    @callback
    def async_start_backfill(
        self, start: datetime, end: datetime, entity_ids: list[str] | None
    ) -> BackfillProgress:
        """Replay recorded history in [start, end) in the background."""
        if self._backfill_task is not None and not self._backfill_task.done():
            raise BackfillRunningError
        ids = sorted(e for e in entity_ids if self.matcher(e)) if entity_ids else None
        progress = BackfillProgress(start=start, end=end)
        self.backfill = progress
        self._backfill_task = self.entry.async_create_background_task(
            self.hass,
            async_run_backfill(
                self,
                progress,
                ids if ids is not None else candidate_entities(self.hass, self.matcher),
            ),
            name=f"{DOMAIN} backfill {self.entry.title}",
        )
        return progress

    async def async_cancel_backfill(self) -> bool:
        """Cancel a running backfill; True when one was running."""
        task = self._backfill_task
        self._backfill_task = None
        if task is None or task.done():
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    @property
    def backlog(self) -> int:
        """Points waiting for delivery: in memory plus in the spool (see Pipeline.backlog)."""
        return self.pipeline.backlog

    async def async_requeue_dead_letters(self) -> int:
        """Move quarantined points back to the queue and try to deliver them."""
        moved = await self.pipeline.requeue_dead_letters()
        self.async_refresh()
        return moved

    async def async_purge_dead_letters(self) -> int:
        """Delete every quarantined point (action); return how many."""
        purged = await self.pipeline.purge_dead_letters()
        self.async_refresh()
        return purged

    @callback
    def async_retry_now(self) -> None:
        """Manual retry (action / button / after a repair)."""
        self.pipeline.retry_now()
        self.async_refresh()

    @callback
    def async_on_pipeline_change(self) -> None:
        """React to pipeline activity: re-assess health now, refresh entities soon."""
        self.async_refresh()

    @callback
    def async_refresh(self) -> None:
        """Assess health; fire the transition event; schedule a throttled entity update."""
        report = self.pipeline.health()
        active = self.pipeline.resilience.state is ConnectionState.ACTIVE
        if active and self.auto_backfill and self.pipeline.gaps:
            self._maybe_backfill_gaps()
        if active and not self._was_active:
            if self._ever_active and self.registry_sync is not None:
                # Reconnected: the data-api may have missed registry changes.
                self.registry_sync.async_queue_full_sync()
            self._ever_active = True
        self._was_active = active
        old = self.health
        self.health = report
        if old is None or old.status is not report.status:
            self._on_health_transition(old, report)
        for listener in self.health_listeners:
            listener(old, report)
        if not self._closed:
            async_sync_issues(self.hass, self.entry)
        connection = self.pipeline.resilience.state
        # Status changes reach entities within a second; routine counter updates wait.
        urgent = (
            old is None
            or old.status is not report.status
            or (connection is not self._last_connection)
        )
        self._last_connection = connection
        if self._closed:
            return
        if self._entity_update_pending is not None:
            if not urgent or self._entity_update_urgent:
                return
            self._entity_update_pending()
        self._entity_update_urgent = urgent
        self._entity_update_pending = async_call_later(
            self.hass,
            ENTITY_UPDATE_INTERVAL if urgent else ROUTINE_UPDATE_INTERVAL,
            self._async_push_entities,
        )

    @callback
    def _maybe_backfill_gaps(self) -> None:
        """Replay what a full spool dropped, once the backlog has room again."""
        if (self._backfill_task is not None and not self._backfill_task.done()) or (
            "recorder" not in self.hass.config.components
        ):
            return
        if self.pipeline.room_for() == 0:
            return
        gaps, self.pipeline.gaps = self.pipeline.gaps, []
        start = dt_util.utc_from_timestamp(min(g[0] for g in gaps) / 1e9)
        # The end bound is exclusive: one microsecond past the last dropped point.
        end = dt_util.utc_from_timestamp(max(g[1] for g in gaps) / 1e9 + 1e-6)
        LOGGER.info(
            "%s: backfilling %s to %s, dropped by a full spool", self.entry.title, start, end
        )
        self.async_start_backfill(start, end, None)

    @callback
    def _async_push_entities(self, _now: Any) -> None:
        self._entity_update_pending = None
        async_dispatcher_send(self.hass, SIGNAL_UPDATE.format(self.entry.entry_id))

    @callback
    def _on_health_transition(self, old: HealthReport | None, new: HealthReport) -> None:
        old_status = old.status if old is not None else HealthStatus.UNKNOWN
        if old is not None or new.status is not HealthStatus.UNKNOWN:
            self.hass.bus.async_fire(
                EVENT_HEALTH_CHANGED,
                {
                    "entry_id": self.entry.entry_id,
                    "old_status": old_status.value,
                    "new_status": new.status.value,
                    "reason": new.reason,
                },
            )
        LOGGER.debug("%s health %s -> %s: %s", self.entry.title, old_status, new.status, new.reason)
        if self.pipeline.resilience.paused_reason is ErrorCategory.AUTH:
            self.entry.async_start_reauth(self.hass)


type IngestorConfigEntry = ConfigEntry[IngestorRuntime]


async def async_create_runtime(hass: HomeAssistant, entry: ConfigEntry[Any]) -> IngestorRuntime:
    """Build the pipeline for ``entry`` (nothing touches the network here)."""
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
            timeout=DEFAULT_TIMEOUT,
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
    if data[CONF_KIND] == DestinationKind.DATA_API:
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
    spool = Spool(
        spool_path(hass, entry.entry_id),
        # The option is disk space; segments hold lines compressed.
        max_disk_bytes=int(options.get(CONF_SPOOL_MAX_MB, DEFAULT_SPOOL_MAX_MB) * 1024 * 1024),
        max_bytes=int(options.get(CONF_SPOOL_MAX_MB, DEFAULT_SPOOL_MAX_MB) * 1024 * 1024)
        * SPOOL_ENCODED_PER_DISK_BYTE,
        max_age_seconds=float(max_age_days) * 86400 if max_age_days else None,
        overflow=OverflowPolicy(options.get(CONF_OVERFLOW_POLICY, OverflowPolicy.DROP_OLDEST)),
        max_memory_bytes=int(options.get(CONF_MEMORY_MAX_MB, DEFAULT_MEMORY_MAX_MB) * 1024 * 1024),
    )
    tolerances = HealthTolerances(
        backlog_age=float(options.get(CONF_BACKLOG_TOLERANCE, DEFAULT_BACKLOG_TOLERANCE)),
        idle_events=float(idle)
        if (idle := options.get(CONF_IDLE_TOLERANCE, DEFAULT_IDLE_TOLERANCE))
        else None,
    )
    metrics = Metrics(clock)
    resilience = Resilience(policy, clock, metrics, name=entry.title)
    runtime_ref: list[IngestorRuntime] = []
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
        on_change=lambda: runtime_ref[0].async_on_pipeline_change() if runtime_ref else None,
    )
    runtime = IngestorRuntime(
        hass=hass,
        entry=entry,
        pipeline=pipeline,
        matcher=EntityMatcher(hass, options),
        flush_interval=float(options.get(CONF_FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL)),
        event_types=list(options.get(CONF_EVENT_TYPES) or []),
        context_entities=frozenset(options.get(CONF_CONTEXT_ENTITIES) or ()),
        auto_backfill=bool(options.get(CONF_AUTO_BACKFILL, False)),
        registry_tags=registry_tags,
        shaper=shaper,
    )
    if minutes := options.get(CONF_HEARTBEAT_MINUTES):
        runtime.heartbeat = Heartbeat(
            hass,
            float(minutes) * 60,
            wanted=runtime.matcher.decisions,
            capture_many=pipeline.capture_many,
            context=runtime.context_fields if runtime.context_entities else None,
        )
    primary = endpoints[0].sink
    if options.get(CONF_REGISTRY_SYNC) and isinstance(primary, DataApiSink):
        runtime.registry_sync = RegistrySync(hass, sink=primary, policy=policy, clock=clock)
    runtime_ref.append(runtime)
    return runtime
