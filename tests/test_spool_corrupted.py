"""A damaged spool file in Home Assistant: salvaged, counted, reported, cleaned up."""

from datetime import timedelta
from pathlib import Path

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.ha_ingestor.const import DOMAIN
from custom_components.ha_ingestor.core.spool import spool_files
from custom_components.ha_ingestor.factory import spool_path
from tests.common import (
    ENTRY_ID,
    current,
    diagnostics,
    issue_raised,
    remove_spool,
    tick,
    v1_entry,
)
from tests.core.test_spool_salvage import filled, leaf_pages, points_on, smash
from tests.servers import free_port


def damaged_spool(path: Path) -> int:
    """A spool of 2 000 points with two pages of segments overwritten; returns the points lost."""
    remove_spool(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    filled(path, 2000)
    pages = leaf_pages(path, "segments")
    damaged = pages[3:5]
    lost = sum(len(points_on(path, page)) for page in damaged)
    smash(path, damaged)
    # A copy renamed aside earlier (a newer version's file): removal deletes it too.
    path.with_name(path.name + ".newer-1").write_bytes(b"kept")
    return lost


@pytest.mark.usefixtures("socket_enabled")
async def test_damaged_spool_is_salvaged_reported_and_removed(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, issue_registry: ir.IssueRegistry
) -> None:
    """The entry starts on a spool file with two damaged pages.

    Figures: rows kept = 2 000 - rows on the damaged pages, rows lost = exactly
    those, and the same number reaches the events dropped counter; a
    ``spool_corrupted`` repair says both numbers and clears after 24 h;
    removing the entry deletes every spool file.
    """
    path = spool_path(hass, ENTRY_ID)
    lost = await hass.async_add_executor_job(damaged_spool, path)
    assert 0 < lost < 2000  # the figures below would hold for an undamaged file otherwise
    entry = v1_entry(f"http://127.0.0.1:{free_port()}", "db")  # nothing listens
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    issue_id = f"spool_corrupted_{ENTRY_ID}"
    issue = await issue_raised(hass, freezer, issue_id)
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders["saved"] == str(2000 - lost)
    assert issue.translation_placeholders["lost"] == str(lost)
    spool = (await diagnostics(hass, entry))["spool"]
    assert (spool["pending_count"], spool["salvage_lost"]) == (2000 - lost, lost)
    assert current(entry).events_dropped == lost
    freezer.tick(timedelta(hours=24))
    await tick(hass, freezer)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    assert (await hass.config_entries.async_remove(entry.entry_id))["require_restart"] is False
    await hass.async_block_till_done()
    assert not [p for p in await hass.async_add_executor_job(spool_files, path) if p.exists()]
