"""Binary sensors (and buttons): registry entries and states right after setup."""

from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import snapshot_platform
from syrupy.assertion import SnapshotAssertion

from tests.common import PREFIX, setup_entry, tick, unload_entry, v1_entry
from tests.servers import free_port


@pytest.mark.parametrize("platform", [Platform.BINARY_SENSOR, Platform.BUTTON])
@pytest.mark.usefixtures("socket_enabled")
async def test_entities(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    snapshot: SnapshotAssertion,
    entity_registry: er.EntityRegistry,
    platform: Platform,
) -> None:
    """Snapshot of every entity of the platform."""
    freezer.move_to("2030-01-01T12:00:00+00:00")
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    with patch("custom_components.ha_ingestor.PLATFORMS", [platform]):
        await setup_entry(hass, entry)
    await tick(hass, freezer)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)
    await unload_entry(hass, entry)


@pytest.mark.usefixtures("socket_enabled")
async def test_starting_is_not_a_problem(hass: HomeAssistant) -> None:
    """Health unknown (no attempt finished yet) keeps the problem sensor off."""
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "nowhere")
    await setup_entry(hass, entry)
    assert hass.states.get(f"binary_sensor.{PREFIX}_problem").state == "off"
    assert hass.states.get(f"binary_sensor.{PREFIX}_connected").state == "off"
    await unload_entry(hass, entry)
