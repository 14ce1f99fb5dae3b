"""The bus listeners that capture events: a filter lookup and an append, nothing else.

They run inside Home Assistant's event dispatch for every state change, so they
never touch disk or network: the pipeline's memory batch is flushed by a timer.
"""

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback

from .filters import EntityMatcher
from .records import context_fields
from .registry_tags import RegistryTags


class EventCapture:
    """Feeds matching state changes (and chosen event types) to ``capture``."""

    def __init__(
        self,
        hass: HomeAssistant,
        matcher: EntityMatcher,
        capture: Callable[[Any], None],
        *,
        event_types: list[str],
        context_entities: frozenset[str],
        registry_tags: RegistryTags | None = None,
    ) -> None:
        """Capture what ``matcher`` selects, enriched from ``context_entities``.

        ``registry_tags`` is followed from the start: its tag updates travel in
        the same stream as the state changes.
        """
        self._hass = hass
        self._matcher = matcher
        self._wanted = matcher.decisions
        self._capture = capture
        self._event_types = event_types
        self._context_entities = context_entities
        self._registry_tags = registry_tags
        self._context: dict[str, Any] = {}
        #: The state-change listener (see :meth:`_build_state_listener`).
        self.state_listener = self._build_state_listener()

    @callback
    def async_listen(self) -> list[CALLBACK_TYPE]:
        """Start capturing; return the unsubscribe callbacks."""
        self._refresh_context()
        hass = self._hass
        unsubs = [hass.bus.async_listen(EVENT_STATE_CHANGED, self.state_listener)]
        unsubs.extend(hass.bus.async_listen(kind, self._on_event) for kind in self._event_types)
        unsubs.append(self._matcher.async_track_registries())
        if self._registry_tags is not None:
            unsubs.append(self._registry_tags.async_track(self._capture))
        return unsubs

    def context_fields(self) -> Mapping[str, Any]:
        """Return the enrichment fields of the context entities, as of their last change."""
        return self._context

    def _build_state_listener(self) -> Callable[[Event[EventStateChangedData]], None]:
        """Return the state-change listener: a closure unless context entities are set.

        It runs for every state change in HA. Without context entities it needs
        neither their check nor any attribute of this instance: two closure cells.
        """
        if self._context_entities:
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
        """Bus listener with context entities: refresh the context when one changes."""
        data = event.data
        entity_id = data["entity_id"]
        if entity_id in self._context_entities:
            self._refresh_context()
        if self._wanted[entity_id]:
            # The context dict is replaced, never mutated, so sharing it is safe.
            self._capture(
                (data["new_state"], self._context) if self._context else data["new_state"]
            )

    @callback
    def _refresh_context(self) -> None:
        """Rebuild the enrichment fields from the context entities' current states."""
        states = [s for e in self._context_entities if (s := self._hass.states.get(e))]
        self._context = context_fields(states)

    @callback
    def _on_event(self, event: Event[Any]) -> None:
        self._capture(event)
