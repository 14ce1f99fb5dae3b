"""Config, reauth, reconfigure and options flows of ha_ingestor."""

from collections.abc import AsyncIterator, Iterator
import json
from pathlib import Path
import shutil
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock, patch

import certifi
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState, ConfigFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ha_ingestor import destination
from custom_components.ha_ingestor.const import (
    CONF_AUTO_BACKFILL,
    CONF_BACKLOG_TOLERANCE,
    CONF_BATCH_BYTES,
    CONF_BATCH_SIZE,
    CONF_BUCKET,
    CONF_COMPRESS,
    CONF_CONTEXT_ENTITIES,
    CONF_DATABASE,
    CONF_DEFAULT_MEASUREMENT,
    CONF_EVENT_TYPES,
    CONF_EXCLUDE_AREAS,
    CONF_EXCLUDE_DOMAINS,
    CONF_EXCLUDE_ENTITIES,
    CONF_EXCLUDE_GLOBS,
    CONF_FALLBACK_URLS,
    CONF_FLUSH_INTERVAL,
    CONF_IDLE_TOLERANCE,
    CONF_IGNORE_ATTRIBUTES,
    CONF_INCLUDE_AREAS,
    CONF_INCLUDE_DOMAINS,
    CONF_INCLUDE_ENTITIES,
    CONF_INCLUDE_GLOBS,
    CONF_INCLUDE_UNAVAILABLE,
    CONF_KIND,
    CONF_MEASUREMENT_STRATEGY,
    CONF_MEMORY_MAX_MB,
    CONF_ORG,
    CONF_OUTAGE_REPAIR_AFTER,
    CONF_OVERFLOW_POLICY,
    CONF_OVERRIDE_MEASUREMENT,
    CONF_PASSWORD,
    CONF_PRESET,
    CONF_REGISTRY_SYNC,
    CONF_RETENTION_POLICY,
    CONF_RETRY_OVERRIDES,
    CONF_SPOOL_MAX_AGE_DAYS,
    CONF_SPOOL_MAX_MB,
    CONF_SSL_CA_CERT,
    CONF_STATIC_TAGS,
    CONF_TAGS_ATTRIBUTES,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    DOMAIN,
    DestinationKind,
)
from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.pipeline import TYPICAL_DISK_BYTES_PER_EVENT
from custom_components.ha_ingestor.core.sinks import Missing, NotFoundError
from tests.proxy import FaultProxy, Mode
from tests.servers import InfluxV1Server, VictoriaMetricsServer, free_port

TRANSLATIONS = json.loads(
    (Path(__file__).parent.parent / "custom_components/ha_ingestor/translations/en.json").read_text(
        encoding="utf-8"
    )
)

TOKEN = "t0ken-v4lue-secret"
V2_INPUT = {
    CONF_URL: "http://127.0.0.1:8086",
    CONF_ORG: "home",
    CONF_BUCKET: "ha",
    CONF_TOKEN: TOKEN,
    CONF_VERIFY_SSL: True,
}
V1_INPUT = {
    CONF_URL: "http://127.0.0.1:8086",
    CONF_DATABASE: "home_assistant",
    CONF_USERNAME: "writer",
    CONF_PASSWORD: "pa55word",
    CONF_VERIFY_SSL: True,
}
API_INPUT = {CONF_URL: "https://data.example.org/api/", CONF_TOKEN: TOKEN, CONF_VERIFY_SSL: True}


@pytest.fixture
def mock_check() -> Iterator[AsyncMock]:
    """Replace the live destination check (the flow calls it through the module)."""
    with patch.object(destination, "async_check_destination", autospec=True) as mock:
        yield mock


@pytest.fixture(autouse=True)
async def mock_setup_entry(hass: HomeAssistant) -> AsyncIterator[AsyncMock]:
    """Keep entry setup (the pipeline) out of flow tests."""
    with (
        patch("custom_components.ha_ingestor.async_setup_entry", return_value=True) as setup,
        patch("custom_components.ha_ingestor.async_unload_entry", return_value=True),
    ):
        yield setup
        # Unload while the patches hold: the real unload expects a runtime.
        for entry in hass.config_entries.async_entries(DOMAIN):
            if entry.state is ConfigEntryState.LOADED:
                await hass.config_entries.async_unload(entry.entry_id)


def flow_entry(data: dict[str, Any]) -> MockConfigEntry:
    """An entry with ``data`` as the user flow creates it (its title and unique id)."""
    entry_data = {CONF_VERIFY_SSL: True, CONF_FALLBACK_URLS: [], **data}
    return MockConfigEntry(
        domain=DOMAIN,
        title=destination.title_from_data(entry_data),
        unique_id=destination.unique_id_from_data(entry_data),
        data=entry_data,
    )


def v2_entry(**data: Any) -> MockConfigEntry:
    """An InfluxDB v2 entry as the user flow creates it."""
    return flow_entry({CONF_KIND: DestinationKind.INFLUXDB_V2.value, **V2_INPUT} | data)


def v1_entry(**data: Any) -> MockConfigEntry:
    """An InfluxDB v1 entry as the user flow creates it."""
    return flow_entry({CONF_KIND: DestinationKind.INFLUXDB_V1.value, **V1_INPUT} | data)


def api_entry(**data: Any) -> MockConfigEntry:
    """A data-api entry as the user flow creates it."""
    return flow_entry(
        {
            CONF_KIND: DestinationKind.DATA_API.value,
            CONF_URL: "https://data.example.org/api",
            CONF_TOKEN: TOKEN,
        }
        | data
    )


def assert_translated(result: ConfigFlowResult, section: str = "config") -> None:
    """Every error and abort reason the flow shows has an English string."""
    strings = TRANSLATIONS[section]
    for error in (result.get("errors") or {}).values():
        assert error in strings["error"], error
    if result["type"] is FlowResultType.ABORT:
        assert result["reason"] in strings["abort"], result["reason"]
    if step_id := result.get("step_id"):
        assert step_id in strings["step"], step_id


async def refused_then_saved(
    hass: HomeAssistant,
    result: ConfigFlowResult,
    bad: dict[str, Any],
    good: dict[str, Any],
    errors: dict[str, str],
) -> ConfigFlowResult:
    """Submit ``bad`` to the options form: shown again with ``errors`` (translated);
    then ``good``: saved. Returns the refusal (its placeholders, for instance).
    """
    refused = await hass.config_entries.options.async_configure(result["flow_id"], bad)
    assert refused["type"] is FlowResultType.FORM
    assert refused["errors"] == errors
    assert_translated(refused, "options")
    saved = await hass.config_entries.options.async_configure(result["flow_id"], good)
    assert saved["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    return refused


def schema_keys(result: ConfigFlowResult) -> set[str]:
    """The field names of a form."""
    schema = result["data_schema"]
    assert schema is not None
    return {str(key) for key in schema.schema}


def suggested_values(result: ConfigFlowResult) -> dict[str, Any]:
    """The suggested values of a form's fields."""
    schema = result["data_schema"]
    assert schema is not None
    return {
        str(key): key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }


async def start(hass: HomeAssistant, kind: DestinationKind) -> ConfigFlowResult:
    """Open the user flow and choose ``kind`` from the menu."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert result["menu_options"] == ["influxdb_v2", "influxdb_v1", "data_api"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": kind}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == kind
    assert result["errors"] == {}
    return result


# --- user flow ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "user_input", "title", "unique_id", "data"),
    [
        (
            DestinationKind.INFLUXDB_V2,
            V2_INPUT
            | {CONF_FALLBACK_URLS: ["http://127.0.0.2:8086/", " ", "http://127.0.0.1:8086"]},
            "InfluxDB v2 ha@127.0.0.1",
            "influxdb_v2:http://127.0.0.1:8086|home/ha",
            {
                CONF_KIND: "influxdb_v2",
                CONF_URL: "http://127.0.0.1:8086",
                CONF_ORG: "home",
                CONF_BUCKET: "ha",
                CONF_TOKEN: TOKEN,
                CONF_VERIFY_SSL: True,
                # Normalized; blanks and the primary URL itself dropped.
                CONF_FALLBACK_URLS: ["http://127.0.0.2:8086"],
            },
        ),
        (
            DestinationKind.INFLUXDB_V1,
            V1_INPUT | {CONF_RETENTION_POLICY: "autogen", CONF_URL: "HTTP://InfluxDB.local:8086/"},
            "InfluxDB v1 home_assistant@influxdb.local",
            "influxdb_v1:http://influxdb.local:8086|home_assistant/autogen",
            {
                CONF_KIND: "influxdb_v1",
                CONF_URL: "http://influxdb.local:8086",
                CONF_DATABASE: "home_assistant",
                CONF_RETENTION_POLICY: "autogen",
                CONF_USERNAME: "writer",
                CONF_PASSWORD: "pa55word",
                CONF_VERIFY_SSL: True,
                CONF_FALLBACK_URLS: [],
            },
        ),
        (
            DestinationKind.INFLUXDB_V1,
            {CONF_URL: "http://127.0.0.1:8086", CONF_DATABASE: "db", CONF_VERIFY_SSL: False},
            "InfluxDB v1 db@127.0.0.1",
            "influxdb_v1:http://127.0.0.1:8086|db",
            {
                CONF_KIND: "influxdb_v1",
                CONF_URL: "http://127.0.0.1:8086",
                CONF_DATABASE: "db",
                CONF_VERIFY_SSL: False,
                CONF_FALLBACK_URLS: [],
            },
        ),
        (
            DestinationKind.DATA_API,
            API_INPUT | {CONF_URL: "https://data.example.org:443/api/"},
            "Data API data.example.org",
            "data_api:https://data.example.org/api",
            {
                CONF_KIND: "data_api",
                CONF_URL: "https://data.example.org/api",
                CONF_TOKEN: TOKEN,
                CONF_VERIFY_SSL: True,
                CONF_FALLBACK_URLS: [],
            },
        ),
    ],
    ids=["influxdb_v2", "influxdb_v1", "influxdb_v1_no_auth", "data_api"],
)
async def test_user_flow(
    hass: HomeAssistant,
    *,
    mock_check: AsyncMock,
    mock_setup_entry: AsyncMock,
    kind: DestinationKind,
    user_input: dict[str, Any],
    title: str,
    unique_id: str,
    data: dict[str, Any],
) -> None:
    """Each destination kind is tested, then created with clean data and identity."""
    result = await start(hass, kind)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == title
    assert result["data"] == data
    assert result["result"].unique_id == unique_id
    assert result["result"].options == {}
    mock_check.assert_awaited_once_with(hass, data)
    await hass.async_block_till_done()
    assert len(mock_setup_entry.mock_calls) == 1
    # Secrets stay out of titles and identities.
    assert TOKEN not in title + unique_id
    assert "pa55word" not in title + unique_id


def _err(
    category: ErrorCategory, message: str = "boom", status: int | None = None
) -> DeliveryError:
    return DeliveryError(category, message, status=status)


def _v2(side_effect: Exception, error: str, field: str = "base") -> tuple[Any, ...]:
    """A failed check of the InfluxDB v2 form and the error it shows on ``field``."""
    return (DestinationKind.INFLUXDB_V2, V2_INPUT, side_effect, field, error)


@pytest.mark.parametrize(
    ("kind", "user_input", "side_effect", "field", "error"),
    [
        _v2(_err(ErrorCategory.NETWORK), "cannot_connect"),
        _v2(_err(ErrorCategory.TIMEOUT), "cannot_connect"),
        _v2(_err(ErrorCategory.DNS), "cannot_connect"),
        _v2(_err(ErrorCategory.SERVER, status=500), "cannot_connect"),
        _v2(_err(ErrorCategory.RATE_LIMITED, status=429), "cannot_connect"),
        _v2(_err(ErrorCategory.AUTH, status=401), "invalid_auth"),
        _v2(
            NotFoundError(Missing.DATABASE, 'bucket "ha" not found', status=404),
            "bucket_not_found",
            CONF_BUCKET,
        ),
        _v2(
            NotFoundError(Missing.API, "API endpoint not found (HTTP 404)", status=404), "wrong_api"
        ),
        _v2(NotFoundError(Missing.URL, "redirected (HTTP 301)", status=301), "not_found"),
        _v2(_err(ErrorCategory.TLS), "ssl_error"),
        _v2(_err(ErrorCategory.REJECTED, status=400), "rejected"),
        _v2(_err(ErrorCategory.NOT_FOUND, "a 404 without a type", 404), "not_found"),
        _v2(_err(ErrorCategory.TOO_LARGE, status=413), "unknown"),
        _v2(RuntimeError("bug"), "unknown"),
        (
            DestinationKind.INFLUXDB_V1,
            V1_INPUT,
            NotFoundError(Missing.DATABASE, 'database not found: "home_assistant"', status=404),
            CONF_DATABASE,
            "database_not_found",
        ),
        (
            DestinationKind.INFLUXDB_V1,
            V1_INPUT | {CONF_RETENTION_POLICY: "weekly"},
            NotFoundError(Missing.RETENTION_POLICY, "retention policy not found: weekly"),
            CONF_RETENTION_POLICY,
            "retention_policy_not_found",
        ),
        (
            DestinationKind.INFLUXDB_V1,
            V1_INPUT,
            _err(ErrorCategory.AUTH, status=403),
            "base",
            "invalid_auth",
        ),
        (
            DestinationKind.DATA_API,
            API_INPUT,
            NotFoundError(Missing.DATABASE, "not found", status=404),
            "base",
            "not_found",
        ),
        (
            DestinationKind.DATA_API,
            API_INPUT,
            _err(ErrorCategory.AUTH, status=401),
            "base",
            "invalid_auth",
        ),
    ],
)
async def test_user_flow_errors(
    hass: HomeAssistant,
    *,
    mock_check: AsyncMock,
    kind: DestinationKind,
    user_input: dict[str, Any],
    side_effect: Exception,
    field: str,
    error: str,
) -> None:
    """Every failed check maps to a translated error and the flow recovers."""
    result = await start(hass, kind)
    mock_check.side_effect = side_effect
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    assert_translated(result)

    mock_check.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:8086",
        "ftp://127.0.0.1",
        "http://",
        "http://user:secret@127.0.0.1:8086",
        "http://127.0.0.1:8086/?db=x",
        "http://127.0.0.1:8086/#frag",
        "http://127.0.0.1:99999",
        "http://[::1",
    ],
)
async def test_invalid_url(hass: HomeAssistant, mock_check: AsyncMock, url: str) -> None:
    """A URL that is not plain http(s) is refused before any network check."""
    result = await start(hass, DestinationKind.INFLUXDB_V2)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], V2_INPUT | {CONF_URL: url}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_URL: "invalid_url"}
    assert_translated(result)
    mock_check.assert_not_awaited()

    result = await hass.config_entries.flow.async_configure(result["flow_id"], V2_INPUT)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_invalid_fallback_url(hass: HomeAssistant, mock_check: AsyncMock) -> None:
    """An invalid fallback URL is named in the error."""
    result = await start(hass, DestinationKind.DATA_API)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        API_INPUT | {CONF_FALLBACK_URLS: ["https://ok.example.org", "mailto:x@example.org"]},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_FALLBACK_URLS: "invalid_fallback_url"}
    assert result["description_placeholders"] == {"fallback_url": "mailto:x@example.org"}
    assert_translated(result)
    mock_check.assert_not_awaited()

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], API_INPUT | {CONF_FALLBACK_URLS: ["https://ok.example.org/"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_FALLBACK_URLS] == ["https://ok.example.org"]


@pytest.mark.parametrize("content", [None, "not a certificate\n", ""])
async def test_invalid_ca_cert(
    hass: HomeAssistant, mock_check: AsyncMock, tmp_path: Path, content: str | None
) -> None:
    """A missing or non-PEM CA file is a field error; a real bundle is accepted."""
    bad = tmp_path / "ca.pem"
    if content is not None:
        bad.write_text(content)
    result = await start(hass, DestinationKind.INFLUXDB_V2)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], V2_INPUT | {CONF_SSL_CA_CERT: str(bad)}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_SSL_CA_CERT: "invalid_ca_cert"}
    assert_translated(result)
    mock_check.assert_not_awaited()

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], V2_INPUT | {CONF_SSL_CA_CERT: certifi.where()}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_SSL_CA_CERT] == certifi.where()


async def test_ca_cert_relative_to_config_dir(
    hass: HomeAssistant, mock_check: AsyncMock, tmp_path: Path
) -> None:
    """A relative CA path is resolved in the config directory and used for TLS."""
    hass.config.config_dir = str(tmp_path)
    (tmp_path / "certs").mkdir()
    shutil.copy(certifi.where(), tmp_path / "certs" / "ca.pem")

    result = await start(hass, DestinationKind.INFLUXDB_V2)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], V2_INPUT | {CONF_SSL_CA_CERT: " certs/ca.pem "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = dict(result["data"])
    assert data[CONF_SSL_CA_CERT] == "certs/ca.pem"
    context = await destination.async_ssl_context(hass, data)
    assert not isinstance(context, bool)
    assert await destination.async_ssl_context(hass, data | {CONF_VERIFY_SSL: False}) is False
    assert await destination.async_ssl_context(hass, {CONF_VERIFY_SSL: True}) is True


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8086", "http://127.0.0.1:8086/", "HTTP://127.0.0.1:8086//"]
)
async def test_duplicate_aborts(hass: HomeAssistant, mock_check: AsyncMock, url: str) -> None:
    """The same destination (after URL normalization) cannot be added twice."""
    v2_entry().add_to_hass(hass)
    result = await start(hass, DestinationKind.INFLUXDB_V2)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], V2_INPUT | {CONF_URL: url}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert_translated(result)
    mock_check.assert_not_awaited()


async def test_different_destinations_coexist(hass: HomeAssistant, mock_check: AsyncMock) -> None:
    """Another bucket, another kind or another server is a new entry."""
    v2_entry().add_to_hass(hass)
    for kind, user_input in (
        (DestinationKind.INFLUXDB_V2, V2_INPUT | {CONF_BUCKET: "other"}),
        (DestinationKind.INFLUXDB_V1, V1_INPUT),
        (DestinationKind.INFLUXDB_V2, V2_INPUT | {CONF_URL: "http://127.0.0.2:8086"}),
    ):
        result = await start(hass, kind)
        result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
        assert result["type"] is FlowResultType.CREATE_ENTRY
    assert len(hass.config_entries.async_entries(DOMAIN)) == 4


# --- reauth ------------------------------------------------------------------------------


async def test_reauth_token(hass: HomeAssistant, mock_check: AsyncMock) -> None:
    """A new token is tested and stored; the entry reloads."""
    entry = v2_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"] == {"name": entry.title}

    mock_check.side_effect = _err(ErrorCategory.AUTH, status=401)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "still-wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    assert_translated(result)

    mock_check.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: " new-token "}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert_translated(result)
    assert entry.data[CONF_TOKEN] == "new-token"
    assert entry.data[CONF_BUCKET] == "ha"
    await hass.async_block_till_done()


@pytest.mark.parametrize(
    ("user_input", "expected"),
    [
        (
            {CONF_USERNAME: "admin", CONF_PASSWORD: "n3w"},
            {CONF_USERNAME: "admin", CONF_PASSWORD: "n3w"},
        ),
        ({CONF_USERNAME: "", CONF_PASSWORD: "ignored"}, {}),
        # A user without a password (InfluxDB accepts an empty one): no password stored.
        ({CONF_USERNAME: "reader", CONF_PASSWORD: ""}, {CONF_USERNAME: "reader"}),
    ],
)
async def test_reauth_v1(
    hass: HomeAssistant,
    mock_check: AsyncMock,
    user_input: dict[str, str],
    expected: dict[str, str],
) -> None:
    """InfluxDB 1.x asks for user and password; no user means no authentication."""
    entry = v1_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"

    mock_check.side_effect = _err(ErrorCategory.NETWORK)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["errors"] == {"base": "cannot_connect"}

    mock_check.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    credentials = {k: entry.data[k] for k in (CONF_USERNAME, CONF_PASSWORD) if k in entry.data}
    assert credentials == expected
    await hass.async_block_till_done()


# --- reconfigure -------------------------------------------------------------------------


async def test_reconfigure(
    hass: HomeAssistant, mock_check: AsyncMock, mock_setup_entry: AsyncMock
) -> None:
    """URL and TLS change, an empty token keeps the stored one, identity follows."""
    entry = v2_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    # The stored token is never sent back to the browser.
    suggested = suggested_values(result)
    assert TOKEN not in suggested.values()
    assert suggested[CONF_URL] == "http://127.0.0.1:8086"

    new = {
        CONF_URL: "https://influx.example.org",
        CONF_ORG: "home",
        CONF_BUCKET: "ha",
        CONF_VERIFY_SSL: False,
        CONF_FALLBACK_URLS: ["https://replica.example.org"],
    }
    mock_check.side_effect = _err(ErrorCategory.TLS)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], new)
    assert result["errors"] == {"base": "ssl_error"}
    assert_translated(result)

    mock_check.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], new)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert_translated(result)
    assert entry.data == {
        CONF_KIND: "influxdb_v2",
        CONF_URL: "https://influx.example.org",
        CONF_ORG: "home",
        CONF_BUCKET: "ha",
        CONF_TOKEN: TOKEN,
        CONF_VERIFY_SSL: False,
        CONF_FALLBACK_URLS: ["https://replica.example.org"],
    }
    assert entry.unique_id == "influxdb_v2:https://influx.example.org|home/ha"
    assert entry.title == "InfluxDB v2 ha@influx.example.org"
    await hass.async_block_till_done()


async def test_reconfigure_keeps_custom_title_and_new_secret(
    hass: HomeAssistant, mock_check: AsyncMock
) -> None:
    """A title the user chose is kept; a new password replaces the old one."""
    entry = v1_entry()
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, title="Basement Influx")
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_URL: "http://127.0.0.1:8086",
            CONF_DATABASE: "other",
            CONF_USERNAME: "writer",
            CONF_PASSWORD: "n3w",
            CONF_VERIFY_SSL: True,
        },
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.title == "Basement Influx"
    assert entry.data[CONF_PASSWORD] == "n3w"
    assert entry.data[CONF_DATABASE] == "other"
    assert entry.unique_id == "influxdb_v1:http://127.0.0.1:8086|other"
    await hass.async_block_till_done()


async def test_reconfigure_collision(hass: HomeAssistant, mock_check: AsyncMock) -> None:
    """Reconfiguring onto another entry's destination aborts and changes nothing."""
    entry = api_entry()
    entry.add_to_hass(hass)
    other = api_entry(**{CONF_URL: "https://other.example.org"})
    other.add_to_hass(hass)
    before = dict(entry.data)

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "https://other.example.org/", CONF_VERIFY_SSL: True}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert dict(entry.data) == before
    mock_check.assert_not_awaited()


async def test_reconfigure_invalid_url(hass: HomeAssistant, mock_check: AsyncMock) -> None:
    """URL validation applies to reconfigure too, and the form recovers."""
    entry = api_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "not a url", CONF_VERIFY_SSL: True}
    )
    assert result["errors"] == {CONF_URL: "invalid_url"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "https://data.example.org/api", CONF_VERIFY_SSL: True}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_TOKEN] == TOKEN
    await hass.async_block_till_done()


# --- options -----------------------------------------------------------------------------


async def _options(hass: HomeAssistant, entry: MockConfigEntry, step: str) -> ConfigFlowResult:
    """Open the options flow of ``entry`` and choose ``step``."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "init"
    menu = ["retry", "pipeline", "filters", "schema", "overrides"]
    if entry.data[CONF_KIND] != DestinationKind.DATA_API:
        menu.append("registry_tags")  # line protocol only
    menu.append("heartbeat")
    assert result["menu_options"] == menu
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": step}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step
    assert_translated(result, "options")
    return result


@pytest.fixture
async def loaded_entry(hass: HomeAssistant) -> MockConfigEntry:
    """A set-up InfluxDB v2 entry with some options of every step."""
    entry = v2_entry()
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, options={CONF_BATCH_SIZE: 100, CONF_INCLUDE_DOMAINS: ["sensor"]}
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_options_retry_preset(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, mock_setup_entry: AsyncMock
) -> None:
    """A preset alone clears earlier overrides and reloads the entry."""
    hass.config_entries.async_update_entry(
        loaded_entry,
        options=loaded_entry.options | {CONF_RETRY_OVERRIDES: {"rapid_attempts": 3}},
    )
    await hass.async_block_till_done()
    calls = len(mock_setup_entry.mock_calls)
    result = await _options(hass, loaded_entry, "retry")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_PRESET: "conservative", "customize": False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert loaded_entry.options == {
        CONF_BATCH_SIZE: 100,
        CONF_INCLUDE_DOMAINS: ["sensor"],
        CONF_PRESET: "conservative",
    }
    # OptionsFlowWithReload: changed options reload the entry.
    assert len(mock_setup_entry.mock_calls) == calls + 1


async def test_options_retry_parameters(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Only parameters that differ from the preset are stored; invalid ones are named."""
    result = await _options(hass, loaded_entry, "retry")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_PRESET: "limited", "customize": True}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "retry_parameters"
    assert result["description_placeholders"] == {"preset": "limited"}

    base = {
        "rapid_attempts": 10.0,
        "rapid_base_delay": 1.0,
        "rapid_max_delay": 5.0,
        "moderate_attempts": 20.0,
        "max_retries": 10,
        "breaker_enabled": True,
        "jitter": "proportional",
    }
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {"rapid_base_delay": 9.0}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"rapid_max_delay": "invalid_retry_parameter"}
    assert (result["description_placeholders"] or {})["key"] == "rapid_max_delay"
    assert_translated(result, "options")

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        base | {"rapid_attempts": 4.0, "breaker_reset_timeout": 60.0, "jitter": "full"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert loaded_entry.options[CONF_PRESET] == "limited"
    overrides = loaded_entry.options[CONF_RETRY_OVERRIDES]
    assert overrides == {"rapid_attempts": 4, "breaker_reset_timeout": 60.0, "jitter": "full"}
    assert isinstance(overrides["rapid_attempts"], int)

    # Re-opening with the same preset starts from the stored overrides.
    result = await _options(hass, loaded_entry, "retry")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_PRESET: "limited", "customize": True}
    )
    suggested = suggested_values(result)
    assert suggested["rapid_attempts"] == 4
    assert suggested["moderate_attempts"] == 20
    # Setting everything back to the preset stores no overrides at all.
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {"jitter": "proportional"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert CONF_RETRY_OVERRIDES not in loaded_entry.options


PIPELINE_INPUT = {
    CONF_BATCH_SIZE: 2000.0,
    CONF_BATCH_BYTES: 1048576.0,
    CONF_FLUSH_INTERVAL: 2.5,
    CONF_SPOOL_MAX_MB: 64.0,
    CONF_SPOOL_MAX_AGE_DAYS: 14.0,
    CONF_OVERFLOW_POLICY: "drop_newest",
    CONF_BACKLOG_TOLERANCE: 600.0,
    CONF_IDLE_TOLERANCE: 900.0,
    CONF_OUTAGE_REPAIR_AFTER: 7200.0,
}


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({CONF_BATCH_BYTES: 1024.0}, {CONF_BATCH_BYTES: "batch_bytes_too_small"}),
        ({CONF_FLUSH_INTERVAL: 0.0}, {CONF_FLUSH_INTERVAL: "flush_interval_out_of_range"}),
        ({CONF_FLUSH_INTERVAL: 120.0}, {CONF_FLUSH_INTERVAL: "flush_interval_out_of_range"}),
        (
            {CONF_SPOOL_MAX_MB: 1.0, CONF_BATCH_BYTES: 2097152.0},
            {CONF_SPOOL_MAX_MB: "spool_smaller_than_batch"},
        ),
    ],
)
async def test_options_pipeline(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    change: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Pipeline settings: invalid combinations are explained, valid ones stored typed."""
    result = await _options(hass, loaded_entry, "pipeline")
    await refused_then_saved(hass, result, PIPELINE_INPUT | change, PIPELINE_INPUT, errors)
    assert loaded_entry.options == {
        CONF_INCLUDE_DOMAINS: ["sensor"],
        CONF_BATCH_SIZE: 2000,
        CONF_BATCH_BYTES: 1048576,
        CONF_FLUSH_INTERVAL: 2.5,
        CONF_SPOOL_MAX_MB: 64,
        CONF_SPOOL_MAX_AGE_DAYS: 14,
        CONF_OVERFLOW_POLICY: "drop_newest",
        CONF_BACKLOG_TOLERANCE: 600,
        CONF_IDLE_TOLERANCE: 900,
        CONF_OUTAGE_REPAIR_AFTER: 7200,
        CONF_AUTO_BACKFILL: False,
        CONF_COMPRESS: True,
    }


async def test_options_pipeline_shows_the_spool_capacity(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The pipeline step states the hours the spool holds at the measured event rate.

    Figures: unknown ("?") before a rate is measured; at 50 events/s and the
    typical 14.5 B per event on disk, the default 512 MiB hold 206 h (8.6 days).
    The entry's pipeline is stood in for (this fixture's entry runs none): only
    its rate and bytes per event are read.
    """
    result = await _options(hass, loaded_entry, "pipeline")
    assert result["description_placeholders"]["capacity_hours"] == "?"
    pipeline = SimpleNamespace(
        event_rate=lambda: 50.0, disk_bytes_per_event=lambda: TYPICAL_DISK_BYTES_PER_EVENT
    )
    loaded_entry.runtime_data = SimpleNamespace(pipeline=pipeline)
    try:
        result = await _options(hass, loaded_entry, "pipeline")
    finally:
        del loaded_entry.runtime_data
    assert result["description_placeholders"] == {
        "event_rate": "50.0",
        "capacity_hours": "206",
        "event_bytes": "14",
    }
    assert_translated(result, "options")


async def test_options_pipeline_compress_off(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Turning gzip off is stored as False (the sinks then send plain lines)."""
    result = await _options(hass, loaded_entry, "pipeline")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], PIPELINE_INPUT | {CONF_COMPRESS: False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert loaded_entry.options[CONF_COMPRESS] is False


async def test_options_pipeline_memory_limit(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The memory fallback's limit is stored as whole MiB when given."""
    result = await _options(hass, loaded_entry, "pipeline")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], PIPELINE_INPUT | {CONF_MEMORY_MAX_MB: 16.0}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert loaded_entry.options[CONF_MEMORY_MAX_MB] == 16


async def test_options_pipeline_clears_max_age(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """An emptied optional field removes the stored value (no age limit)."""
    hass.config_entries.async_update_entry(
        loaded_entry, options=loaded_entry.options | {CONF_SPOOL_MAX_AGE_DAYS: 3}
    )
    await hass.async_block_till_done()
    result = await _options(hass, loaded_entry, "pipeline")
    suggested = suggested_values(result)
    assert suggested[CONF_BATCH_SIZE] == 100
    assert suggested[CONF_SPOOL_MAX_AGE_DAYS] == 3
    user_input = {k: v for k, v in PIPELINE_INPUT.items() if k != CONF_SPOOL_MAX_AGE_DAYS}
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert CONF_SPOOL_MAX_AGE_DAYS not in loaded_entry.options


@pytest.mark.parametrize(
    ("change", "errors", "placeholders"),
    [
        (
            {CONF_EXCLUDE_ENTITIES: ["sensor.a", "sensor.c"]},
            {CONF_EXCLUDE_ENTITIES: "include_exclude_overlap"},
            {"items": "sensor.a"},
        ),
        (
            {CONF_EXCLUDE_DOMAINS: ["Sensor!"]},
            {CONF_EXCLUDE_DOMAINS: "invalid_domain"},
            {"domain": "Sensor!"},
        ),
        (
            {CONF_EXCLUDE_AREAS: ["kitchen"]},
            {CONF_EXCLUDE_AREAS: "include_exclude_overlap"},
            {"items": "kitchen"},
        ),
    ],
)
async def test_options_filters(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    change: dict[str, Any],
    errors: dict[str, str],
    placeholders: dict[str, str],
) -> None:
    """Filters: contradictions are refused, lists are cleaned, empty ones dropped."""
    good = {
        CONF_INCLUDE_ENTITIES: ["sensor.a", "sensor.b"],
        CONF_INCLUDE_AREAS: ["kitchen"],
        CONF_INCLUDE_DOMAINS: [" light ", "light", ""],
        CONF_INCLUDE_GLOBS: ["sensor.*_temperature"],
        CONF_EXCLUDE_GLOBS: [],
    }
    result = await _options(hass, loaded_entry, "filters")
    refused = await refused_then_saved(hass, result, good | change, good, errors)
    assert refused["description_placeholders"] == placeholders
    assert loaded_entry.options == {
        CONF_BATCH_SIZE: 100,
        CONF_INCLUDE_ENTITIES: ["sensor.a", "sensor.b"],
        CONF_INCLUDE_AREAS: ["kitchen"],
        CONF_INCLUDE_DOMAINS: ["light"],
        CONF_INCLUDE_GLOBS: ["sensor.*_temperature"],
    }


SCHEMA_INPUT = {
    CONF_MEASUREMENT_STRATEGY: "device_class",
    CONF_DEFAULT_MEASUREMENT: " state ",
    CONF_STATIC_TAGS: ["home = main", "site=berlin"],
    CONF_TAGS_ATTRIBUTES: ["friendly_name"],
    CONF_IGNORE_ATTRIBUTES: ["icon"],
    CONF_INCLUDE_UNAVAILABLE: True,
    CONF_EVENT_TYPES: ["automation_triggered", "call_service"],
    CONF_CONTEXT_ENTITIES: ["sun.sun"],
}


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        (
            {CONF_MEASUREMENT_STRATEGY: "override"},
            {CONF_OVERRIDE_MEASUREMENT: "override_measurement_required"},
        ),
        (
            {CONF_OVERRIDE_MEASUREMENT: "all"},
            {CONF_OVERRIDE_MEASUREMENT: "override_measurement_unused"},
        ),
        ({CONF_DEFAULT_MEASUREMENT: "#x"}, {CONF_DEFAULT_MEASUREMENT: "invalid_measurement"}),
        ({CONF_STATIC_TAGS: ["novalue"]}, {CONF_STATIC_TAGS: "invalid_tag"}),
        ({CONF_STATIC_TAGS: ["_k=v"]}, {CONF_STATIC_TAGS: "invalid_tag"}),
        ({CONF_STATIC_TAGS: ["k=v", "k=w"]}, {CONF_STATIC_TAGS: "invalid_tag"}),
        (
            {CONF_IGNORE_ATTRIBUTES: ["friendly_name"]},
            {CONF_IGNORE_ATTRIBUTES: "attribute_conflict"},
        ),
        ({CONF_EVENT_TYPES: ["state_changed"]}, {CONF_EVENT_TYPES: "invalid_event_type"}),
        ({CONF_EVENT_TYPES: ["*"]}, {CONF_EVENT_TYPES: "invalid_event_type"}),
        ({CONF_EVENT_TYPES: ["two words"]}, {CONF_EVENT_TYPES: "invalid_event_type"}),
    ],
)
async def test_options_schema(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    change: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Schema options for InfluxDB: validated, tags stored as a mapping."""
    result = await _options(hass, loaded_entry, "schema")
    assert CONF_REGISTRY_SYNC not in schema_keys(result)
    await refused_then_saved(hass, result, SCHEMA_INPUT | change, SCHEMA_INPUT, errors)
    assert loaded_entry.options == {
        CONF_BATCH_SIZE: 100,
        CONF_INCLUDE_DOMAINS: ["sensor"],
        CONF_MEASUREMENT_STRATEGY: "device_class",
        CONF_DEFAULT_MEASUREMENT: "state",
        CONF_STATIC_TAGS: {"home": "main", "site": "berlin"},
        CONF_TAGS_ATTRIBUTES: ["friendly_name"],
        CONF_IGNORE_ATTRIBUTES: ["icon"],
        CONF_INCLUDE_UNAVAILABLE: True,
        CONF_EVENT_TYPES: ["automation_triggered", "call_service"],
        CONF_CONTEXT_ENTITIES: ["sun.sun"],
    }

    # The stored tags come back as editable lines.
    result = await _options(hass, loaded_entry, "schema")
    suggested = suggested_values(result)
    assert suggested[CONF_STATIC_TAGS] == ["home=main", "site=berlin"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_MEASUREMENT_STRATEGY: "override",
            CONF_OVERRIDE_MEASUREMENT: "ha",
            CONF_INCLUDE_UNAVAILABLE: False,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert loaded_entry.options == {
        CONF_BATCH_SIZE: 100,
        CONF_INCLUDE_DOMAINS: ["sensor"],
        CONF_MEASUREMENT_STRATEGY: "override",
        CONF_OVERRIDE_MEASUREMENT: "ha",
        CONF_INCLUDE_UNAVAILABLE: False,
    }


async def test_options_schema_data_api(hass: HomeAssistant) -> None:
    """The data-api has no line-protocol settings but a registry sync toggle."""
    entry = api_entry()
    entry.add_to_hass(hass)
    result = await _options(hass, entry, "schema")
    keys = schema_keys(result)
    assert CONF_REGISTRY_SYNC in keys
    assert CONF_MEASUREMENT_STRATEGY not in keys
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_INCLUDE_UNAVAILABLE: False, CONF_REGISTRY_SYNC: True, CONF_EVENT_TYPES: ["x"]},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options == {
        CONF_INCLUDE_UNAVAILABLE: False,
        CONF_REGISTRY_SYNC: True,
        CONF_EVENT_TYPES: ["x"],
    }


# --- against a real InfluxDB 1.x -----------------------------------------------------------


@pytest.mark.servers
async def test_user_flow_real_influxdb_v1(
    hass: HomeAssistant, influxdb_v1: InfluxV1Server, influx_db: str
) -> None:
    """The real check: a missing database, a dead port, then the real database."""
    result = await start(hass, DestinationKind.INFLUXDB_V1)
    user_input = {CONF_URL: influxdb_v1.url, CONF_DATABASE: "missing_db", CONF_VERIFY_SSL: True}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["errors"] == {CONF_DATABASE: "database_not_found"}

    dead = f"http://127.0.0.1:{free_port()}"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input | {CONF_URL: dead, CONF_DATABASE: influx_db}
    )
    assert result["errors"] == {"base": "cannot_connect"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        user_input | {CONF_DATABASE: influx_db, CONF_RETENTION_POLICY: "nope"},
    )
    assert result["errors"] == {CONF_RETENTION_POLICY: "retention_policy_not_found"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input | {CONF_DATABASE: influx_db, CONF_RETENTION_POLICY: "autogen"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_DATABASE] == influx_db
    await hass.async_block_till_done()


@pytest.mark.servers
async def test_user_flow_real_influxdb_v2_api_missing(
    hass: HomeAssistant, influxdb_v1: InfluxV1Server, socket_enabled: None
) -> None:
    """InfluxDB 1.6 has no /api/v2/write: the user is told to pick the 1.x API."""
    result = await start(hass, DestinationKind.INFLUXDB_V2)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], V2_INPUT | {CONF_URL: influxdb_v1.url}
    )
    assert result["errors"] == {"base": "wrong_api"}


@pytest.mark.servers
async def test_user_flow_v2_rejected_then_real_victoria_metrics(
    hass: HomeAssistant, victoria_metrics: VictoriaMetricsServer, socket_enabled: None
) -> None:
    """A real proxy answering nginx's generic 400 to everything is refused ("rejected");
    the same form against real VictoriaMetrics (204 to the empty write) creates the entry.
    """
    body = b"<html><center>The plain HTTP request was sent to HTTPS port</center></html>"
    async with FaultProxy(victoria_metrics.port, mode=Mode.ANSWER) as proxy:
        proxy.answer = (
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        result = await start(hass, DestinationKind.INFLUXDB_V2)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], V2_INPUT | {CONF_URL: proxy.url}
        )
        assert result["errors"] == {"base": "rejected"}
        assert_translated(result)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], V2_INPUT | {CONF_URL: victoria_metrics.url}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
