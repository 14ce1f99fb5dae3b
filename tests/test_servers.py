"""Smoke tests for the real-server fixtures in :mod:`tests.servers`."""

import time

import pytest

from tests import servers
from tests.servers import InfluxV1Server, VictoriaMetricsServer, http_request

pytestmark = pytest.mark.servers


def test_influxdb_v1_write_and_read_back(influxdb_v1: InfluxV1Server, influx_db: str) -> None:
    """A raw v1 write is stored and read back by the blocking helpers."""
    status, body = influxdb_v1.write(influx_db, b"smoke,entity_id=x value=1.5 1000000000")
    assert status == 204, body
    rows = influxdb_v1.query("SELECT * FROM smoke", db=influx_db)
    assert rows == [
        {"_measurement": "smoke", "time": 1_000_000_000, "entity_id": "x", "value": 1.5}
    ]


async def test_influxdb_v1_async_helpers(influxdb_v1: InfluxV1Server, influx_db: str) -> None:
    """The aiohttp-based helpers work inside the test's event loop."""
    status, _ = await influxdb_v1.awrite(influx_db, b"smoke value=2i 2000000000")
    assert status == 204
    rows = await influxdb_v1.aquery("SELECT value FROM smoke", db=influx_db)
    assert rows == [{"_measurement": "smoke", "time": 2_000_000_000, "value": 2}]
    other = "smoke_async_db"
    await influxdb_v1.acreate_database(other)
    assert {"_measurement": "databases", "name": other} in await influxdb_v1.aquery(
        "SHOW DATABASES"
    )
    await influxdb_v1.adrop_database(other)


def test_influxdb_v1_stop_start_keeps_data(influxdb_v1: InfluxV1Server, influx_db: str) -> None:
    """A restart uses the same port and data directory."""
    assert influxdb_v1.write(influx_db, b"smoke value=3 3000000000")[0] == 204
    influxdb_v1.stop()
    with pytest.raises(OSError):
        http_request("GET", f"{influxdb_v1.url}/ping", timeout=1)
    influxdb_v1.start()
    assert influxdb_v1.query("SELECT value FROM smoke", db=influx_db)[0]["value"] == 3


def test_influxdb_v1_pause_resume(influxdb_v1: InfluxV1Server, influx_db: str) -> None:
    """A paused server accepts the connection but does not answer until resumed."""
    influxdb_v1.pause()
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            http_request("GET", f"{influxdb_v1.url}/ping", timeout=0.5)
        assert time.monotonic() - start < 5
    finally:
        influxdb_v1.resume()
    assert http_request("GET", f"{influxdb_v1.url}/ping")[0] == 204


def test_influxdb_v1_auth_instance(influxdb_v1_auth: InfluxV1Server, socket_enabled: None) -> None:
    """The auth instance rejects anonymous requests; the helpers use the admin user."""
    status, _ = http_request("POST", f"{influxdb_v1_auth.url}/query?q=SHOW+DATABASES")
    assert status == 401
    influxdb_v1_auth.create_database("authdb")
    assert influxdb_v1_auth.write("authdb", b"m v=1 1")[0] == 204
    assert influxdb_v1_auth.query("SELECT v FROM m", db="authdb")[0]["v"] == 1


def test_influxdb_v1_small_body(
    influxdb_v1_small_body: InfluxV1Server, socket_enabled: None
) -> None:
    """The small-body instance answers 413 above its limit."""
    influxdb_v1_small_body.create_database("small")
    assert influxdb_v1_small_body.write("small", b"m v=1 1")[0] == 204
    big = b"\n".join(b"m v=%d %d" % (i, i) for i in range(100))
    assert influxdb_v1_small_body.write("small", big)[0] == 413


def test_victoria_metrics_write_and_export(
    victoria_metrics: VictoriaMetricsServer, vm_measurement: str
) -> None:
    """Both write endpoints store numeric fields as ``<measurement>_<field>``."""
    ts = time.time_ns()
    line = f"{vm_measurement},entity_id=x value=4.5 {ts}".encode()
    status, body = http_request(
        "POST", f"{victoria_metrics.url}/api/v2/write?org=o&bucket=b&precision=ns", body=line
    )
    assert status == 204, body
    status, body = http_request(
        "POST", f"{victoria_metrics.url}/write?db=d&precision=ns", body=line.replace(b"4.5", b"5")
    )
    assert status == 204, body
    name = f"{vm_measurement}_value"
    by_db = {
        db: victoria_metrics.export(f'{{__name__="{name}",db="{db or ""}"}}')[0]
        for db in (None, "d")
    }
    assert by_db[None]["values"] == [4.5]
    assert by_db[None]["timestamps"] == [ts // 1_000_000]
    assert by_db["d"]["values"] == [5]
    assert by_db["d"]["metric"]["entity_id"] == "x"


async def test_victoria_metrics_async_export(
    victoria_metrics: VictoriaMetricsServer, vm_measurement: str
) -> None:
    """The async export helper sees a fresh write."""
    assert (
        http_request(
            "POST",
            f"{victoria_metrics.url}/write?precision=ns",
            body=f"{vm_measurement} v=7 {time.time_ns()}".encode(),
        )[0]
        == 204
    )
    series = await victoria_metrics.aexport(f'{{__name__="{vm_measurement}_v"}}')
    assert [s["values"] for s in series] == [[7]]


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_server_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    """Without the binary a real-server test fails under CI (1 failure) and skips locally."""
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome):
        servers._require("influxd")
