"""Buttons: retry now leaves the backoff, flush writes memory to the spool."""

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
import pytest

from tests.common import PREFIX, settle, setup_entry, unload_entry, v1_entry
from tests.servers import free_port


@pytest.mark.usefixtures("socket_enabled")
async def test_buttons(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Pressing the buttons acts on the pipeline."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    runtime = entry.runtime_data
    hass.states.async_set("sensor.kept", "1", {"unit_of_measurement": "W"})
    assert runtime.pipeline.buffered == 1
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: f"button.{PREFIX}_flush"}, blocking=True
    )
    assert runtime.pipeline.buffered == 0
    await settle(hass, freezer, lambda: runtime.pipeline.resilience.consecutive_failures >= 1)
    assert runtime.pipeline.resilience.next_retry_in is not None
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: f"button.{PREFIX}_retry_now"}, blocking=True
    )
    assert runtime.pipeline.resilience.next_retry_in is None
    await unload_entry(hass, entry)
