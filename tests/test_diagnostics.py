"""Diagnostics: everything that explains delivery, never a secret."""

import json

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.ha_ingestor.const import CONF_FALLBACK_URLS
from custom_components.ha_ingestor.redact import scrub_text, strip_url_credentials
from tests.common import PASSWORD, USERNAME, settle, setup_entry, unload_entry, v1_entry
from tests.servers import free_port


def test_strip_url_credentials() -> None:
    """Userinfo is removed from URLs and from free text."""
    assert strip_url_credentials("https://u:p@host:8086/x?q=1") == "https://host:8086/x?q=1"
    assert strip_url_credentials("http://host") == "http://host"
    assert scrub_text("failed (http://a:b@h/write)", ["secret-value"]) == "failed (http://h/write)"
    assert scrub_text("token secret-value leaked", ["secret-value"]) == "token **REDACTED** leaked"


@pytest.mark.usefixtures("socket_enabled")
async def test_diagnostics_have_no_secrets(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Diagnostics of a failing entry explain the outage and contain no credential."""
    port = free_port()
    entry = v1_entry(
        f"http://127.0.0.1:{port}",
        "nowhere",
        **{CONF_FALLBACK_URLS: [f"http://{USERNAME}:{PASSWORD}@127.0.0.1:{free_port()}"]},
    )
    await setup_entry(hass, entry)
    runtime = entry.runtime_data
    hass.states.async_set("sensor.kept", "1", {"unit_of_measurement": "W"})
    await settle(hass, freezer, lambda: runtime.pipeline.resilience.consecutive_failures >= 1)

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diagnostics)
    assert PASSWORD not in text
    assert USERNAME not in text
    assert PASSWORD not in caplog.text
    assert diagnostics["entry"]["data"]["password"] == "**REDACTED**"
    assert diagnostics["entry"]["options"][CONF_FALLBACK_URLS][0].startswith("http://127.0.0.1:")
    assert diagnostics["health"]["status"] == "waiting"
    assert diagnostics["errors_by_category"] == {
        "network": diagnostics["resilience"]["metrics"]["counters"]["failures"]
    }
    assert diagnostics["spool"]["pending_count"] == 1
    assert diagnostics["dead_letters"] == []
    assert {"connection", "breaker", "metrics", "policy"} <= set(diagnostics["resilience"])
    await unload_entry(hass, entry)
