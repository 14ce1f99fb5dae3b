"""Which entities an entry ships: entity ids, domains, globs, devices, areas, labels.

Devices, areas and labels are resolved to entity ids through the registries
and re-resolved when the registries change, so the bus listener only does a
dictionary lookup per event.

Re-resolving scans the whole entity registry, and an integration setting up
fires one registry event per entity: the rescan is debounced
(:data:`REBUILD_COOLDOWN`). So that a new entity's first states are not judged
by a stale filter meanwhile, an entity that is created, renamed or moved to
another device, area or label set (itself or through its device) is decided at
once from its own entry. Only when such an entity was a member before (it may
have left) is the registry rescanned at once. Area and label registry events
(renames, deletions that the entity/device events already report) wait for the
debounced rescan.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    label_registry as lr,
)
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.entityfilter import EntityFilter, convert_filter

from .const import (
    CONF_EXCLUDE_AREAS,
    CONF_EXCLUDE_DEVICES,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_GLOBS,
    CONF_EXCLUDE_LABELS,
    CONF_INCLUDE_AREAS,
    CONF_INCLUDE_DEVICES,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_GLOBS,
    CONF_INCLUDE_LABELS,
    DOMAIN,
    LOGGER,
)

#: Registry changes within this many seconds share one rescan of the registry.
REBUILD_COOLDOWN = 1.0
#: Registry entry fields that decide device/area/label membership.
_MEMBERSHIP = frozenset({"device_id", "area_id", "labels"})


def _list(options: Mapping[str, Any], key: str) -> list[str]:
    value = options.get(key) or []
    return [value] if isinstance(value, str) else list(value)


def entities_for(
    hass: HomeAssistant, devices: list[str], areas: list[str], labels: list[str]
) -> set[str]:
    """Entity ids that belong to any of the devices, areas or labels."""
    if not (devices or areas or labels):
        return set()
    dev_reg = dr.async_get(hass)
    device_set, area_set, label_set = set(devices), set(areas), set(labels)
    return {
        entry.entity_id
        for entry in er.async_get(hass).entities.values()
        if _belongs(entry, dev_reg, device_set, area_set, label_set)
    }


def _belongs(
    entry: er.RegistryEntry,
    dev_reg: dr.DeviceRegistry,
    devices: set[str],
    areas: set[str],
    labels: set[str],
) -> bool:
    """Whether one registry entry belongs to any of the devices, areas or labels."""
    if not (devices or areas or labels):
        return False
    device = dev_reg.async_get(entry.device_id) if entry.device_id else None
    area_id = entry.area_id or (device.area_id if device else None)
    entity_labels = set(entry.labels) | (set(device.labels) if device else set())
    return (
        (entry.device_id is not None and entry.device_id in devices)
        or (area_id is not None and area_id in areas)
        or bool(entity_labels & labels)
    )


def own_entities(hass: HomeAssistant) -> set[str]:
    """Our own entities: shipping them would feed the pipeline its own status."""
    return {e.entity_id for e in er.async_get(hass).entities.values() if e.platform == DOMAIN}


@dataclass(frozen=True, slots=True)
class _Side:
    """The include or the exclude half of the filter options."""

    entities: list[str]
    devices: list[str]
    areas: list[str]
    labels: list[str]
    domains: list[str]
    globs: list[str]

    @classmethod
    def read(cls, options: Mapping[str, Any], *keys: str) -> "_Side":
        """Read the lists named by ``keys`` (entities, devices, areas, labels, domains, globs)."""
        return cls(*(_list(options, key) for key in keys))

    @property
    def by_registry(self) -> bool:
        """Whether entities are also chosen through devices, areas or labels."""
        return bool(self.devices or self.areas or self.labels)

    def resolve(self, hass: HomeAssistant) -> set[str]:
        """Entity ids named directly or through their device, area or label now."""
        return set(self.entities) | entities_for(hass, self.devices, self.areas, self.labels)

    def names(
        self, entity_id: str, entry: er.RegistryEntry | None, dev_reg: dr.DeviceRegistry
    ) -> bool:
        """Whether this side names ``entity_id``, directly or through its registry entry."""
        return entity_id in self.entities or (
            entry is not None
            and _belongs(entry, dev_reg, set(self.devices), set(self.areas), set(self.labels))
        )


class _Decisions(dict[str, bool]):
    """Per-entity verdicts; a hit is a plain C dict lookup in the bus listener."""

    def __init__(self, decide: Callable[[str], bool]) -> None:
        super().__init__()
        self.decide = decide

    def __missing__(self, entity_id: str) -> bool:
        result = self[entity_id] = self.decide(entity_id)
        return result


class EntityMatcher:
    """Decides per entity id, caching the answer until the registries change."""

    def __init__(self, hass: HomeAssistant, options: Mapping[str, Any]) -> None:
        """Build the filter from entry options."""
        self._hass = hass
        self._include = _Side.read(
            options,
            CONF_INCLUDE_ENTITIES,
            CONF_INCLUDE_DEVICES,
            CONF_INCLUDE_AREAS,
            CONF_INCLUDE_LABELS,
            CONF_INCLUDE_DOMAINS,
            CONF_INCLUDE_GLOBS,
        )
        self._exclude = _Side.read(
            options,
            CONF_EXCLUDE_ENTITIES,
            CONF_EXCLUDE_DEVICES,
            CONF_EXCLUDE_AREAS,
            CONF_EXCLUDE_LABELS,
            CONF_EXCLUDE_DOMAINS,
            CONF_EXCLUDE_GLOBS,
        )
        self._nothing = False
        #: Entity ids resolved from devices/areas/labels by the last rescan.
        self._resolved: set[str] = set()
        #: Entities created or renamed since the last rescan: decided from their own entry.
        self._fresh: set[str] = set()
        self._filter: EntityFilter = self._build()
        self._debouncer: Debouncer[None] = Debouncer(
            hass, LOGGER, cooldown=REBUILD_COOLDOWN, immediate=False, function=self.rebuild
        )
        #: ``decisions[entity_id]`` -> ship it? Cleared in place on registry changes,
        #: so holders of this dict always see current verdicts.
        self.decisions = _Decisions(self._decide)

    def _build(self) -> EntityFilter:
        inc, exc = self._include, self._exclude
        include, exclude = inc.resolve(self._hass), exc.resolve(self._hass)
        self._resolved = include | exclude
        # Our own entities are never shipped, even if a domain include matches them.
        exclude |= own_entities(self._hass)
        include -= exclude
        by_name = bool(include or inc.domains or inc.globs)
        # A device/area/label include that currently resolves to nothing must
        # still mean "include only those", not "include everything".
        self._nothing = inc.by_registry and not by_name
        return convert_filter(
            {
                "include_domains": inc.domains,
                "include_entities": sorted(include),
                "include_entity_globs": inc.globs,
                "exclude_domains": exc.domains,
                "exclude_entities": sorted(exclude),
                "exclude_entity_globs": exc.globs,
            }
        )

    @callback
    def rebuild(self) -> None:
        """Re-resolve devices/areas/labels (registry changed)."""
        self._filter = self._build()
        self._fresh.clear()
        self.decisions.clear()

    def _decide(self, entity_id: str) -> bool:
        if entity_id in self._fresh and (verdict := self._own_verdict(entity_id)) is not None:
            return verdict
        return not self._nothing and self._filter(entity_id)

    def _own_verdict(self, entity_id: str) -> bool | None:
        """Return the verdict a rescan would give from this entity's own entry, if membership decides.

        ``None`` when the entity is in no device/area/label list (nor an entity
        list): then only domains and globs decide, as for any other entity.
        """
        entry = er.async_get(self._hass).async_get(entity_id)
        dev_reg = dr.async_get(self._hass)
        if (entry is not None and entry.platform == DOMAIN) or self._exclude.names(
            entity_id, entry, dev_reg
        ):
            return False
        if self._include.names(entity_id, entry, dev_reg):
            return True
        return None

    def __call__(self, entity_id: str) -> bool:
        """Whether ``entity_id`` is shipped (cached)."""
        return self.decisions[entity_id]

    @callback
    def async_track_registries(self) -> Callable[[], None]:
        """Rebuild (debounced) whenever an entity, device, area or label registry changes."""

        @callback
        def _changed(_event: Event[Any]) -> None:
            self._debouncer.async_schedule_call()

        @callback
        def _mark(entity_ids: Iterable[str]) -> None:
            ids = set(entity_ids)
            if not self._resolved.isdisjoint(ids):
                # A member may have left its device/area/label: only a rescan can tell.
                self.rebuild()
                return
            self._fresh |= ids
            for entity_id in ids:
                self.decisions.pop(entity_id, None)
            self._debouncer.async_schedule_call()

        @callback
        def _entity_changed(event: Event[er.EventEntityRegistryUpdatedData]) -> None:
            data = event.data
            if data["action"] == "create" or (
                data["action"] == "update"
                and ("old_entity_id" in data or not _MEMBERSHIP.isdisjoint(data["changes"]))
            ):
                _mark([data["entity_id"]])
            else:
                self._debouncer.async_schedule_call()

        @callback
        def _device_changed(event: Event[dr.EventDeviceRegistryUpdatedData]) -> None:
            data = event.data
            if data["action"] == "update" and not _MEMBERSHIP.isdisjoint(data["changes"]):
                entries = er.async_entries_for_device(
                    er.async_get(self._hass), data["device_id"], include_disabled_entities=True
                )
                _mark(entry.entity_id for entry in entries)
            else:
                self._debouncer.async_schedule_call()

        unsubs = [
            self._hass.bus.async_listen(er.EVENT_ENTITY_REGISTRY_UPDATED, _entity_changed),
            self._hass.bus.async_listen(dr.EVENT_DEVICE_REGISTRY_UPDATED, _device_changed),
            self._hass.bus.async_listen(ar.EVENT_AREA_REGISTRY_UPDATED, _changed),
            self._hass.bus.async_listen(lr.EVENT_LABEL_REGISTRY_UPDATED, _changed),
        ]

        @callback
        def _unsub() -> None:
            for unsub in unsubs:
                unsub()
            self._debouncer.async_shutdown()

        return _unsub
