"""TLS settings of a destination: a custom CA stays private to its entry."""

from pathlib import Path

import aiohttp
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.util.ssl import client_context, get_default_context
import pytest

from tests.common import drained, setup_with_ca, unload_entry, v1_entry
from tests.servers import InfluxV1Server
from tests.tls import Pki, TlsProxy, ignore_handshake_errors, make_pki


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
