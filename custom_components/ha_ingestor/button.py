"""Buttons of ha_ingestor: retry now and flush."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import override

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import IngestorEntity
from .runtime import IngestorConfigEntry, IngestorRuntime
from .services import flush, retry_now

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class IngestorButtonEntityDescription(ButtonEntityDescription):
    """Describes one ha_ingestor button."""

    press_fn: Callable[[IngestorRuntime], Awaitable[None]]


BUTTONS: tuple[IngestorButtonEntityDescription, ...] = (
    IngestorButtonEntityDescription(
        key="retry_now",
        translation_key="retry_now",
        press_fn=retry_now,
    ),
    IngestorButtonEntityDescription(
        key="flush",
        translation_key="flush",
        press_fn=flush,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: IngestorConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the buttons of an entry."""
    async_add_entities(IngestorButtonEntity(entry, description) for description in BUTTONS)


class IngestorButtonEntity(IngestorEntity, ButtonEntity):
    """A button acting on the pipeline."""

    entity_description: IngestorButtonEntityDescription

    def __init__(
        self, entry: IngestorConfigEntry, description: IngestorButtonEntityDescription
    ) -> None:
        """Act on ``entry``'s runtime."""
        super().__init__(entry, description)
        self._entry = entry

    @override
    async def async_press(self) -> None:
        """Run the action."""
        await self.entity_description.press_fn(self._entry.runtime_data)
