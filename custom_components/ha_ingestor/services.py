"""Actions of ha_ingestor, registered once in ``async_setup``; each targets one entry."""

from collections.abc import Awaitable, Callable
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
import voluptuous as vol

from .const import DOMAIN
from .core.state import ConnectionState
from .runtime import IngestorConfigEntry, IngestorRuntime

SERVICE_FLUSH = "flush"
SERVICE_RETRY_NOW = "retry_now"
SERVICE_RESET_CIRCUIT_BREAKER = "reset_circuit_breaker"
SERVICE_REQUEUE_DEAD_LETTERS = "requeue_dead_letters"

# Home Assistant installs probatio under the voluptuous name (the 2026.3 minimum has
# voluptuous itself), so this is the right schema type at runtime either way; the
# static types of the two packages differ, hence Any.
ENTRY_SCHEMA: Final[Any] = vol.Schema({vol.Required(ATTR_CONFIG_ENTRY_ID): str})


def async_get_runtime(hass: HomeAssistant, entry_id: str) -> IngestorRuntime:
    """Return the runtime of a loaded entry; raise a translated error otherwise."""
    entry: IngestorConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"entry_title": entry.title},
        )
    return entry.runtime_data


async def _flush(runtime: IngestorRuntime) -> None:
    await runtime.async_flush()


async def _retry_now(runtime: IngestorRuntime) -> None:
    runtime.async_retry_now()


async def _reset_circuit_breaker(runtime: IngestorRuntime) -> None:
    resilience = runtime.pipeline.resilience
    was_open = resilience.state is ConnectionState.CIRCUIT_OPEN
    resilience.breaker.reset()
    if was_open:
        # The retry was scheduled for when the breaker would half-open; with the
        # breaker closed, leave that wait and try at once.
        runtime.async_retry_now()
    else:
        runtime.async_refresh()


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""

    def register(name: str, action: Callable[[IngestorRuntime], Awaitable[None]]) -> None:
        async def handle(call: ServiceCall) -> None:
            await action(async_get_runtime(hass, call.data[ATTR_CONFIG_ENTRY_ID]))

        hass.services.async_register(DOMAIN, name, handle, schema=ENTRY_SCHEMA)

    register(SERVICE_FLUSH, _flush)
    register(SERVICE_RETRY_NOW, _retry_now)
    register(SERVICE_RESET_CIRCUIT_BREAKER, _reset_circuit_breaker)

    async def requeue_dead_letters(call: ServiceCall) -> ServiceResponse:
        runtime = async_get_runtime(hass, call.data[ATTR_CONFIG_ENTRY_ID])
        moved = await runtime.async_requeue_dead_letters()
        return {"requeued": moved}

    hass.services.async_register(
        DOMAIN,
        SERVICE_REQUEUE_DEAD_LETTERS,
        requeue_dead_letters,
        schema=ENTRY_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
