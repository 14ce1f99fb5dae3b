"""The options-flow tests' entry: set up without a pipeline (a pytest plugin, see conftest)."""

from collections.abc import AsyncIterator
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor.const import CONF_BATCH_SIZE
from tests.test_config_flow import v1_entry


@pytest.fixture
async def entry(hass: HomeAssistant) -> AsyncIterator[MockConfigEntry]:
    """A v1 entry whose setup is kept out (flow tests only)."""
    with (
        patch("custom_components.ha_ingestor.async_setup_entry", return_value=True),
        patch("custom_components.ha_ingestor.async_unload_entry", return_value=True),
    ):
        entry = v1_entry()
        entry.add_to_hass(hass)
        hass.config_entries.async_update_entry(entry, options={CONF_BATCH_SIZE: 100})
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        yield entry
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
