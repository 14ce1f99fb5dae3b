"""Registry facts as tags: area, floor, device name, manufacturer, model, labels.

Each entity's tags are resolved once from the registries and cached; the
encoder reads the cache (in the flush job) through :meth:`RegistryTags.get`.

A registry change must apply from the next captured state change on, not to
the ones still waiting in memory. So the bus listener for registry events
resolves the new tags of the entities the change touches (a few dictionary
lookups) and captures them as a :class:`TagUpdate` into the same stream as
state changes. The flush job meets it in order, swaps the tags and drops the
encoder's cached lines of those entities (:func:`tags_convert`): a state
change before a move keeps the old area, one after it gets the new one.
Area, floor and label renames touch every entity: that rescan is debounced.
"""

from collections.abc import Callable, Iterable, Mapping
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
from .core.encoder import EventRecord, Rendered

#: Renames of areas, floors and labels within this many seconds share one rescan.
RESCAN_COOLDOWN = 1.0
#: Entity registry fields the tags depend on.
_ENTITY_FIELDS = frozenset({"area_id", "device_id", "labels"})
#: Device registry fields the tags depend on.
_DEVICE_FIELDS = frozenset({"area_id", "labels", "manufacturer", "model", "name", "name_by_user"})


class TagUpdate:
    """New tags of some entities (or of all), applied by the flush job in capture order."""

    __slots__ = ("everything", "tags")

    def __init__(self, tags: dict[str, dict[str, str]], *, everything: bool = False) -> None:
        """``tags`` per entity id (empty: no tag any more); ``everything``: replace all."""
        self.tags = tags
        self.everything = everything


def tags_convert(
    convert: Callable[[Any], EventRecord | Rendered | None],
    registry_tags: "RegistryTags",
    forget: Callable[[Iterable[str] | None], None],
) -> Callable[[Any], EventRecord | Rendered | None]:
    """Wrap the flush job's convert step so it applies :class:`TagUpdate` items in order."""

    def convert_tags(item: Any) -> EventRecord | Rendered | None:
        if type(item) is TagUpdate:
            forget(registry_tags.apply(item))
            return None
        return convert(item)

    return convert_tags


class RegistryTags:
    """Per-entity registry tags, cached and kept current."""

    def __init__(self, hass: HomeAssistant, kinds: Iterable[str]) -> None:
        """Write the ``kinds`` of tags (see REGISTRY_TAG_KINDS); resolve every entity now."""
        self._hass = hass
        self._kinds = frozenset(kinds) & frozenset(REGISTRY_TAG_KINDS)
        self._capture: Callable[[Any], None] | None = None
        self._debouncer: Debouncer[None] = Debouncer(
            hass, LOGGER, cooldown=RESCAN_COOLDOWN, immediate=True, function=self._rescan
        )
        #: entity_id -> its tags; only entities with at least one tag. Owned by the
        #: flush job once capture runs (see :meth:`apply`).
        self._tags: dict[str, dict[str, str]] = self._resolve_all()
        #: The same as last captured, for the loop: unchanged tags are not captured again.
        self._known: dict[str, dict[str, str]] = dict(self._tags)

    def get(self, entity_id: str) -> Mapping[str, str] | None:
        """Return the registry tags of ``entity_id`` (the encoder's ``entity_tags`` hook)."""
        return self._tags.get(entity_id)

    def as_dict(self) -> dict[str, Any]:
        """Return the kinds and the number of tagged entities (no tag values): diagnostics."""
        return {"kinds": sorted(self._kinds), "tagged_entities": len(self._tags)}

    def apply(self, update: TagUpdate) -> list[str] | None:
        """Apply ``update`` (flush job); return the entities whose tags changed, None: all."""
        if update.everything:
            self._tags = update.tags
            return None
        tags = self._tags
        for entity_id, resolved in update.tags.items():
            if resolved:
                tags[entity_id] = resolved
            else:
                tags.pop(entity_id, None)
        return list(update.tags)

    def _resolve_all(self) -> dict[str, dict[str, str]]:
        """Resolve every entity of the entity registry."""
        return {
            entity_id: resolved
            for entity_id in er.async_get(self._hass).entities
            if (resolved := self._resolve(entity_id))
        }

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
    def _changed(self, entity_ids: Iterable[str]) -> None:
        """Capture the new tags of those of ``entity_ids`` whose tags changed."""
        known = self._known
        changes: dict[str, dict[str, str]] = {}
        for entity_id in entity_ids:
            resolved = self._resolve(entity_id)
            if known.get(entity_id, {}) != resolved:
                changes[entity_id] = resolved
                if resolved:
                    known[entity_id] = resolved
                else:
                    known.pop(entity_id, None)
        if changes and self._capture is not None:
            self._capture(TagUpdate(changes))

    @callback
    def _rescan(self) -> None:
        """Capture the tags of every entity (an area, floor or label changed)."""
        resolved = self._resolve_all()
        if resolved != self._known and self._capture is not None:
            self._known = resolved
            # A copy: the flush job updates its own dict in place afterwards.
            self._capture(TagUpdate(dict(resolved), everything=True))

    @callback
    def async_track(self, capture: Callable[[Any], None]) -> CALLBACK_TYPE:
        """Follow the entity, device, area, floor and label registries; return the unsubscriber.

        ``capture`` is the pipeline's: tag updates travel with the state changes.
        """
        hass = self._hass
        self._capture = capture

        @callback
        def _entity_changed(event: Event[er.EventEntityRegistryUpdatedData]) -> None:
            data = event.data
            if data["action"] == "update":
                if "old_entity_id" in data:
                    self._changed((data["old_entity_id"], data["entity_id"]))
                elif not _ENTITY_FIELDS.isdisjoint(data["changes"]):
                    self._changed((data["entity_id"],))
            else:
                self._changed((data["entity_id"],))

        @callback
        def _device_changed(event: Event[dr.EventDeviceRegistryUpdatedData]) -> None:
            data = event.data
            if data["action"] != "update" or _DEVICE_FIELDS.isdisjoint(data["changes"]):
                # A new device has no entity yet; a removed one already lost them.
                return
            entries = er.async_entries_for_device(
                er.async_get(hass), data["device_id"], include_disabled_entities=True
            )
            self._changed([entry.entity_id for entry in entries])

        @callback
        def _renamed(event: Event[Any]) -> None:
            # An area, floor or label renamed or removed: any entity may carry it. A new
            # one has no entity yet; "reorder" changes no name.
            if event.data.get("action") in ("update", "remove"):
                self._debouncer.async_schedule_call()

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
            self._capture = None

        return _unsub
