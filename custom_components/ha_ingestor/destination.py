"""Building a destination (target, TLS context, sink) from an entry's data."""

from collections.abc import Mapping
import ssl
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util.ssl import create_client_context
from yarl import URL

from .const import (
    CONF_KIND,
    CONF_SSL_CA_CERT,
    CONF_URL,
    CONF_VERIFY_SSL,
    DestinationKind,
    kind_info,
)
from .core.sinks import Target, create_sink


def target_from_data(data: Mapping[str, Any]) -> Target:
    """Return the core target described by entry data.

    Required fields are passed as stored; optional ones left empty become ``None``.
    """
    info = kind_info(data[CONF_KIND])
    fields: dict[str, Any] = {
        key: data[key] if key in info.required else data.get(key) or None for key in info.fields
    }
    return info.target(url=data[CONF_URL], **fields)


class InvalidUrlError(ValueError):
    """A destination URL is not a plain ``http(s)://host[:port][/path]``."""


class CaCertError(Exception):
    """The custom CA certificate file is missing, unreadable or not a PEM bundle."""


def normalize_url(raw: str) -> str:
    """Validate a destination URL and return it in canonical form.

    Lower-case scheme and host, default port dropped, no trailing slash. Credentials,
    query strings and fragments are refused: credentials belong in their own fields
    (the URL ends up in titles, unique ids and logs) and the sinks append their own
    paths and query parameters.
    """
    try:
        url = URL(raw.strip())
    except (TypeError, ValueError) as err:
        raise InvalidUrlError(raw) from err
    if (
        url.scheme not in ("http", "https")
        or not url.host
        or url.user is not None
        or url.password is not None
        or url.query_string
        or url.fragment
    ):
        raise InvalidUrlError(raw)
    try:
        port = url.explicit_port
    except ValueError as err:  # a port outside 0..65535
        raise InvalidUrlError(raw) from err
    normalized = URL.build(
        scheme=url.scheme, host=url.host.lower(), port=port, path=url.path.rstrip("/")
    )
    # yarl keeps a default port that was typed explicitly; drop it for a stable identity.
    if normalized.is_default_port():
        normalized = normalized.with_port(None)
    return str(normalized)


def unique_id_from_data(data: Mapping[str, Any]) -> str:
    """Return the identity of a destination: kind, normalized URL and database/bucket.

    Examples: ``influxdb_v2:http://127.0.0.1:8086|org/bucket``,
    ``influxdb_v1:http://127.0.0.1:8086|home_assistant`` (``|db/rp`` with a
    retention policy), ``data_api:https://example.org/ingest``.
    """
    kind = DestinationKind(data[CONF_KIND])
    url = normalize_url(data[CONF_URL])
    names = [str(value) for key in kind_info(kind).identity if (value := data.get(key))]
    return f"{kind}:{url}|{'/'.join(names)}" if names else f"{kind}:{url}"


def title_from_data(data: Mapping[str, Any]) -> str:
    """Return a title without secrets, e.g. ``InfluxDB v2 bucket@host``."""
    info = kind_info(data[CONF_KIND])
    host = URL(data[CONF_URL]).host or data[CONF_URL]
    if info.name_field is None:
        return f"{info.title} {host}"
    return f"{info.title} {data[info.name_field]}@{host}"


def resolve_ca_path(hass: HomeAssistant, path: str) -> str:
    """Return the CA file's absolute path; a relative one is taken from the config dir."""
    return hass.config.path(path.strip())


def _load_ca(path: str) -> ssl.SSLContext:
    """Build a private context trusting the default CAs plus the bundle at ``path``.

    Blocking: run in the executor. Never HA's shared ``client_context()``: a CA
    loaded into that would be trusted by every integration until restart.
    """
    context = create_client_context()
    try:
        context.load_verify_locations(cafile=path)
    except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
        raise CaCertError(path) from err
    return context


async def async_load_ca(hass: HomeAssistant, path: str) -> ssl.SSLContext:
    """Return a private client TLS context trusting the PEM bundle at ``path`` as well.

    Runs in the executor (file and certificate loading block). Raises
    :class:`CaCertError` when the file is missing or holds no certificate.
    """
    return await hass.async_add_executor_job(_load_ca, resolve_ca_path(hass, path))


async def async_ssl_context(hass: HomeAssistant, data: Mapping[str, Any]) -> ssl.SSLContext | bool:
    """TLS settings for aiohttp: False (verification off), HA's context, or a custom CA."""
    if not data.get(CONF_VERIFY_SSL, True):
        return False
    if ca_path := data.get(CONF_SSL_CA_CERT):
        return await async_load_ca(hass, ca_path)
    return True


async def async_check_destination(hass: HomeAssistant, data: Mapping[str, Any]) -> None:
    """Reach the destination and verify credentials and database/bucket (raises DeliveryError)."""
    sink = create_sink(
        target_from_data(data),
        async_get_clientsession(hass),
        ssl=await async_ssl_context(hass, data),
    )
    await sink.check()
