"""Building a destination (target, TLS context, sink) from an entry's data."""

from collections.abc import Mapping
import ssl
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util.ssl import client_context

from .const import (
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_KIND,
    CONF_ORG,
    CONF_PASSWORD,
    CONF_RETENTION_POLICY,
    CONF_SSL_CA_CERT,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    DEFAULT_TIMEOUT,
    DestinationKind,
)
from .core.sinks import DataApiTarget, InfluxV1Target, InfluxV2Target, create_sink

type Target = InfluxV1Target | InfluxV2Target | DataApiTarget


def target_from_data(data: Mapping[str, Any]) -> Target:
    """The core target described by entry data."""
    kind = DestinationKind(data[CONF_KIND])
    url: str = data[CONF_URL]
    if kind is DestinationKind.INFLUXDB_V1:
        return InfluxV1Target(
            url=url,
            database=data[CONF_DATABASE],
            retention_policy=data.get(CONF_RETENTION_POLICY) or None,
            username=data.get(CONF_USERNAME) or None,
            password=data.get(CONF_PASSWORD) or None,
        )
    if kind is DestinationKind.INFLUXDB_V2:
        return InfluxV2Target(
            url=url, org=data[CONF_ORG], bucket=data[CONF_BUCKET], token=data[CONF_TOKEN]
        )
    return DataApiTarget(url=url, token=data[CONF_TOKEN])


def _load_ca(path: str) -> ssl.SSLContext:
    """Load a custom CA bundle (blocking: run in the executor)."""
    context = client_context()
    context.load_verify_locations(cafile=path)
    return context


async def async_ssl_context(hass: HomeAssistant, data: Mapping[str, Any]) -> ssl.SSLContext | bool:
    """TLS settings for aiohttp: False (verification off), HA's context, or a custom CA."""
    if not data.get(CONF_VERIFY_SSL, True):
        return False
    if ca_path := data.get(CONF_SSL_CA_CERT):
        return await hass.async_add_executor_job(_load_ca, ca_path)
    return True


async def async_check_destination(hass: HomeAssistant, data: Mapping[str, Any]) -> None:
    """Reach the destination and verify credentials and database/bucket (raises DeliveryError)."""
    sink = create_sink(
        target_from_data(data),
        async_get_clientsession(hass),
        timeout=DEFAULT_TIMEOUT,
        ssl=await async_ssl_context(hass, data),
    )
    await sink.check()
