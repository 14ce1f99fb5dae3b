"""Shared fixtures for ha_ingestor tests."""

from pathlib import Path

from homeassistant.const import MAJOR_VERSION, MINOR_VERSION
import pytest
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.location import PyTestLocation

pytest_plugins = ["tests.servers", "tests.data_api", "tests.builtin"]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load integrations from custom_components/."""


#: The release the main snapshots are recorded on (requirements_test.txt).
SNAPSHOT_RELEASE = (2026, 10)


class VersionedSnapshotExtension(HomeAssistantSnapshotExtension):
    """HA snapshots, kept per release: registry snapshot formats change between releases."""

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        """Use tests/snapshots on the newest release, tests/snapshots_haYYYY.M elsewhere."""
        base = Path(test_location.filepath).parent
        if (MAJOR_VERSION, MINOR_VERSION) == SNAPSHOT_RELEASE:
            return str(base / "snapshots")
        return str(base / f"snapshots_ha{MAJOR_VERSION}.{MINOR_VERSION}")


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots in Home Assistant's format (stable ids), one directory per HA release."""
    return snapshot.use_extension(VersionedSnapshotExtension)
