"""Actions of ha_ingestor, registered once in ``async_setup``; each targets one entry."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_CONFIG_ENTRY_ID, ATTR_ENTITY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.util import dt as dt_util
import voluptuous as vol

from .backfill import BackfillRangeError, BackfillRunningError, bounded_range
from .const import DOMAIN
from .runtime import IngestorConfigEntry, IngestorRuntime

SERVICE_FLUSH = "flush"
SERVICE_RETRY_NOW = "retry_now"
SERVICE_RESET_CIRCUIT_BREAKER = "reset_circuit_breaker"
SERVICE_REQUEUE_DEAD_LETTERS = "requeue_dead_letters"
SERVICE_PURGE_DEAD_LETTERS = "purge_dead_letters"
SERVICE_BACKFILL = "backfill"
SERVICE_CANCEL_BACKFILL = "cancel_backfill"
ATTR_START = "start"
ATTR_END = "end"

# Home Assistant installs probatio under the voluptuous name (the 2026.3 minimum has
# voluptuous itself), so this is the right schema type at runtime either way; the
# static types of the two packages differ, hence Any.
ENTRY_SCHEMA: Final[Any] = vol.Schema({vol.Required(ATTR_CONFIG_ENTRY_ID): str})

BACKFILL_SCHEMA: Final[Any] = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): str,
        vol.Required(ATTR_START): cv.datetime,
        vol.Optional(ATTR_END): cv.datetime,
        vol.Optional(ATTR_ENTITY_ID): cv.entity_ids,
    }
)


def _as_utc(value: datetime) -> datetime:
    """Naive times from the UI are local time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt_util.get_default_time_zone())
    return dt_util.as_utc(value)


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


# The actions on an entry's runtime; the buttons press the same ones.


async def flush(runtime: IngestorRuntime) -> None:
    """Flush now and try to deliver at once."""
    await runtime.async_flush()


async def retry_now(runtime: IngestorRuntime) -> None:
    """Retry delivery now (also after the retries gave up)."""
    runtime.async_retry_now()


async def _reset_circuit_breaker(runtime: IngestorRuntime) -> None:
    runtime.async_reset_circuit_breaker()


async def _requeue_dead_letters(runtime: IngestorRuntime) -> int:
    return await runtime.async_requeue_dead_letters()


async def _purge_dead_letters(runtime: IngestorRuntime) -> int:
    return await runtime.async_purge_dead_letters()


async def _cancel_backfill(runtime: IngestorRuntime) -> bool:
    return await runtime.backfill.async_cancel()


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""

    def register(name: str, action: Callable[[IngestorRuntime], Awaitable[None]]) -> None:
        async def handle(call: ServiceCall) -> None:
            await action(async_get_runtime(hass, call.data[ATTR_CONFIG_ENTRY_ID]))

        hass.services.async_register(DOMAIN, name, handle, schema=ENTRY_SCHEMA)

    def register_answering(
        name: str, key: str, action: Callable[[IngestorRuntime], Awaitable[int | bool]]
    ) -> None:
        """Register an action whose response is ``{key: what action returned}``."""

        async def handle(call: ServiceCall) -> ServiceResponse:
            return {key: await action(async_get_runtime(hass, call.data[ATTR_CONFIG_ENTRY_ID]))}

        hass.services.async_register(
            DOMAIN, name, handle, schema=ENTRY_SCHEMA, supports_response=SupportsResponse.OPTIONAL
        )

    register(SERVICE_FLUSH, flush)
    register(SERVICE_RETRY_NOW, retry_now)
    register(SERVICE_RESET_CIRCUIT_BREAKER, _reset_circuit_breaker)
    register_answering(SERVICE_REQUEUE_DEAD_LETTERS, "requeued", _requeue_dead_letters)
    register_answering(SERVICE_PURGE_DEAD_LETTERS, "purged", _purge_dead_letters)
    register_answering(SERVICE_CANCEL_BACKFILL, "cancelled", _cancel_backfill)

    async def backfill(call: ServiceCall) -> None:
        runtime = async_get_runtime(hass, call.data[ATTR_CONFIG_ENTRY_ID])
        try:
            start, end = bounded_range(
                hass,
                _as_utc(call.data[ATTR_START]),
                _as_utc(call.data[ATTR_END]) if ATTR_END in call.data else None,
            )
        except BackfillRangeError as err:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key=err.key,
                translation_placeholders=err.placeholders,
            ) from err
        try:
            runtime.backfill.async_start(start, end, call.data.get(ATTR_ENTITY_ID))
        except BackfillRunningError as err:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="backfill_running"
            ) from err

    hass.services.async_register(DOMAIN, SERVICE_BACKFILL, backfill, schema=BACKFILL_SCHEMA)
