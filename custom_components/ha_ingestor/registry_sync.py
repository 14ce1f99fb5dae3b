"""Device and entity registry sync to the data-api.

On first connect and after every reconnect, full device and entity registry
snapshots are pushed; in between, registry update events (create, update,
remove, rename) are coalesced per id and pushed in batches. Upserts are
idempotent, so a retried or repeated batch is harmless. Failures keep the
pending changes and retry with the entry's staged backoff; a reconnect
schedules a full snapshot anyway.
"""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er

from .const import LOGGER
from .core.clock import Clock
from .core.errors import DeliveryError, ErrorKind
from .core.logthrottle import ThrottledLog
from .core.retry import RetryPolicy, RetrySchedule
from .core.sinks import DataApiSink

DEVICES_PATH = "/internal/devices/bulk_upsert"
ENTITIES_PATH = "/internal/entities/bulk_upsert"
#: Items per request.
BATCH = 500
#: Coalesce bursts of registry events (HA start-up renames many at once).
DEBOUNCE = 2.0


def all_devices(registry: dr.DeviceRegistry) -> list[Any]:
    """Every device entry, on releases where ``devices`` is a mapping and where it is not."""
    devices: Any = registry.devices
    # Up to 2026.x ``devices`` is a dict of id -> entry; later an iterable of entries.
    return list(devices.values()) if isinstance(devices, Mapping) else list(devices)


def device_payload(device: Any) -> dict[str, Any]:
    """JSON view of a device registry entry.

    Typed loosely on purpose: newer releases add child device entries that
    lack some DeviceEntry fields, so those are read with a default.
    """

    try:
        # 2026.10+: a device belongs to one entry; ``config_entries`` is deprecated there.
        config_entries = [device.config_entry_id]
    except AttributeError:
        config_entries = sorted(getattr(device, "config_entries", ()))

    def enum_value(name: str) -> Any:
        value = getattr(device, name, None)
        return getattr(value, "value", value)

    return {
        "id": device.id,
        "name": getattr(device, "name", None),
        "name_by_user": getattr(device, "name_by_user", None),
        "manufacturer": getattr(device, "manufacturer", None),
        "model": getattr(device, "model", None),
        "model_id": getattr(device, "model_id", None),
        "sw_version": getattr(device, "sw_version", None),
        "hw_version": getattr(device, "hw_version", None),
        "serial_number": getattr(device, "serial_number", None),
        "area_id": getattr(device, "area_id", None),
        "labels": sorted(getattr(device, "labels", ())),
        "config_entries": config_entries,
        "identifiers": sorted([list(i) for i in getattr(device, "identifiers", ())]),
        "connections": sorted([list(c) for c in getattr(device, "connections", ())]),
        "via_device_id": getattr(device, "via_device_id", None),
        "entry_type": enum_value("entry_type"),
        "disabled_by": enum_value("disabled_by"),
        "deleted": False,
    }


def entity_payload(entry: er.RegistryEntry) -> dict[str, Any]:
    """JSON view of an entity registry entry."""
    return {
        "entity_id": entry.entity_id,
        "unique_id": entry.unique_id,
        "platform": entry.platform,
        "device_id": entry.device_id,
        "area_id": entry.area_id,
        "labels": sorted(entry.labels),
        "name": entry.name,
        "original_name": entry.original_name,
        "device_class": entry.device_class,
        "original_device_class": entry.original_device_class,
        "unit_of_measurement": entry.unit_of_measurement,
        "entity_category": entry.entity_category.value if entry.entity_category else None,
        "disabled_by": entry.disabled_by.value if entry.disabled_by else None,
        "hidden_by": entry.hidden_by.value if entry.hidden_by else None,
        "config_entry_id": entry.config_entry_id,
        "deleted": False,
    }


class RegistrySync:
    """Pushes registry snapshots and changes to a data-api."""

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        sink: DataApiSink,
        policy: RetryPolicy,
        clock: Clock,
    ) -> None:
        """Create the sync; nothing happens before :meth:`async_start`."""
        self._hass = hass
        self._sink = sink
        self._schedule = RetrySchedule(policy)
        self._clock = clock
        self._devices: dict[str, dict[str, Any]] = {}
        self._entities: dict[str, dict[str, Any]] = {}
        self._wakeup = asyncio.Event()
        self._unsubs: list[Any] = []
        self.synced_devices = 0
        self.synced_entities = 0
        self.full_syncs = 0
        self.rejected = 0
        self.last_error: str | None = None
        # A data-api whose validation got stricter rejects item after item.
        self._throttle = ThrottledLog(LOGGER, monotonic=clock.monotonic)

    @property
    def pending(self) -> int:
        """Changes not yet accepted by the data-api."""
        return len(self._devices) + len(self._entities)

    @callback
    def async_start(self) -> None:
        """Listen to registry changes and queue a full snapshot."""
        self._unsubs = [
            self._hass.bus.async_listen(dr.EVENT_DEVICE_REGISTRY_UPDATED, self._on_device),
            self._hass.bus.async_listen(er.EVENT_ENTITY_REGISTRY_UPDATED, self._on_entity),
        ]
        self.async_queue_full_sync()

    @callback
    def async_stop(self) -> None:
        """Stop listening."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs = []

    @callback
    def async_queue_full_sync(self) -> None:
        """Queue every device and entity (first connect, reconnect)."""
        self._devices.update(
            {d.id: device_payload(d) for d in all_devices(dr.async_get(self._hass))}
        )
        self._entities.update(
            {e.entity_id: entity_payload(e) for e in er.async_get(self._hass).entities.values()}
        )
        self.full_syncs += 1
        self._wakeup.set()

    @callback
    def _on_device(self, event: Event[dr.EventDeviceRegistryUpdatedData]) -> None:
        device_id = event.data["device_id"]
        if event.data["action"] == "remove":
            self._devices[device_id] = {"id": device_id, "deleted": True}
        elif device := dr.async_get(self._hass).async_get(device_id):
            self._devices[device_id] = device_payload(device)
        self._wakeup.set()

    @callback
    def _on_entity(self, event: Event[er.EventEntityRegistryUpdatedData]) -> None:
        data: Mapping[str, Any] = event.data
        entity_id: str = data["entity_id"]
        if data["action"] == "remove":
            self._entities[entity_id] = {"entity_id": entity_id, "deleted": True}
        else:
            if old := data.get("old_entity_id"):
                # A rename: the old id disappears, the new one appears.
                self._entities[old] = {"entity_id": old, "deleted": True}
            if entry := er.async_get(self._hass).async_get(entity_id):
                self._entities[entity_id] = entity_payload(entry)
        self._wakeup.set()

    async def run(self) -> None:
        """Push pending changes forever (background task)."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._clock.sleep(DEBOUNCE)
            try:
                await self._push(DEVICES_PATH, self._devices)
                await self._push(ENTITIES_PATH, self._entities)
            except DeliveryError as err:
                self.last_error = f"{err.category.value}: {err.message}"
                delay = self._schedule.delay_for(err) or 300.0
                LOGGER.debug("Registry sync failed (%s); retrying in %.0f s", err, delay)
                await self._clock.sleep(delay)
                self._wakeup.set()
            else:
                self._schedule.reset()
                self.last_error = None

    async def _push(self, path: str, pending: dict[str, dict[str, Any]]) -> None:
        """Send ``pending`` in batches, removing what the data-api accepted."""
        while pending:
            keys = list(pending)[:BATCH]
            await self._send(path, pending, keys)

    async def _send(self, path: str, pending: dict[str, dict[str, Any]], keys: list[str]) -> None:
        """Send one batch; split it on 413 and isolate items the data-api rejects."""
        items: Sequence[dict[str, Any]] = [pending[k] for k in keys]
        try:
            await self._sink.upsert(path, items)
        except DeliveryError as err:
            if err.kind not in (ErrorKind.BAD_DATA, ErrorKind.TOO_LARGE):
                raise
            if len(keys) == 1:
                # One bad item must not stall the sync forever: drop it, loudly.
                self._throttle.warning(
                    f"rejected {path}",
                    "Registry item %s rejected by the data-api: %s",
                    keys[0],
                    err,
                )
                self.rejected += 1
                pending.pop(keys[0], None)
                return
            mid = len(keys) // 2
            await self._send(path, pending, keys[:mid])
            await self._send(path, pending, keys[mid:])
            return
        for key, item in zip(keys, items, strict=True):
            # Keep a newer change that arrived while this batch was in flight.
            if pending.get(key) is item:
                del pending[key]
        if path == DEVICES_PATH:
            self.synced_devices += len(items)
        else:
            self.synced_entities += len(items)

    def as_dict(self) -> dict[str, Any]:
        """Diagnostics view."""
        return {
            "pending": self.pending,
            "synced_devices": self.synced_devices,
            "synced_entities": self.synced_entities,
            "full_syncs": self.full_syncs,
            "rejected": self.rejected,
            "last_error": self.last_error,
        }
