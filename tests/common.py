"""Helpers shared by the entity, action, repair and diagnostics tests."""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
import time
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.ha_ingestor.const import (
    CONF_DATABASE,
    CONF_KIND,
    CONF_PASSWORD,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    DOMAIN,
    DestinationKind,
)
from custom_components.ha_ingestor.factory import spool_path

ENTRY_ID = "01JENTITIESTESTENTRY0000001"
TITLE = "InfluxDB v1 home_assistant@127.0.0.1"
#: Entity id prefix generated from TITLE.
PREFIX = "influxdb_v1_home_assistant_127_0_0_1"
USERNAME = "ingest-user"
PASSWORD = "s3cret-Pa55word-xyz"  # a test value that must never leak


def v1_entry(url: str, database: str, **options: Any) -> MockConfigEntry:
    """An entry shipping to InfluxDB 1.x with a fixed id and title (stable entity ids)."""
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id=ENTRY_ID,
        title=TITLE,
        unique_id=f"influxdb_v1:{url}|{database}",
        data={
            CONF_KIND: DestinationKind.INFLUXDB_V1,
            CONF_URL: url,
            CONF_DATABASE: database,
            CONF_USERNAME: USERNAME,
            CONF_PASSWORD: PASSWORD,
            CONF_VERIFY_SSL: True,
        },
        options=options,
    )


def remove_spool(path: Path) -> None:
    """Delete a spool and its WAL files (blocking: run in the executor)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Add and set up ``entry`` with an empty spool.

    The test config dir is shared between tests and the entry id is fixed, so
    a previous test's leftover spool would otherwise be delivered here.
    """
    await hass.async_add_executor_job(remove_spool, spool_path(hass, entry.entry_id))
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def unload_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Unload ``entry`` (closes its spool; no lingering tasks)."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float = 1.0) -> None:
    """Advance HA time and let timers, the executor and real sockets catch up."""
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    # Real sockets and executor threads need real time to answer. Not
    # asyncio.sleep: the loop's clock is frozen with the freezer, so its timer
    # would only fire after the next tick.
    await hass.async_add_executor_job(time.sleep, 0.01)
    await hass.async_block_till_done()


async def settle(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    condition: Callable[[], bool],
    *,
    step: float = 1.0,
    limit: int = 600,
) -> None:
    """Advance time step by step until ``condition`` holds, then push entity updates."""
    for _ in range(limit):
        if condition():
            # Entities update through a 1 s throttled signal.
            await tick(hass, freezer, 1.0)
            return
        await tick(hass, freezer, step)
    raise AssertionError("condition not reached")


async def wait_for(hass: HomeAssistant, condition: Callable[[], bool], *, limit: int = 500) -> None:
    """Let real I/O finish without moving the clock (deterministic timestamps)."""
    for _ in range(limit):
        await hass.async_block_till_done()
        if condition():
            return
        await hass.async_add_executor_job(time.sleep, 0.01)
    raise AssertionError("condition not reached")


async def drained(hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: Any) -> None:
    """Advance time until everything captured so far is delivered."""
    runtime = entry.runtime_data
    await settle(
        hass,
        freezer,
        # Delivered rows stay spooled until the next write: backlog leaves them out.
        lambda: runtime.pipeline.stats is not None and runtime.pipeline.backlog == 0,
    )
