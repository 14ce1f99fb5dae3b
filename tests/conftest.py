"""Shared fixtures for ha_ingestor tests."""

import pytest

pytest_plugins = ["tests.servers", "tests.data_api"]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load integrations from custom_components/."""
