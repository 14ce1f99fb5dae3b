"""Which entities an entry ships: entity ids, domains, globs, devices, areas, labels.

Devices, areas and labels are resolved to entity ids through the registries
and re-resolved when the registries change, so the bus listener only does a
dictionary lookup per event.
"""

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    label_registry as lr,
)
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
)


def _list(options: Mapping[str, Any], key: str) -> list[str]:
    value = options.get(key) or []
    return [value] if isinstance(value, str) else list(value)


def entities_for(
    hass: HomeAssistant, devices: list[str], areas: list[str], labels: list[str]
) -> set[str]:
    """Entity ids that belong to any of the devices, areas or labels."""
    if not (devices or areas or labels):
        return set()
    ent_reg = er.async_get(hass)
    dev_reg = dr.async_get(hass)
    device_set, area_set, label_set = set(devices), set(areas), set(labels)
    found: set[str] = set()
    for entry in ent_reg.entities.values():
        device = dev_reg.async_get(entry.device_id) if entry.device_id else None
        area_id = entry.area_id or (device.area_id if device else None)
        entity_labels = set(entry.labels) | (set(device.labels) if device else set())
        if (
            (entry.device_id is not None and entry.device_id in device_set)
            or (area_id is not None and area_id in area_set)
            or (entity_labels & label_set)
        ):
            found.add(entry.entity_id)
    return found


def own_entities(hass: HomeAssistant) -> set[str]:
    """Our own entities: shipping them would feed the pipeline its own status."""
    return {e.entity_id for e in er.async_get(hass).entities.values() if e.platform == DOMAIN}


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
        self._options = options
        self._nothing = False
        self._filter: EntityFilter = self._build()
        #: ``decisions[entity_id]`` -> ship it? Cleared in place on registry changes,
        #: so holders of this dict always see current verdicts.
        self.decisions = _Decisions(self._decide)

    def _build(self) -> EntityFilter:
        opts = self._options
        include = set(_list(opts, CONF_INCLUDE_ENTITIES)) | entities_for(
            self._hass,
            _list(opts, CONF_INCLUDE_DEVICES),
            _list(opts, CONF_INCLUDE_AREAS),
            _list(opts, CONF_INCLUDE_LABELS),
        )
        exclude = set(_list(opts, CONF_EXCLUDE_ENTITIES)) | entities_for(
            self._hass,
            _list(opts, CONF_EXCLUDE_DEVICES),
            _list(opts, CONF_EXCLUDE_AREAS),
            _list(opts, CONF_EXCLUDE_LABELS),
        )
        # Our own entities are never shipped, even if a domain include matches them.
        exclude |= own_entities(self._hass)
        include -= exclude
        has_include = bool(
            include
            or _list(opts, CONF_INCLUDE_DOMAINS)
            or _list(opts, CONF_INCLUDE_GLOBS)
            or _list(opts, CONF_INCLUDE_DEVICES)
            or _list(opts, CONF_INCLUDE_AREAS)
            or _list(opts, CONF_INCLUDE_LABELS)
        )
        # A device/area/label include that currently resolves to nothing must
        # still mean "include only those", not "include everything".
        self._nothing = has_include and not (
            include or _list(opts, CONF_INCLUDE_DOMAINS) or _list(opts, CONF_INCLUDE_GLOBS)
        )
        return convert_filter(
            {
                "include_domains": _list(opts, CONF_INCLUDE_DOMAINS),
                "include_entities": sorted(include),
                "include_entity_globs": _list(opts, CONF_INCLUDE_GLOBS),
                "exclude_domains": _list(opts, CONF_EXCLUDE_DOMAINS),
                "exclude_entities": sorted(exclude),
                "exclude_entity_globs": _list(opts, CONF_EXCLUDE_GLOBS),
            }
        )

    @callback
    def rebuild(self) -> None:
        """Re-resolve devices/areas/labels (registry changed)."""
        self._filter = self._build()
        self.decisions.clear()

    def _decide(self, entity_id: str) -> bool:
        return not self._nothing and self._filter(entity_id)

    def __call__(self, entity_id: str) -> bool:
        """Whether ``entity_id`` is shipped (cached)."""
        return self.decisions[entity_id]

    @callback
    def async_track_registries(self) -> Callable[[], None]:
        """Rebuild whenever an entity, device, area or label registry changes."""

        @callback
        def _changed(_event: Event[Any]) -> None:
            self.rebuild()

        unsubs = [
            self._hass.bus.async_listen(event_type, _changed)
            for event_type in (
                er.EVENT_ENTITY_REGISTRY_UPDATED,
                dr.EVENT_DEVICE_REGISTRY_UPDATED,
                ar.EVENT_AREA_REGISTRY_UPDATED,
                lr.EVENT_LABEL_REGISTRY_UPDATED,
            )
        ]

        @callback
        def _unsub() -> None:
            for unsub in unsubs:
                unsub()

        return _unsub
