"""Diagnostics of ha_ingestor: everything that explains delivery, nothing secret."""

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import (
    CONF_FALLBACK_URLS,
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
)
from .core.spool import DeadLetter
from .redact import scrub, strip_url_credentials
from .runtime import IngestorConfigEntry

TO_REDACT = {CONF_TOKEN, CONF_PASSWORD, CONF_USERNAME}
#: Dead letters shown, and how much of each payload (payloads are data, not secrets).
DEAD_LETTER_SAMPLE = 20
PAYLOAD_CHARS = 200


def _strip_urls(config: dict[str, Any]) -> dict[str, Any]:
    """Entry data/options with credentials removed from every URL."""
    out = dict(config)
    if isinstance(url := out.get(CONF_URL), str):
        out[CONF_URL] = strip_url_credentials(url)
    if isinstance(urls := out.get(CONF_FALLBACK_URLS), list):
        out[CONF_FALLBACK_URLS] = [
            strip_url_credentials(u) if isinstance(u, str) else u for u in urls
        ]
    return out


def _dead_letter(letter: DeadLetter) -> dict[str, Any]:
    return {
        "time_ns": letter.time_ns,
        "reason": letter.reason,
        "category": letter.category,
        "quarantined_at": letter.quarantined_at,
        "attempts": letter.attempts,
        "payload": letter.payload[:PAYLOAD_CHARS].decode("utf-8", "replace"),
    }


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: IngestorConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for an entry."""
    runtime = entry.runtime_data
    pipeline = runtime.pipeline
    entry_dict = entry.as_dict()
    entry_dict["data"] = _strip_urls(dict(entry.data))
    entry_dict["options"] = _strip_urls(dict(entry.options))
    letters: list[DeadLetter] = await hass.async_add_executor_job(
        pipeline.spool.dead_letters, DEAD_LETTER_SAMPLE
    )
    stats = pipeline.stats
    metrics = pipeline.resilience.metrics
    diagnostics = {
        "entry": async_redact_data(entry_dict, TO_REDACT),
        "health": None if runtime.health is None else runtime.health.as_dict(),
        "resilience": pipeline.resilience.as_dict(),
        "errors_by_category": {
            category.value: count for category, count in metrics.failures.items() if count
        },
        "last_error": pipeline.resilience.health_fields()["last_error"],
        "active_endpoint": pipeline.uploader.active_endpoint,
        "buffered": pipeline.buffered,
        "spool": None if stats is None else asdict(stats),
        "dead_letters": [_dead_letter(letter) for letter in letters],
        "repair_issues": sorted(runtime.issues),
        "backfill": None if runtime.backfill is None else runtime.backfill.as_dict(),
        "registry_sync": (
            None if runtime.registry_sync is None else runtime.registry_sync.as_dict()
        ),
    }
    # Error messages and reasons may quote a URL or a server's echo of a
    # credential: scrub every string, not just the known keys.
    secrets = [str(value) for key in (CONF_TOKEN, CONF_PASSWORD) if (value := entry.data.get(key))]
    result: dict[str, Any] = scrub(diagnostics, secrets)
    return result
