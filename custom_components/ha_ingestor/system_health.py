"""System health of ha_ingestor: is each destination reachable, and how far behind."""

from typing import Any

from homeassistant.components import system_health
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, callback

from .const import DOMAIN
from .runtime import IngestorConfigEntry


@callback
def async_register(hass: HomeAssistant, register: system_health.SystemHealthRegistration) -> None:
    """Register the info callback."""
    register.async_register_info(system_health_info)


def _facts(entry: IngestorConfigEntry) -> dict[str, Any]:
    snapshot = entry.runtime_data.coordinator.data
    last = snapshot.last_success
    return {
        "reachable": snapshot.connected,
        "state": snapshot.connection_state,
        "backlog": snapshot.pending,
        "last_success": "never" if last is None else last.isoformat(),
    }


async def system_health_info(hass: HomeAssistant) -> dict[str, Any]:
    """Facts per loaded entry; prefixed with the entry title when there are several."""
    entries: list[IngestorConfigEntry] = [
        entry
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry.state is ConfigEntryState.LOADED
    ]
    info: dict[str, Any] = {"destinations": len(entries)}
    if len(entries) == 1:
        info.update(_facts(entries[0]))
        return info
    facts = [(entry.title, _facts(entry)) for entry in entries]
    for key in ("reachable", "state", "backlog", "last_success"):
        if facts:
            info[key] = ", ".join(f"{title}: {values[key]}" for title, values in facts)
    return info
