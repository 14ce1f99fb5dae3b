"""Registry facts as tags: area, floor, device name, manufacturer, model, labels.

Each entity's tags are resolved once from the registries and cached; the
encoder reads the cache (in the flush job) through :meth:`RegistryTags.get`.
Registry changes re-resolve the entities they touch (area, floor and label
renames: every entity), debounced like the entity filter. Before a change is
applied, what was captured until then is flushed with the old tags, so a
state change before a move keeps the old area and one after it gets the new
one (up to the changes captured while that flush waits for a running one).
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
    label_registry as lr,
)
from homeassistant.helpers.debounce import Debouncer

from .const import LOGGER, REGISTRY_TAG_KINDS

#: Registry changes within this many seconds are applied together (the first at once).
REBUILD_COOLDOWN = 1.0
#: Entity registry fields the tags depend on.
_ENTITY_FIELDS = frozenset({"area_id", "device_id", "labels"})
#: Device registry fields the tags depend on.
_DEVICE_FIELDS = frozenset({"area_id", "labels", "manufacturer", "model", "name", "name_by_user"})


class RegistryTags:
    """Per-entity registry tags, cached and kept current."""

    def __init__(self, hass: HomeAssistant, kinds: Iterable[str]) -> None:
        """Write the ``kinds`` of tags (see REGISTRY_TAG_KINDS); resolve every entity now."""
        self._hass = hass
        self._kinds = frozenset(kinds) & frozenset(REGISTRY_TAG_KINDS)
        self._flush: Callable[[], Awaitable[Any]] | None = None
        self._forget: Callable[[Iterable[str] | None], None] | None = None
        #: entity_id -> its tags; only entities with at least one tag. Read by the
        #: flush job in the executor: changed only between flushes, on the loop.
        self._tags: dict[str, dict[str, str]] = {}
        #: Entities to re-resolve at the next apply; None: all of them.
        self._changed: set[str] | None = set()
        self._debouncer: Debouncer[Awaitable[None]] = Debouncer(
            hass, LOGGER, cooldown=REBUILD_COOLDOWN, immediate=True, function=self._async_apply
        )
        self.rebuild()

    def get(self, entity_id: str) -> Mapping[str, str] | None:
        """Return the registry tags of ``entity_id`` (the encoder's ``entity_tags`` hook)."""
        return self._tags.get(entity_id)

    @callback
    def rebuild(self) -> None:
        """Resolve every entity of the entity registry."""
        tags: dict[str, dict[str, str]] = {}
        for entity_id in er.async_get(self._hass).entities:
            if resolved := self._resolve(entity_id):
                tags[entity_id] = resolved
        self._tags = tags

    def _resolve(self, entity_id: str) -> dict[str, str]:
        """Tags of one entity from the registries (empty values are left out)."""
        hass, kinds = self._hass, self._kinds
        entry = er.async_get(hass).async_get(entity_id)
        if entry is None:
            return {}
        dev_reg = dr.async_get(hass)
        device = dev_reg.async_get(entry.device_id) if entry.device_id else None
        area_id = entry.area_id or (device.area_id if device else None)
        area = ar.async_get(hass).async_get_area(area_id) if area_id else None
        values: dict[str, str | None] = {}
        if "area" in kinds and area is not None:
            values["area"] = area.name
        if "floor" in kinds and area is not None and area.floor_id:
            floor = fr.async_get(hass).async_get_floor(area.floor_id)
            values["floor"] = floor.name if floor else None
        if device is not None:
            if "device" in kinds:
                values["device"] = device.name_by_user or device.name
            hardware: dr.DeviceEntry | Any = device
            if not isinstance(hardware, dr.DeviceEntry):
                # A child device: the hardware is its parent's.
                parent_id = getattr(device, "parent_device_id", None)
                hardware = dev_reg.async_get(parent_id) if parent_id else None
            if isinstance(hardware, dr.DeviceEntry):
                if "manufacturer" in kinds:
                    values["manufacturer"] = hardware.manufacturer
                if "model" in kinds:
                    values["model"] = hardware.model
        if "labels" in kinds:
            label_reg = lr.async_get(hass)
            label_ids = set(entry.labels) | (set(device.labels) if device else set())
            names = sorted(
                label.name.strip()
                for label_id in label_ids
                if (label := label_reg.async_get_label(label_id)) is not None
            )
            values["labels"] = ",".join(name for name in names if name)
        # InfluxDB refuses empty tag values: leave such a tag out.
        return {key: text for key, value in values.items() if value and (text := value.strip())}

    @callback
    def _mark(self, entity_ids: Iterable[str] | None) -> None:
        """Re-resolve ``entity_ids`` (None: all) at the next apply."""
        if entity_ids is None:
            self._changed = None
        elif self._changed is not None:
            self._changed.update(entity_ids)
        self._debouncer.async_schedule_call()

    async def _async_apply(self) -> None:
        """Flush with the old tags, then re-resolve what changed and drop its cached lines."""
        flush, forget = self._flush, self._forget
        if flush is None or forget is None:
            return
        await flush()
        changed, self._changed = self._changed, set()
        if changed is None:
            self.rebuild()
            forget(None)
            return
        tags = dict(self._tags)
        for entity_id in changed:
            if resolved := self._resolve(entity_id):
                tags[entity_id] = resolved
            else:
                tags.pop(entity_id, None)
        self._tags = tags
        forget(changed)

    @callback
    def async_track(
        self,
        *,
        flush: Callable[[], Awaitable[Any]],
        forget: Callable[[Iterable[str] | None], None],
    ) -> CALLBACK_TYPE:
        """Follow the entity, device, area, floor and label registries; return the unsubscriber.

        ``flush`` writes what was captured so far (with the tags before a change);
        ``forget`` drops the encoder's cached lines of entities whose tags changed.
        """
        hass = self._hass
        self._flush, self._forget = flush, forget

        @callback
        def _entity_changed(event: Event[er.EventEntityRegistryUpdatedData]) -> None:
            data = event.data
            if data["action"] == "update":
                if "old_entity_id" in data:
                    self._mark((data["old_entity_id"], data["entity_id"]))
                elif not _ENTITY_FIELDS.isdisjoint(data["changes"]):
                    self._mark((data["entity_id"],))
            else:
                self._mark((data["entity_id"],))

        @callback
        def _device_changed(event: Event[dr.EventDeviceRegistryUpdatedData]) -> None:
            data = event.data
            if data["action"] != "update":
                # Created devices have no entities yet; removed ones already lost them.
                return
            if _DEVICE_FIELDS.isdisjoint(data["changes"]):
                return
            entries = er.async_entries_for_device(
                er.async_get(hass), data["device_id"], include_disabled_entities=True
            )
            self._mark(entry.entity_id for entry in entries)

        @callback
        def _renamed(event: Event[Any]) -> None:
            # An area, floor or label renamed or removed: any entity may carry it. A new
            # one has no entity yet; "reorder" changes no name.
            if event.data.get("action") in ("update", "remove"):
                self._mark(None)

        unsubs = [
            hass.bus.async_listen(er.EVENT_ENTITY_REGISTRY_UPDATED, _entity_changed),
            hass.bus.async_listen(dr.EVENT_DEVICE_REGISTRY_UPDATED, _device_changed),
            hass.bus.async_listen(ar.EVENT_AREA_REGISTRY_UPDATED, _renamed),
            hass.bus.async_listen(fr.EVENT_FLOOR_REGISTRY_UPDATED, _renamed),
            hass.bus.async_listen(lr.EVENT_LABEL_REGISTRY_UPDATED, _renamed),
        ]

        @callback
        def _unsub() -> None:
            for unsub in unsubs:
                unsub()
            self._debouncer.async_shutdown()

        return _unsub
