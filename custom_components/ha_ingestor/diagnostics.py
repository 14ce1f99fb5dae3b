"""Diagnostics of ha_ingestor: everything that explains delivery, nothing secret."""

from dataclasses import asdict
import json
import re
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
#: Dead letters shown. Never their payload: attributes may hold secrets (a camera's
#: ``access_token``, an alarm ``code``); only its size, measurement and entity.
DEAD_LETTER_SAMPLE = 20
#: Quoted parts of a rejection reason at least this long (or holding "=") are elided.
_QUOTED = re.compile(r"""(["'])(.*?)(\1|…|$)""")
_QUOTE_KEEP = 12
#: Line protocol: the measurement ends at the first unescaped comma or space.
_LP_HEAD = re.compile(rb"^((?:[^,\\ ]|\\.)*)((?:,(?:[^\\ ]|\\.)*)?)")


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


def _unescape(raw: bytes) -> str:
    return re.sub(rb"\\(.)", rb"\1", raw).decode("utf-8", "replace")


def describe_point(payload: bytes) -> tuple[str | None, str | None]:
    """Return the measurement (or event type) and entity of a point, nothing else of it."""
    if payload.startswith(b"{"):  # a data-api event (JSON)
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            return None, None
        if not isinstance(data, dict):
            return None, None
        kind, entity = data.get("event_type"), data.get("entity_id")
        return (
            kind if isinstance(kind, str) else None,
            entity if isinstance(entity, str) else None,
        )
    match = _LP_HEAD.match(payload)
    if match is None or not match.group(1):
        return None, None
    entity = None
    for tag in re.split(rb"(?<!\\),", match.group(2))[1:]:
        key, _, value = tag.partition(b"=")
        if key == b"entity_id":
            entity = _unescape(value)
    return _unescape(match.group(1)), entity


def safe_reason(reason: str) -> str:
    """Return the rejection reason with quoted text that may echo the point elided.

    Servers quote the line they could not parse (with its attribute values); short
    quoted names such as a field or measurement name stay.
    """

    def elide(match: re.Match[str]) -> str:
        inner = match.group(2)
        if len(inner) < _QUOTE_KEEP and "=" not in inner:
            return match.group(0)
        return f"{match.group(1)}…{match.group(1)}"

    return _QUOTED.sub(elide, reason)


def _dead_letter(letter: DeadLetter) -> dict[str, Any]:
    measurement, entity = describe_point(letter.payload)
    return {
        "time_ns": letter.time_ns,
        "measurement": measurement,
        "entity": entity,
        "bytes": len(letter.payload),
        "reason": safe_reason(letter.reason),
        "category": letter.category,
        "quarantined_at": letter.quarantined_at,
        "attempts": letter.attempts,
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
        "registry_tags": (
            None if runtime.registry_tags is None else runtime.registry_tags.as_dict()
        ),
        "shaping": None if runtime.shaper is None else runtime.shaper.as_dict(),
        "heartbeat": None if runtime.heartbeat is None else runtime.heartbeat.as_dict(),
    }
    # Error messages and reasons may quote a URL or a server's echo of a
    # credential: scrub every string, not just the known keys.
    secrets = [str(value) for key in (CONF_TOKEN, CONF_PASSWORD) if (value := entry.data.get(key))]
    result: dict[str, Any] = scrub(diagnostics, secrets)
    return result
