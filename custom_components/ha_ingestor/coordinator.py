"""The health hub: assesses an entry on every change and publishes snapshots to entities.

Every pipeline change takes a fresh :class:`IngestorSnapshot`: health
transitions fire ``ha_ingestor_health_changed`` at once and repairs follow the
facts at once. Entities get the snapshot through the coordinator at a
throttled cadence: within a second when what they show changes in kind
(health, connection, next retry, a URL's breaker), otherwise at most once a minute, so an
event storm cannot flood the recorder.
"""

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, override

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later, async_track_point_in_utc_time
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .const import DOMAIN, EVENT_HEALTH_CHANGED, LOGGER
from .core.errors import ErrorCategory
from .core.health import HealthStatus
from .repairs import RepairTracker
from .snapshot import IngestorSnapshot

if TYPE_CHECKING:
    # Type only: the runtime imports this module.
    from .runtime import IngestorConfigEntry

#: Delay of an update that changes what entities show in kind.
ENTITY_UPDATE_INTERVAL = 1.0
#: Counters and ages change on every write: entities take them at most this often.
ROUTINE_UPDATE_INTERVAL = 60.0


def _display_key(snapshot: IngestorSnapshot) -> tuple[Any, ...]:
    """Facts whose change must reach entities within a second."""
    return (
        snapshot.health,
        snapshot.connection_state,
        snapshot.next_retry,
        snapshot.last_error_category,
        snapshot.backlog == 0,
        snapshot.endpoints,
        snapshot.backfill is None or snapshot.backfill.status,
    )


class IngestorCoordinator(DataUpdateCoordinator[IngestorSnapshot]):
    """Holds the latest snapshot of one entry and pushes it to its entities."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: "IngestorConfigEntry",
        take: Callable[[], IngestorSnapshot],
        repairs: RepairTracker,
    ) -> None:
        """Publish what ``take`` returns; ``repairs`` follows every assessment."""
        super().__init__(hass, LOGGER, config_entry=entry, name=f"{DOMAIN} {entry.title}")
        self._entry = entry
        self._take = take
        self.repairs = repairs
        #: The latest assessment (published or not).
        self.current: IngestorSnapshot | None = None
        self._push_pending: CALLBACK_TYPE | None = None
        self._push_urgent = False
        self._retry_due: CALLBACK_TYPE | None = None
        self._closed = False
        self._published = False

    @override
    async def _async_update_data(self) -> IngestorSnapshot:
        """Take a snapshot now (a requested refresh, e.g. ``homeassistant.update_entity``)."""
        return self._take()

    @callback
    def async_assess(self) -> None:
        """Take a snapshot (transitions, repairs); schedule the entity update."""
        snapshot = self._assess()
        if self._closed:
            return
        if not self._published:
            self.async_set_updated_data(snapshot)
            return
        urgent = _display_key(snapshot) != _display_key(self.data)
        if self._push_pending is not None:
            if not urgent or self._push_urgent:
                return
            self._push_pending()
        self._push_urgent = urgent
        self._push_pending = async_call_later(
            self.hass,
            ENTITY_UPDATE_INTERVAL if urgent else ROUTINE_UPDATE_INTERVAL,
            self._async_push,
        )

    @callback
    def async_shutdown_updates(self) -> None:
        """Stop pushing (unload, final write) and withdraw the entry's repairs."""
        self._closed = True
        self._cancel_timers()
        self.repairs.clear()

    @override
    def async_set_updated_data(self, data: IngestorSnapshot) -> None:
        """Publish ``data``; when it shows a retry time, update again once that is due."""
        self._cancel_timers()
        self._published = True
        super().async_set_updated_data(data)
        if data.next_retry is not None and not self._closed:
            self._retry_due = async_track_point_in_utc_time(
                self.hass, self._async_retry_due, data.next_retry
            )

    @callback
    def _assess(self) -> IngestorSnapshot:
        """Take a snapshot; fire the transition event; bring repairs in line."""
        snapshot = self._take()
        old, self.current = self.current, snapshot
        if old is None or old.health != snapshot.health:
            self._on_health_transition(old, snapshot)
        if not self._closed:
            self.repairs.sync(snapshot)
        return snapshot

    @callback
    def _async_push(self, _now: Any) -> None:
        self._push_pending = None
        self.async_set_updated_data(self._assess())

    @callback
    def _async_retry_due(self, _now: datetime) -> None:
        # The shown retry time is now: never leave it on display as a past time.
        self._retry_due = None
        self.async_set_updated_data(self._assess())

    def _cancel_timers(self) -> None:
        if self._push_pending is not None:
            self._push_pending()
            self._push_pending = None
        if self._retry_due is not None:
            self._retry_due()
            self._retry_due = None

    @callback
    def _on_health_transition(self, old: IngestorSnapshot | None, new: IngestorSnapshot) -> None:
        old_status = HealthStatus.UNKNOWN.value if old is None else old.health
        if old is not None or new.health != HealthStatus.UNKNOWN.value:
            self.hass.bus.async_fire(
                EVENT_HEALTH_CHANGED,
                {
                    "entry_id": self._entry.entry_id,
                    "old_status": old_status,
                    "new_status": new.health,
                    "reason": new.reason,
                },
            )
        LOGGER.debug(
            "%s health %s -> %s: %s", self._entry.title, old_status, new.health, new.reason
        )
        if new.paused_reason == ErrorCategory.AUTH.value:
            self._entry.async_start_reauth(self.hass)
