"""System health: reachability, state, backlog and last success per entry."""

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import get_system_health_info

from custom_components.ha_ingestor.const import DOMAIN
from tests.common import setup_entry, unload_entry, v1_entry
from tests.servers import free_port


@pytest.mark.usefixtures("socket_enabled")
async def test_system_health(hass: HomeAssistant) -> None:
    """One entry: its facts, unprefixed."""
    assert await async_setup_component(hass, "system_health", {})
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    info = await get_system_health_info(hass, DOMAIN)
    assert info == {
        "destinations": 1,
        "reachable": False,
        "state": "disconnected",
        "backlog": 0,
        "last_success": "never",
    }
    await unload_entry(hass, entry)
    assert await get_system_health_info(hass, DOMAIN) == {"destinations": 0}
