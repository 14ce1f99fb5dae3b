"""Diagnostics: everything that explains delivery, never a secret."""

import json
import re

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.json import json_dumps
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from custom_components.ha_ingestor.const import CONF_FALLBACK_URLS
from custom_components.ha_ingestor.diagnostics import (
    async_get_config_entry_diagnostics,
    describe_point,
    safe_reason,
)
from custom_components.ha_ingestor.redact import scrub_text, strip_url_credentials
from tests.common import (
    PASSWORD,
    USERNAME,
    conflicting_field,
    current,
    deliver_one,
    drained,
    settle,
    setup_entry,
    unload_entry,
    v1_entry,
)
from tests.servers import InfluxV1Server, free_port

#: Values that differ between runs: registry times, the test database's name,
#: latencies measured on the real server.
# Values that depend on the machine's speed: how many time-travel steps real writes took.
VOLATILE = (
    "created_at",
    "modified_at",
    "unique_id",
    "database",
    "latency",
    "histogram",
    "time_in_state",
    "taken_at",
    "since_last_success",
    "monotonic",
)


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
    hass.states.async_set("sensor.kept", "1", {"unit_of_measurement": "W"})
    await settle(hass, freezer, lambda: current(entry).consecutive_failures >= 1)

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diagnostics)
    assert PASSWORD not in text
    assert USERNAME not in text
    assert PASSWORD not in caplog.text
    assert diagnostics["entry"]["data"]["password"] == "**REDACTED**"
    assert diagnostics["entry"]["options"][CONF_FALLBACK_URLS][0].startswith("http://127.0.0.1:")
    assert diagnostics["snapshot"]["health"] == "waiting"
    assert diagnostics["errors_by_category"] == {
        "network": diagnostics["resilience"]["metrics"]["counters"]["failures"]
    }
    assert diagnostics["spool"]["pending_count"] == 1
    assert diagnostics["dead_letters"] == []
    assert {"connection", "breaker", "metrics", "policy"} <= set(diagnostics["resilience"])
    await unload_entry(hass, entry)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'W,domain=camera,entity_id=front value=1,access_token_str="x" 1', ("W", "front")),
        (b"a\\ b\\,c,entity_id=x\\ y value=1 1", ("a b,c", "x y")),
        (b"m value=1 1", ("m", None)),
        (
            b'{"event_type":"state_changed","entity_id":"lock.door","code":"1"}',
            (
                "state_changed",
                "lock.door",
            ),
        ),
        (b"{" * 100_000, (None, None)),
        (b"", (None, None)),
    ],
)
def test_describe_point(payload: bytes, expected: tuple[str | None, str | None]) -> None:
    """Only the measurement (or event type) and the entity are taken from a point."""
    assert describe_point(payload) == expected


def test_reason_quoting_the_line_is_elided() -> None:
    """A server quoting the rejected line (with attribute values) shows no value of it."""
    reason = (
        "unable to parse 'W,entity_id=cam access_token_str=\"tok-SECRET\" 1': invalid number"
        ' (http://127.0.0.1:8086/write); field "value" on measurement "W"'
    )
    safe = safe_reason(reason)
    assert "tok-SECRET" not in safe
    assert safe.startswith("unable to parse '…': invalid number")
    assert 'field "value" on measurement "W"' in safe


async def test_dead_letters_show_no_payload(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
) -> None:
    """A point quarantined by real InfluxDB (field type conflict) from a camera with an
    ``access_token`` and an alarm ``code`` attribute: diagnostics list its measurement,
    entity, size and reason, and neither secret.

    Figure: 1 dead letter shown; 0 occurrences of either attribute value.
    """
    await conflicting_field(influxdb_v1, influx_db, domain="camera")
    entry = v1_entry(influxdb_v1.url, influx_db)
    await setup_entry(hass, entry)
    await deliver_one(hass, freezer, entry)
    token, code = "cam-tok-8f2b9c1d7e", "alarm-code-90210"
    hass.states.async_set(
        "camera.front",
        "5",
        {"unit_of_measurement": "W", "access_token": token, "code": code},
    )
    await settle(
        hass,
        freezer,
        lambda: (spool := current(entry).spool) is not None and spool.dead_letter_count == 1,
    )
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diagnostics)
    assert token not in text
    assert code not in text
    (letter,) = diagnostics["dead_letters"]
    assert set(letter) == {
        "time_ns",
        "measurement",
        "entity",
        "bytes",
        "reason",
        "category",
        "quarantined_at",
        "attempts",
    }
    assert (letter["measurement"], letter["entity"], letter["category"]) == (
        "W",
        "front",
        "bad_data",
    )
    assert letter["bytes"] > len(token) + len(code)
    assert "field type conflict" in letter["reason"]
    await unload_entry(hass, entry)


async def test_diagnostics_snapshot(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    snapshot: SnapshotAssertion,
    mock_config_entry: MockConfigEntry,
) -> None:
    """The whole dump of a delivering entry, one event sent (ports, ids and timings masked)."""
    freezer.move_to("2030-01-01T12:00:00+00:00")
    entry = mock_config_entry
    await setup_entry(hass, entry)
    hass.states.async_set("sensor.kept", "1", {"unit_of_measurement": "W"})
    await drained(hass, freezer, entry)
    # The HTTP view's access token would expire in 2030: call the platform, encode as it does.
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", json_dumps(diagnostics))
    assert json.loads(text) == snapshot(exclude=props(*VOLATILE))
    await unload_entry(hass, entry)
