"""Shared fixtures for ha_ingestor tests."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
import shutil
from unittest.mock import PropertyMock, patch

from homeassistant.const import MAJOR_VERSION, MINOR_VERSION
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, get_test_config_dir
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.location import PyTestLocation

from custom_components.ha_ingestor.const import DOMAIN
from tests.common import IN_FLIGHT, setup_entry, unload_entry, v1_entry
from tests.servers import InfluxV1Server

pytest_plugins = ["tests.servers", "tests.data_api", "tests.builtin", "tests.options_flow"]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load integrations from custom_components/."""


@pytest.fixture(autouse=True)
def in_flight() -> Iterator[None]:
    """Count the integration's requests, probes and recorder reads (``tick`` waits for them)."""
    with IN_FLIGHT.watching():
        yield


@pytest.fixture
def mock_config_entry(influxdb_v1: InfluxV1Server, influx_db: str) -> MockConfigEntry:
    """An entry shipping to a real InfluxDB 1.x with a fresh database (fixed id and title)."""
    return v1_entry(influxdb_v1.url, influx_db)


@pytest.fixture
async def init_integration(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> AsyncIterator[MockConfigEntry]:
    """The mock entry, set up (and unloaded at the end: the spool is closed)."""
    await setup_entry(hass, mock_config_entry)
    yield mock_config_entry
    if mock_config_entry.state.recoverable:
        await unload_entry(hass, mock_config_entry)


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Register every entity enabled, the ones disabled by default too (as core's tests)."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        yield


@pytest.fixture
def hass_config_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A config dir of the test's own: spools live there, so tests never share a file.

    A copy of the plugin's testing config without any spool a run left there
    (not in the test's ``tmp_path``, which tests use for files of their own).
    """
    path = tmp_path_factory.mktemp("config")
    shutil.copytree(
        get_test_config_dir(),
        path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(DOMAIN),
    )
    return str(path)


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
def snapshot(request: pytest.FixtureRequest) -> SnapshotAssertion:
    """Snapshots in Home Assistant's format (stable ids), one directory per HA release.

    Built directly, not from the plugins' ``snapshot`` fixtures: an assertion made
    with their extension would claim tests/snapshots on every release, and the
    minimum release's run would report the newest release's snapshots as unused.
    """
    return SnapshotAssertion(
        update_snapshots=request.config.option.update_snapshots,
        extension_class=VersionedSnapshotExtension,
        test_location=PyTestLocation(request.node),
        session=request.session.config._syrupy,  # type: ignore[attr-defined]
    )
