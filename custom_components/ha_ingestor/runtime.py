"""Everything one loaded entry owns (``entry.runtime_data``) and its lifecycle.

Data: bus listener (``listener.py``) -> pipeline memory batch -> flush timer ->
spool -> uploader background task. State: pipeline changes -> the health hub
(``coordinator.py``) -> snapshot -> entities, event, repairs, reauth.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
import time
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval

from .backfill import BackfillRunner
from .const import DOMAIN
from .coordinator import IngestorCoordinator
from .core.pipeline import Pipeline
from .core.shaping import Shaper
from .core.spool_types import DeadLetter
from .core.state import ConnectionState
from .heartbeat import Heartbeat
from .listener import EventCapture
from .registry_sync import RegistrySync
from .registry_tags import RegistryTags

#: Ages (backlog age, idle time) move with the clock: re-assess this often.
PERIODIC_REFRESH = timedelta(seconds=30)


@dataclass(kw_only=True)
class IngestorRuntime:
    """Everything one entry owns while loaded."""

    hass: HomeAssistant
    entry: "IngestorConfigEntry"
    pipeline: Pipeline
    capture: EventCapture
    coordinator: IngestorCoordinator
    backfill: BackfillRunner
    flush_interval: float
    auto_backfill: bool = False
    registry_sync: RegistrySync | None = None
    #: Registry facts as tags (option ``registry_tags``, InfluxDB only; tracked by the capture).
    registry_tags: RegistryTags | None = None
    #: Throttle and deadband (overrides with ``throttle`` / ``deadband``).
    shaper: Shaper | None = None
    #: Re-sends unchanged states (option ``heartbeat_minutes``).
    heartbeat: Heartbeat | None = None
    _was_active: bool = False
    _ever_active: bool = False
    _unsubs: list[CALLBACK_TYPE] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _closed: bool = False

    # --- lifecycle ---------------------------------------------------------------------

    async def async_start(self) -> None:
        """Open the spool, start capturing and start the uploader."""
        hass, entry = self.hass, self.entry
        await self.pipeline.async_open()
        # Capture from the first second, whether or not the destination answers.
        self._unsubs.extend(self.capture.async_listen())
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
        await self.coordinator.async_shutdown()
        await self._async_close()

    @callback
    def _stop_listening(self) -> None:
        """Drop every bus listener and timer (state changes, flush ticks, refreshes)."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        self.coordinator.async_shutdown_updates()

    async def _async_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # The uploader must be gone before the spool closes under it. Rows it
        # was sending stay spooled: a cancelled write is simply sent again.
        await self.backfill.async_cancel()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # asyncio.wait, not "await task" under suppress(CancelledError): that would
            # also swallow a cancellation of this close itself.
            await asyncio.wait(self._tasks)
        self._tasks.clear()
        if self.shaper is not None:
            await self._async_flush_held()
        await self.pipeline.async_close()

    async def _async_on_stop(self, _event: Event) -> None:
        await self._async_flush_held()

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

    async def _async_flush_tick(self, _now: Any) -> None:
        await self.pipeline.flush()
        # After the flush, which shaped what was captured: a change is due only when
        # nothing newer of its entity came in. Released changes go out with the next flush.
        self._release_held()

    async def _async_periodic(self, _now: Any) -> None:
        self.async_refresh()

    # --- actions -----------------------------------------------------------------------

    async def async_flush(self) -> None:
        """Flush now (action / button) and try to deliver at once."""
        await self.pipeline.flush()
        self.pipeline.uploader.wake()

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
    def async_reset_circuit_breaker(self) -> None:
        """Close the breakers (the main one and every URL's); retry at once if one was open."""
        resilience = self.pipeline.resilience
        was_open = resilience.state is ConnectionState.CIRCUIT_OPEN
        resilience.breaker.reset()
        # The fallback URLs' breakers too: an open one keeps its URL skipped.
        was_open |= self.pipeline.uploader.reset_endpoint_breakers()
        if was_open:
            # The retry was scheduled for when the breaker would half-open; with the
            # breaker closed, leave that wait and try at once.
            self.async_retry_now()
        else:
            self.async_refresh()

    # --- state -------------------------------------------------------------------------

    @callback
    def async_refresh(self) -> None:
        """React to pipeline activity: reconnect duties, then assess and publish."""
        active = self.pipeline.resilience.state is ConnectionState.ACTIVE
        if active and self.auto_backfill:
            self.backfill.async_replay_gaps()
        if active and not self._was_active:
            if self._ever_active and self.registry_sync is not None:
                # Reconnected: the data-api may have missed registry changes.
                self.registry_sync.async_queue_full_sync()
            self._ever_active = True
        self._was_active = active
        if not self._closed:
            self.coordinator.async_assess()

    def _dead_letter_sample(self) -> list[DeadLetter]:
        """Return the oldest dead letters; none once the spool closed (the final write)."""
        spool = self.pipeline.spool
        return spool.dead_letters(DEAD_LETTER_SAMPLE) if spool.is_open else []

    async def async_dump(self) -> dict[str, Any]:
        """Deep state for diagnostics (not redacted; diagnostics.py redacts)."""
        pipeline = self.pipeline
        snapshot = self.coordinator.current
        metrics = pipeline.resilience.metrics
        return {
            "snapshot": snapshot,
            "resilience": pipeline.resilience.as_dict(),
            "errors_by_category": {
                category.value: count for category, count in metrics.failures.items() if count
            },
            "last_error": pipeline.resilience.health_fields()["last_error"],
            "active_endpoint": pipeline.uploader.active_endpoint,
            "buffered": pipeline.buffered,
            "spool": pipeline.stats,
            "dead_letters": await self.hass.async_add_executor_job(self._dead_letter_sample),
            "repair_issues": self.coordinator.repairs.raised,
            "backfill": None
            if self.backfill.progress is None
            else self.backfill.progress.as_dict(),
            "registry_sync": (None if self.registry_sync is None else self.registry_sync.as_dict()),
            "registry_tags": (None if self.registry_tags is None else self.registry_tags.as_dict()),
            "shaping": None if self.shaper is None else self.shaper.as_dict(),
            "heartbeat": None if self.heartbeat is None else self.heartbeat.as_dict(),
        }


#: Dead letters shown in diagnostics.
DEAD_LETTER_SAMPLE = 20

type IngestorConfigEntry = ConfigEntry[IngestorRuntime]
