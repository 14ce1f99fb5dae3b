"""A destination from entry data: the core target of each kind, and its TLS settings.

A custom CA stays private to its entry.
"""

from pathlib import Path

import aiohttp
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.util.ssl import client_context, get_default_context
import pytest

from custom_components.ha_ingestor.const import (
    CONF_BUCKET,
    CONF_DATABASE,
    CONF_KIND,
    CONF_ORG,
    CONF_PASSWORD,
    CONF_RETENTION_POLICY,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    KINDS,
    DestinationKind,
)
from custom_components.ha_ingestor.core.sinks import (
    DataApiTarget,
    InfluxV1Target,
    InfluxV2Target,
    Target,
)
from custom_components.ha_ingestor.destination import target_from_data
from tests.common import drained, setup_with_ca, unload_entry, v1_entry
from tests.servers import InfluxV1Server
from tests.tls import Pki, TlsProxy, ignore_handshake_errors, make_pki


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {CONF_DATABASE: "ha", CONF_RETENTION_POLICY: "", CONF_USERNAME: "u"},
            InfluxV1Target(url="http://h:8086", database="ha", username="u"),
        ),
        (
            {CONF_DATABASE: "ha", CONF_RETENTION_POLICY: "rp", CONF_PASSWORD: "p"},
            InfluxV1Target(url="http://h:8086", database="ha", retention_policy="rp", password="p"),
        ),
        (
            {CONF_ORG: "o", CONF_BUCKET: "b", CONF_TOKEN: "t"},
            InfluxV2Target(url="http://h:8086", org="o", bucket="b", token="t"),
        ),
        ({CONF_TOKEN: "t"}, DataApiTarget(url="http://h:8086", token="t")),
    ],
)
def test_target_from_data(data: dict[str, str], expected: Target) -> None:
    """Each kind's table row builds its target: empty optional fields become None."""
    kind = next(kind for kind, info in KINDS.items() if info.target is type(expected))
    assert target_from_data({CONF_KIND: kind, CONF_URL: "http://h:8086", **data}) == expected


def test_every_kind_builds_a_target() -> None:
    """Every row of the kind table names fields its target takes (no kind without a target)."""
    for kind, info in KINDS.items():
        data = {CONF_KIND: kind, CONF_URL: "http://h"} | dict.fromkeys(info.fields, "x")
        assert isinstance(target_from_data(data), info.target), kind
    assert set(KINDS) == set(DestinationKind)


def _trust_facts() -> list[tuple[object, ...]]:
    """What HA's shared client contexts trust (certificates and store counts)."""
    return [
        (repr(ctx.get_ca_certs()), ctx.cert_store_stats())
        for ctx in (client_context(), get_default_context())
    ]


@pytest.fixture
async def pki(hass: HomeAssistant, tmp_path: Path) -> Pki:
    """A fresh CA and certificates for 127.0.0.1."""
    return await hass.async_add_executor_job(make_pki, tmp_path / "pki")


async def test_custom_ca_is_private_to_the_entry(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    influxdb_v1: InfluxV1Server,
    influx_db: str,
    pki: Pki,
) -> None:
    """An entry with a custom CA delivers over TLS; HA's shared context does not learn the CA.

    Real InfluxDB behind a real TLS proxy whose certificate is signed by a CA
    generated here. Figure: 1 point delivered through the proxy (0 lost); HA's shared
    contexts hold the same certificates before and after setup, and a request
    through them to the proxy still fails certificate verification.
    """
    server_ctx = await hass.async_add_executor_job(lambda: pki.server_context(trusted=True))
    before = _trust_facts()
    with ignore_handshake_errors(hass.loop):
        async with TlsProxy(influxdb_v1.port, server_ctx) as proxy:
            entry = await setup_with_ca(hass, v1_entry(proxy.url, influx_db), pki.ca_cert)
            hass.states.async_set("sensor.tls_power", "7", {"unit_of_measurement": "W"})
            await drained(hass, freezer, entry)
            assert _trust_facts() == before
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await session.get(f"{proxy.url}/ping", ssl=client_context())
            await unload_entry(hass, entry)
            assert proxy.handshakes >= 1  # the entry's; the refused one never completes
    rows = await influxdb_v1.aquery('SELECT "value" FROM "W"', influx_db)
    assert [row["value"] for row in rows] == [7.0]
