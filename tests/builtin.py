"""Home Assistant's built-in ``influxdb`` integration, set up for real in the test HA.

The built-in keeps its connection in its config entry and reads its shipping options
from configuration.yaml at setup: :func:`config_dir` gives each test its own YAML file,
:func:`v1_builtin` the entry. Its writer is a thread that batches for one real second,
so results are awaited with :func:`poll` or :func:`builtin_flushed`, never assumed.
"""

from collections.abc import AsyncIterator
from pathlib import Path
import time
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from yarl import URL

from custom_components.ha_ingestor.import_builtin import BUILTIN_DOMAIN


@pytest.fixture
def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A config dir of this test's own, holding a configuration.yaml without influxdb."""
    hass.config.config_dir = str(tmp_path)
    (tmp_path / "configuration.yaml").write_text("homeassistant:\n  name: Test\n", encoding="utf-8")
    return tmp_path


@pytest.fixture
async def unload_all(hass: HomeAssistant) -> AsyncIterator[None]:
    """Unload every loaded entry at the end (joins the built-in's writer thread)."""
    yield
    for entry in hass.config_entries.async_entries():
        if entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def v1_builtin(url: str, database: str, **data: Any) -> MockConfigEntry:
    """A built-in entry as its v1 config flow stores it."""
    parsed = URL(url)
    return MockConfigEntry(
        domain=BUILTIN_DOMAIN,
        title=f"{database} ({parsed.host})",
        data={
            "api_version": "1",
            "host": parsed.host,
            "port": parsed.port,
            "username": None,
            "password": None,
            "database": database,
            "ssl": False,
            "path": "/",
            "verify_ssl": False,
        }
        | data,
    )


def points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without their empty columns (a multi-measurement query lists every column)."""
    return [{key: value for key, value in row.items() if value is not None} for row in rows]


async def builtin_flushed(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Return once the built-in has written every state change queued so far.

    Its thread takes a marker while it is still gathering a batch, and keeps
    gathering until nothing came for a second (``BATCH_TIMEOUT``), then writes.
    So: a first marker (everything before it is in the batch), a real pause
    longer than that second (the batch closes), and a second marker, which it
    only takes once the write has returned. About two seconds of real time;
    nothing else may change states meanwhile.
    """
    thread = entry.runtime_data
    await hass.async_add_executor_job(thread.block_till_done)
    await hass.async_add_executor_job(time.sleep, thread.batch_timeout() + 0.2)
    await hass.async_add_executor_job(thread.block_till_done)
