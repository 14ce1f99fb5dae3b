"""Buttons: retry now leaves the backoff, flush writes memory to the spool."""

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
import pytest

from tests.common import PREFIX, current, diagnostics, settle, setup_entry, unload_entry, v1_entry
from tests.servers import free_port


@pytest.mark.usefixtures("socket_enabled")
async def test_buttons(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Flush empties the memory batch; retry now leaves the backoff."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.kept", "1", {"unit_of_measurement": "W"})
    assert (await diagnostics(hass, entry))["buffered"] == 1
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: f"button.{PREFIX}_flush"}, blocking=True
    )
    assert (await diagnostics(hass, entry))["buffered"] == 0
    await settle(hass, freezer, lambda: current(entry).consecutive_failures >= 1)
    # A retry is scheduled (its time may already be due: the stage says so).
    assert current(entry).retry_stage == "rapid"
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: f"button.{PREFIX}_retry_now"}, blocking=True
    )
    assert current(entry).retry_stage is None
    assert current(entry).next_retry is None
    await unload_entry(hass, entry)
