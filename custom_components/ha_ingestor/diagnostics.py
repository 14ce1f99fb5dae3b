"""Diagnostics of ha_ingestor: everything that explains delivery, nothing secret."""

from dataclasses import asdict
import json
import re
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import CONF_FALLBACK_URLS, CONF_URL, KINDS
from .core.spool import DeadLetter
from .redact import entry_secrets, scrub, strip_url_credentials
from .runtime import IngestorConfigEntry

#: Every kind's secrets and credentials (user names included).
TO_REDACT = frozenset(key for info in KINDS.values() for key in (*info.secrets, *info.credentials))
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
    entry_dict = entry.as_dict()
    entry_dict["data"] = _strip_urls(dict(entry.data))
    entry_dict["options"] = _strip_urls(dict(entry.options))
    dump = await entry.runtime_data.async_dump()
    snapshot, stats = dump.pop("snapshot"), dump.pop("spool")
    # Dead letters: never their payload (attributes may hold secrets: a camera's
    # ``access_token``, an alarm ``code``); only size, measurement and entity.
    letters: list[DeadLetter] = dump.pop("dead_letters")
    diagnostics = {
        "entry": async_redact_data(entry_dict, TO_REDACT),
        "snapshot": None if snapshot is None else asdict(snapshot),
        **dump,
        "spool": None if stats is None else asdict(stats),
        "dead_letters": [_dead_letter(letter) for letter in letters],
    }
    # Error messages and reasons may quote a URL or a server's echo of a
    # credential: scrub every string, not just the known keys.
    result: dict[str, Any] = scrub(diagnostics, entry_secrets(entry.data))
    return result
