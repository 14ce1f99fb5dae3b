"""Tests for core/sinks.py.

Everything a real server can produce is tested against the real InfluxDB 1.6.7
and VictoriaMetrics from :mod:`tests.servers`. Answers they cannot produce
(429 with an HTTP-date Retry-After, 502, throttling, TLS and DNS failures, …) come
from a tiny aiohttp server on 127.0.0.1 or a fake resolver; each such test says so.
"""

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import gzip
import hashlib
import json
import socket
import ssl
import tracemalloc
from typing import Any
import zlib

import aiohttp
from aiohttp import web
import pytest

from custom_components.ha_ingestor.core import sinks
from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.sinks import (
    DataApiTarget,
    InfluxV1Target,
    InfluxV2Target,
    classify_exception,
    classify_response,
    create_sink,
    parse_retry_after,
)
from tests.proxy import FaultProxy, Mode
from tests.servers import InfluxV1Server, VictoriaMetricsServer, free_port, unique_name

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# --- tiny fake server for answers real servers cannot give -------------------------


@dataclass
class Seen:
    """One request the fake server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeServer:
    """An aiohttp server on 127.0.0.1 answering with ``handler``; records requests."""

    url: str
    seen: list[Seen] = field(default_factory=list)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def fake_server(
    handler: Handler, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[FakeServer]:
    """Run ``handler`` for every request on a free loopback port."""
    port = free_port()
    scheme = "https" if ssl_context else "http"
    server = FakeServer(url=f"{scheme}://127.0.0.1:{port}")

    async def record(request: web.Request) -> web.StreamResponse:
        server.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.read(),
            )
        )
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    # auto_decompress=False: tests inspect the gzip body exactly as it was sent.
    runner = web.AppRunner(app, handle_signals=False, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    try:
        yield server
    finally:
        await runner.cleanup()


def answer(
    status: int, body: str = "", headers: dict[str, str] | None = None, content_type: str = ""
) -> Handler:
    """A handler that always gives the same answer."""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(
            status=status, text=body, headers=headers, content_type=content_type or None
        )

    return handler


def v1(url: str, database: str = "db", **kwargs: Any) -> InfluxV1Target:
    """An InfluxDB 1 target."""
    return InfluxV1Target(url=url, database=database, **kwargs)


# --- InfluxDB 1.x, real server ----------------------------------------------------


async def test_v1_write_and_read_back(
    influxdb_v1: InfluxV1Server, influx_db: str, http_session: aiohttp.ClientSession
) -> None:
    """Lines are joined by newlines, written with ns precision and read back."""
    sink = create_sink(v1(influxdb_v1.url + "/", influx_db), http_session)
    assert sink.endpoint == influxdb_v1.url
    await sink.check()
    await sink.write([b"m,entity_id=a value=1.5 1000000001", b"m,entity_id=b value=2 1000000002"])
    rows = await influxdb_v1.aquery("SELECT * FROM m", db=influx_db)
    assert [(r["time"], r["entity_id"], r["value"]) for r in rows] == [
        (1_000_000_001, "a", 1.5),
        (1_000_000_002, "b", 2),
    ]
    # A replay of the same point (same timestamp) overwrites instead of duplicating.
    await sink.write([b"m,entity_id=a value=1.5 1000000001"])
    assert len(await influxdb_v1.aquery("SELECT * FROM m", db=influx_db)) == 2


async def test_v1_database_not_found(
    influxdb_v1: InfluxV1Server, http_session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """A missing database is a 404 with a JSON body: NOT_FOUND naming the database."""
    sink = create_sink(v1(influxdb_v1.url, "missing_db"), http_session)
    for call in (sink.write([b"m v=1 1"]), sink.check()):
        with pytest.raises(DeliveryError) as exc:
            await call
        assert exc.value.category is ErrorCategory.NOT_FOUND
        assert exc.value.status == 404
        assert 'database not found: "missing_db"' in exc.value.message
        assert not exc.value.transient


async def test_v1_partial_write_is_bad_data(
    influxdb_v1: InfluxV1Server, influx_db: str, http_session: aiohttp.ClientSession
) -> None:
    """InfluxDB 1.x stores the good lines and answers 400 "partial write": BAD_DATA."""
    sink = create_sink(v1(influxdb_v1.url, influx_db), http_session)
    with pytest.raises(DeliveryError) as exc:
        await sink.write([b"this is not line protocol", b"m value=4 4000"])
    err = exc.value
    assert err.category is ErrorCategory.BAD_DATA
    assert err.status == 400
    assert "partial write" in err.message
    assert "unable to parse" in err.message
    assert await influxdb_v1.aquery("SELECT value FROM m", db=influx_db) == [
        {"_measurement": "m", "time": 4000, "value": 4}
    ]


async def test_v1_field_type_conflict_is_bad_data(
    influxdb_v1: InfluxV1Server, influx_db: str, http_session: aiohttp.ClientSession
) -> None:
    """A field type conflict with stored data is BAD_DATA too (the uploader bisects)."""
    sink = create_sink(v1(influxdb_v1.url, influx_db), http_session)
    await sink.write([b"m value=1 1"])
    with pytest.raises(DeliveryError) as exc:
        await sink.write([b'm value="text" 2'])
    assert exc.value.category is ErrorCategory.BAD_DATA
    assert "field type conflict" in exc.value.message


async def test_v1_retention_policy(
    influxdb_v1: InfluxV1Server, influx_db: str, http_session: aiohttp.ClientSession
) -> None:
    """A missing retention policy is NOT_FOUND (v1 answers 500) for write and check."""
    good = create_sink(v1(influxdb_v1.url, influx_db, retention_policy="autogen"), http_session)
    await good.check()
    await good.write([b"m value=1 1"])
    bad = create_sink(v1(influxdb_v1.url, influx_db, retention_policy="nope"), http_session)
    for call in (bad.write([b"m value=1 1"]), bad.check()):
        with pytest.raises(DeliveryError) as exc:
            await call
        assert exc.value.category is ErrorCategory.NOT_FOUND
        assert "retention policy not found" in exc.value.message


async def test_v1_auth(
    influxdb_v1_auth: InfluxV1Server, http_session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """Wrong password → 401 AUTH, no privilege → 403 AUTH; secrets never shown."""
    server = influxdb_v1_auth
    db = unique_name("db")
    await server.acreate_database(db)
    await server.aquery("CREATE USER nobody WITH PASSWORD 'nobody-pw'")
    user, password = server.admin

    ok = create_sink(v1(server.url, db, username=user, password=password), http_session)
    await ok.check()
    await ok.write([b"m value=1 1"])

    # Credentials embedded in the URL work too and stay out of the endpoint.
    in_url = server.url.replace("http://", f"http://{user}:{password}@")
    sink = create_sink(v1(in_url, db), http_session)
    assert sink.endpoint == server.url
    await sink.write([b"m value=2 2"])
    assert len(await server.aquery("SELECT * FROM m", db=db)) == 2

    cases = [
        (v1(server.url, db, username=user, password="wrong-secret"), 401),
        (v1(server.url, db), 401),
        (v1(server.url, db, username="nobody", password="nobody-pw"), 403),
    ]
    for target, status in cases:
        sink = create_sink(target, http_session)
        for call in (sink.write([b"m value=3 3"]), sink.check()):
            with pytest.raises(DeliveryError) as exc:
                await call
            assert exc.value.category is ErrorCategory.AUTH
            assert exc.value.status == status
            assert "wrong-secret" not in exc.value.message
            assert "wrong-secret" not in repr(exc.value)
        assert "wrong-secret" not in repr(target)
        assert "wrong-secret" not in repr(sink)


async def test_v1_too_large(
    influxdb_v1_small_body: InfluxV1Server,
    http_session: aiohttp.ClientSession,
    socket_enabled: None,
) -> None:
    """A body over ``max-body-size`` is a 413: TOO_LARGE (the uploader splits)."""
    db = unique_name("db")
    await influxdb_v1_small_body.acreate_database(db)
    sink = create_sink(v1(influxdb_v1_small_body.url, db), http_session)
    await sink.write([b"m value=1 1"])
    with pytest.raises(DeliveryError) as exc:
        await sink.write([b"m value=%d %d" % (i, i) for i in range(100)])
    assert exc.value.category is ErrorCategory.TOO_LARGE
    assert exc.value.status == 413


async def test_v2_api_on_influxdb_1_6_is_wrong_api(
    influxdb_v1: InfluxV1Server, influx_db: str, http_session: aiohttp.ClientSession
) -> None:
    """InfluxDB < 1.8 has no /api/v2/write: a plain-text 404, reported as the wrong API."""
    sink = create_sink(
        InfluxV2Target(url=influxdb_v1.url, org="o", bucket=influx_db, token="tok-secret"),
        http_session,
    )
    for call in (sink.write([b"m value=1 1"]), sink.check()):
        with pytest.raises(DeliveryError) as exc:
            await call
        assert exc.value.category is ErrorCategory.NOT_FOUND
        assert "wrong API version" in exc.value.message
        assert "tok-secret" not in exc.value.message


async def test_connection_refused_is_network(http_session: aiohttp.ClientSession) -> None:
    """Nothing listens on the port: NETWORK, transient."""
    sink = create_sink(v1(f"http://127.0.0.1:{free_port()}", "db"), http_session)
    with pytest.raises(DeliveryError) as exc:
        await sink.write([b"m value=1 1"])
    assert exc.value.category is ErrorCategory.NETWORK
    assert exc.value.transient
    assert exc.value.status is None


async def test_v1_stopped_then_restarted(
    influxdb_v1: InfluxV1Server, influx_db: str, http_session: aiohttp.ClientSession
) -> None:
    """A stopped server is NETWORK; after a restart on the same port the write succeeds."""
    sink = create_sink(v1(influxdb_v1.url, influx_db), http_session)
    influxdb_v1.stop()
    try:
        with pytest.raises(DeliveryError) as exc:
            await sink.write([b"m value=1 1"])
        assert exc.value.category is ErrorCategory.NETWORK
    finally:
        influxdb_v1.start()
    await sink.write([b"m value=1 1"])
    assert len(await influxdb_v1.aquery("SELECT * FROM m", db=influx_db)) == 1


async def test_v1_paused_server_times_out(
    influxdb_v1: InfluxV1Server, influx_db: str, http_session: aiohttp.ClientSession
) -> None:
    """A SIGSTOPped server accepts the connection and never answers: TIMEOUT.

    After SIGCONT it still stores the point: a timeout does not mean "not written".
    """
    sink = create_sink(v1(influxdb_v1.url, influx_db), http_session, timeout=0.5)
    influxdb_v1.pause()
    try:
        with pytest.raises(DeliveryError) as exc:
            await sink.write([b"m value=9 9"])
        assert exc.value.category is ErrorCategory.TIMEOUT
        assert exc.value.transient
    finally:
        influxdb_v1.resume()
    for _ in range(100):
        if await influxdb_v1.aquery("SELECT * FROM m", db=influx_db):
            break
        await asyncio.sleep(0.05)
    assert (await influxdb_v1.aquery("SELECT value FROM m", db=influx_db))[0]["value"] == 9


# --- v2 API, real VictoriaMetrics ---------------------------------------------------


async def test_v2_write_to_victoria_metrics(
    victoria_metrics: VictoriaMetricsServer,
    vm_measurement: str,
    http_session: aiohttp.ClientSession,
) -> None:
    """The v2 write path (org, bucket, ns precision, token header) stores points."""
    sink = create_sink(
        InfluxV2Target(url=victoria_metrics.url, org="o", bucket="b", token="tok"), http_session
    )
    await sink.check()
    ts = int(datetime.now(UTC).timestamp()) * 1_000_000_000
    await sink.write(
        [
            f"{vm_measurement},entity_id=a value=1.5 {ts}".encode(),
            f"{vm_measurement},entity_id=b value=2.5 {ts}".encode(),
        ]
    )
    series = await victoria_metrics.aexport(f'{{__name__="{vm_measurement}_value"}}')
    for _ in range(50):  # the second series may become searchable a moment later
        if len(series) == 2:
            break
        await asyncio.sleep(0.1)
        series = await victoria_metrics.aexport(f'{{__name__="{vm_measurement}_value"}}')
    got = {s["metric"]["entity_id"]: (s["values"], s["timestamps"]) for s in series}
    assert got == {"a": ([1.5], [ts // 1_000_000]), "b": ([2.5], [ts // 1_000_000])}


async def test_v2_bad_line_on_victoria_metrics(
    victoria_metrics: VictoriaMetricsServer, http_session: aiohttp.ClientSession
) -> None:
    """VictoriaMetrics answers 400 with a text body for an unparsable line: BAD_DATA."""
    sink = create_sink(
        InfluxV2Target(url=victoria_metrics.url, org="o", bucket="b", token="t"), http_session
    )
    with pytest.raises(DeliveryError) as exc:
        await sink.write([b"garbage line"])
    assert exc.value.category is ErrorCategory.BAD_DATA
    assert "garbage line" in exc.value.message


async def test_gzip_body_stored_by_influxdb_1_6(
    influxdb_v1: InfluxV1Server, influx_db: str, http_session: aiohttp.ClientSession
) -> None:
    """InfluxDB 1.6.7 stores a gzip /write body: 2 000 points sent, 2 000 counted."""
    sink = create_sink(v1(influxdb_v1.url, influx_db), http_session)
    assert isinstance(sink, sinks.InfluxV1Sink)
    lines = [f"m,entity_id=e{i % 50} value={i}.5 {1_000_000_000 + i}".encode() for i in range(2000)]
    await sink.write(lines)
    (row,) = await influxdb_v1.aquery("SELECT COUNT(value) FROM m", db=influx_db)
    assert row["count"] == 2000


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_gzip_body_stored_by_victoria_metrics(
    victoria_metrics: VictoriaMetricsServer,
    vm_measurement: str,
    http_session: aiohttp.ClientSession,
    version: str,
) -> None:
    """VictoriaMetrics stores gzip /write and /api/v2/write bodies: 500 points sent, 500 stored."""
    target: InfluxV1Target | InfluxV2Target = (
        v1(victoria_metrics.url)
        if version == "v1"
        else InfluxV2Target(url=victoria_metrics.url, org="o", bucket="b", token="t")
    )
    sink = create_sink(target, http_session)
    ts = int(datetime.now(UTC).timestamp()) * 1_000_000_000
    await sink.write(
        [
            f"{vm_measurement},entity_id=a value={i} {ts + i * 1_000_000}".encode()
            for i in range(500)
        ]
    )
    selector = f'{{__name__="{vm_measurement}_value"}}'
    stored = 0
    for _ in range(50):  # rows become searchable a moment after the write
        stored = sum(len(s["values"]) for s in await victoria_metrics.aexport(selector))
        if stored == 500:
            break
        await asyncio.sleep(0.1)
    assert stored == 500


# --- fake server: request shape ----------------------------------------------------


async def test_v1_request_shape_and_path_prefix(socket_enabled: None) -> None:
    """Fake server: path prefix kept, basic auth header, query params, body joined and gzipped."""
    async with (
        fake_server(answer(204)) as server,
        aiohttp.ClientSession() as session,
    ):
        target = v1(
            f"{server.url}/influx/",
            "home",
            retention_policy="rp1",
            username="u",
            password="pw-secret",
            precision="ms",
        )
        sink = create_sink(target, session)
        assert sink.endpoint == f"{server.url}/influx"
        assert "pw-secret" not in repr(sink)
        await sink.write([b"a v=1", b"b v=2"])
    (req,) = server.seen
    assert (req.method, req.path) == ("POST", "/influx/write")
    assert req.query == {"db": "home", "rp": "rp1", "precision": "ms"}
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"u:pw-secret").decode()
    assert "p" not in req.query  # the password never travels in the URL
    assert req.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(req.body) == b"a v=1\nb v=2"


async def test_v2_request_shape(socket_enabled: None) -> None:
    """Fake server: /api/v2/write with org, bucket, precision=ns and the token header."""
    async with fake_server(answer(204)) as server, aiohttp.ClientSession() as session:
        sink = create_sink(
            InfluxV2Target(url=f"{server.url}/p", org="my org", bucket="b", token="tok-secret"),
            session,
        )
        await sink.write([b"a v=1", b"b v=2"])
    (req,) = server.seen
    assert req.path == "/p/api/v2/write"
    assert req.query == {"org": "my org", "bucket": "b", "precision": "ns"}
    assert req.headers["Authorization"] == "Token tok-secret"
    assert req.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(req.body) == b"a v=1\nb v=2"


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_uncompressed_when_turned_off(socket_enabled: None, version: str) -> None:
    """Fake server: with compress=False the body is the plain lines, no Content-Encoding."""
    async with fake_server(answer(204)) as server, aiohttp.ClientSession() as session:
        target: InfluxV1Target | InfluxV2Target = (
            v1(server.url)
            if version == "v1"
            else InfluxV2Target(url=server.url, org="o", bucket="b", token="t")
        )
        await create_sink(target, session, compress=False).write([b"a v=1", b"b v=2"])
    (req,) = server.seen
    assert "Content-Encoding" not in req.headers
    assert req.body == b"a v=1\nb v=2"


def counting_offload(calls: list[str]) -> Callable[..., Awaitable[Any]]:
    """An offload that runs inline and records what it was handed."""

    async def offload(fn: Callable[..., Any], *args: Any) -> Any:
        calls.append(fn.__name__)
        return fn(*args)

    return offload


async def test_gzip_runs_through_offload(socket_enabled: None) -> None:
    """Fake server: the compression is handed to the offload callable (HA's executor)."""
    calls: list[str] = []
    offload = counting_offload(calls)
    async with fake_server(answer(204)) as server, aiohttp.ClientSession() as session:
        await create_sink(v1(server.url), session, offload=offload).write([b"a v=1"])
        await create_sink(v1(server.url), session, offload=offload).write([])
    assert calls == ["gzip_lines"]  # an empty body is not compressed
    assert gzip.decompress(server.seen[0].body) == b"a v=1"


async def test_prepared_body_is_written_by_influxdb_1_6(
    influxdb_v1: InfluxV1Server, influx_db: str, http_session: aiohttp.ClientSession
) -> None:
    """A body prepared ahead (gzip) is the one written; another batch is compressed afresh.

    Figures: 3 writes, 4 compressions (1 ahead, 1 prepared but not written,
    1 for the batch written without one); InfluxDB 1.6.7 counts 1 001 points
    (1 000 of the batch written twice, same timestamps, and 1 other).
    """
    calls: list[str] = []
    sink = create_sink(
        v1(influxdb_v1.url, influx_db), http_session, offload=counting_offload(calls)
    )
    batch = [f"m,entity_id=e{i % 10} value={i} {1_000_000_000 + i}".encode() for i in range(1000)]
    await sink.prepare(batch)
    assert calls == ["gzip_lines"]
    await sink.write(batch)
    assert calls == ["gzip_lines"]  # the prepared body
    await sink.prepare(batch)
    await sink.write([b"m,entity_id=other value=1 1"])  # not the prepared sequence
    assert len(calls) == 3
    await sink.write(batch)  # a prepared body is used once
    assert len(calls) == 4
    (row,) = await influxdb_v1.aquery("SELECT COUNT(value) FROM m", db=influx_db)
    assert row["count"] == 1001


async def test_prepared_data_api_body_keeps_its_idempotency_key(socket_enabled: None) -> None:
    """Fake server: the prepared gzip JSON and its key are sent; a replay carries the same key."""
    calls: list[str] = []
    batch = [json.dumps({"n": i}).encode() for i in range(100)]
    async with fake_server(answer(200)) as server, aiohttp.ClientSession() as session:
        sink = create_sink(
            DataApiTarget(url=server.url, token="t0ken"), session, offload=counting_offload(calls)
        )
        await sink.prepare(batch)
        await sink.write(batch)
        await sink.write(batch)
    assert calls == ["encode", "encode"]  # ahead, then the replay without a prepared body
    first, replay = server.seen
    assert json.loads(gzip.decompress(first.body)) == [{"n": i} for i in range(100)]
    assert first.body == replay.body
    assert first.headers["Idempotency-Key"] == replay.headers["Idempotency-Key"]


async def test_v2_check_accepts_influxdb2_empty_write_answer(socket_enabled: None) -> None:
    """Fake server (no InfluxDB 2.x here; the answer is its write handler's, sent only
    after token, org, bucket and permission passed): the check passes.
    """
    handler = answer(
        400,
        '{"code":"invalid","message":"writing requires points"}',
        content_type="application/json",
    )
    async with fake_server(handler) as server, aiohttp.ClientSession() as session:
        sink = create_sink(InfluxV2Target(url=server.url, org="o", bucket="b", token="t"), session)
        await sink.check()
    assert server.seen[0].body == b""


NGINX_PLAIN_HTTP = (
    b"<html><head><title>400 The plain HTTP request was sent to HTTPS port</title></head>"
    b"<body><center><h1>400 Bad Request</h1>"
    b"<center>The plain HTTP request was sent to HTTPS port</center></body></html>"
)


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (400, "text/html", NGINX_PLAIN_HTTP),
        (400, "application/json", b'{"code":"invalid","message":"unable to parse"}'),
        (400, "text/plain", b"writing requires points"),
        (422, "application/json", b'{"error":"unprocessable"}'),
    ],
)
async def test_v2_check_refuses_other_400(
    socket_enabled: None, status: int, content_type: str, body: bytes
) -> None:
    """Real TCP proxy answering every request itself (what nginx does for plain HTTP on its
    HTTPS port): any 400 / 422 but InfluxDB 2's exact JSON is REJECTED, never success.

    Figure: 1 request sent, the check fails with REJECTED quoting the server.
    """
    reason = {400: "Bad Request", 422: "Unprocessable Entity"}[status]
    raw = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    requests: list[Mode] = []
    async with FaultProxy(free_port(), mode=Mode.ANSWER) as proxy:
        proxy.answer = raw
        proxy.on_request = requests.append
        async with aiohttp.ClientSession() as session:
            sink = create_sink(
                InfluxV2Target(url=proxy.url, org="o", bucket="b", token="tok-secret"), session
            )
            with pytest.raises(DeliveryError) as exc:
                await sink.check()
    assert exc.value.category is ErrorCategory.REJECTED
    assert exc.value.status == status
    assert "tok-secret" not in exc.value.message
    assert len(requests) == 1
    if body is NGINX_PLAIN_HTTP:
        assert "plain HTTP request was sent to HTTPS port" in exc.value.message


async def test_v2_check_on_victoria_metrics(
    victoria_metrics: VictoriaMetricsServer, http_session: aiohttp.ClientSession
) -> None:
    """Real VictoriaMetrics answers 204 to the empty test write: the check passes."""
    sink = create_sink(
        InfluxV2Target(url=victoria_metrics.url, org="o", bucket="b", token="t"), http_session
    )
    await sink.check()


async def test_data_api_write_and_check(socket_enabled: None) -> None:
    """Fake server: gzip JSON array, bearer token, idempotency key; check hits /health."""
    async with fake_server(answer(200, "{}")) as server, aiohttp.ClientSession() as session:
        target = DataApiTarget(url=f"{server.url}/api/", token="bearer-secret")
        assert "bearer-secret" not in repr(target)
        sink = create_sink(target, session)
        await sink.check()
        await sink.write([b'{"a":1}', b'{"b":2}'])
        await sink.write([b'{"a":1}', b'{"b":2}'])
    health, empty, first, replay = server.seen
    assert (health.method, health.path) == ("GET", "/api/health")
    assert gzip.decompress(empty.body) == b"[]"
    assert (first.method, first.path) == ("POST", "/api/events")
    assert json.loads(gzip.decompress(first.body)) == [{"a": 1}, {"b": 2}]
    assert first.headers["Content-Encoding"] == "gzip"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Authorization"] == "Bearer bearer-secret"
    assert first.headers["Idempotency-Key"] == hashlib.sha256(b'[{"a":1},{"b":2}]').hexdigest()
    assert replay.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    assert replay.body == first.body


async def test_data_api_check_failures(socket_enabled: None) -> None:
    """Fake server: no /health → NOT_FOUND; a 401 on the empty POST → AUTH."""

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/health":
            return web.Response(status=204)
        return web.json_response({"detail": "bad token"}, status=401)

    async with fake_server(handler) as server, aiohttp.ClientSession() as session:
        sink = create_sink(DataApiTarget(url=server.url, token="t"), session)
        with pytest.raises(DeliveryError) as exc:
            await sink.check()
        assert exc.value.category is ErrorCategory.AUTH
    async with fake_server(answer(404, "nope")) as server, aiohttp.ClientSession() as session:
        sink = create_sink(DataApiTarget(url=server.url, token="t"), session)
        with pytest.raises(DeliveryError) as exc:
            await sink.check()
        assert exc.value.category is ErrorCategory.NOT_FOUND


@pytest.mark.parametrize(
    ("status", "body", "ok"),
    [
        (200, '{"results":[{"series":[{"values":[["autogen"],["rp1"]]}]}]}', True),
        (200, '{"results":[{"series":[{"values":[["autogen"]]}]}]}', False),
        (403, '{"error":"not authorized"}', True),  # may not read: the first write tells
        (200, "garbage", True),
    ],
)
async def test_v1_check_retention_policy_query(
    status: int, body: str, ok: bool, socket_enabled: None
) -> None:
    """Fake server: servers that accept an empty write to a missing RP are caught by the query."""

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/write":
            return web.Response(status=204)
        assert request.query["q"] == 'SHOW RETENTION POLICIES ON "h\\"db"'
        return web.Response(status=status, text=body)

    async with fake_server(handler) as server, aiohttp.ClientSession() as session:
        sink = create_sink(v1(server.url, 'h"db', retention_policy="rp1"), session)
        if ok:
            await sink.check()
            return
        with pytest.raises(DeliveryError) as exc:
            await sink.check()
    assert exc.value.category is ErrorCategory.NOT_FOUND
    assert "retention policy not found: rp1" in exc.value.message


# --- fake server: every status branch ------------------------------------------------

HTTP_DATE = "Thu, 01 Jan 2026 12:02:00 GMT"  # NOW + 120 s


@pytest.mark.parametrize(
    ("status", "body", "headers", "category", "retry_after", "text"),
    [
        (200, "", {}, None, None, None),
        (204, "", {}, None, None, None),
        (408, "", {}, ErrorCategory.TIMEOUT, None, "HTTP 408"),
        (429, "slow down", {"Retry-After": "30"}, ErrorCategory.RATE_LIMITED, 30.0, "slow down"),
        (429, "", {"Retry-After": HTTP_DATE}, ErrorCategory.RATE_LIMITED, 120.0, "HTTP 429"),
        (429, "", {"Retry-After": "soon"}, ErrorCategory.RATE_LIMITED, None, "HTTP 429"),
        (
            503,
            '{"error":"request throttled, queue full"}',
            {},
            ErrorCategory.RATE_LIMITED,
            None,
            "request throttled, queue full",
        ),
        (503, "maintenance", {"Retry-After": "5"}, ErrorCategory.SERVER, 5.0, "maintenance"),
        (500, '{"error":"timeout"}', {}, ErrorCategory.SERVER, None, "HTTP 500: timeout"),
        (502, "<html>bad gateway</html>", {}, ErrorCategory.SERVER, None, "HTTP 502"),
        (504, "", {}, ErrorCategory.SERVER, None, "HTTP 504"),
        (
            500,
            '{"error":"retention policy not found: x"}',
            {},
            ErrorCategory.NOT_FOUND,
            None,
            "retention policy not found",
        ),
        (413, "", {}, ErrorCategory.TOO_LARGE, None, "413"),
        (400, '{"error":"partial write: x"}', {}, ErrorCategory.BAD_DATA, None, "partial write"),
        (
            422,
            '{"code":"unprocessable entity","message":"failure writing points"}',
            {},
            ErrorCategory.BAD_DATA,
            None,
            "failure writing points",
        ),
        (401, '{"code":"unauthorized"}', {}, ErrorCategory.AUTH, None, "HTTP 401"),
        (403, "", {}, ErrorCategory.AUTH, None, "HTTP 403"),
        (
            404,
            '{"code":"not found","message":"bucket \\"b\\" not found"}',
            {"Content-Type": "application/json"},
            ErrorCategory.NOT_FOUND,
            None,
            'bucket "b" not found',
        ),
        (404, "404 page not found", {}, ErrorCategory.NOT_FOUND, None, "wrong API version"),
        (405, "", {}, ErrorCategory.NOT_FOUND, None, "unexpected HTTP 405"),
        (
            301,
            "",
            {"Location": "https://u:p@example.invalid/write?p=secret"},
            ErrorCategory.NOT_FOUND,
            None,
            "redirected (HTTP 301) to https://example.invalid/write",
        ),
    ],
)
async def test_status_classification(
    *,
    status: int,
    body: str,
    headers: dict[str, str],
    category: ErrorCategory | None,
    retry_after: float | None,
    text: str | None,
    socket_enabled: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fake server: each status maps to its category, message and Retry-After."""
    real = sinks.parse_retry_after
    monkeypatch.setattr(sinks, "parse_retry_after", lambda v, now=None: real(v, now=NOW))
    content_type = headers.pop("Content-Type", "")
    handler = answer(status, body, headers, content_type)
    async with fake_server(handler) as server, aiohttp.ClientSession() as session:
        sink = create_sink(v1(server.url), session)
        if category is None:
            await sink.write([b"m v=1"])
            return
        with pytest.raises(DeliveryError) as exc:
            await sink.write([b"m v=1"])
    err = exc.value
    assert err.category is category
    assert err.status == status
    assert err.retry_after == retry_after
    assert text is not None
    assert text in err.message
    assert server.url in err.message
    assert "secret" not in err.message


def test_error_text_is_truncated() -> None:
    """Huge error bodies are cut so messages stay readable."""
    err = classify_response(400, b"x" * 10_000, {}, where="w")
    assert err is not None
    assert len(err.message) < 400


def test_redirect_to_invalid_or_relative_location() -> None:
    """A broken Location is not echoed; a relative one is shown without its query."""
    err = classify_response(302, b"", {"Location": "http://[::1"}, where="w")
    assert err is not None
    assert "<invalid URL>" in err.message
    err = classify_response(307, b"", {"Location": "/new/write?p=secret"}, where="w")
    assert err is not None
    assert "to /new/write:" in err.message


def test_error_text_from_header_when_body_empty() -> None:
    """An empty body falls back to InfluxDB's X-Influxdb-Error header."""
    err = classify_response(400, b"", {"X-Influxdb-Error": "boom"}, where="w")
    assert err is not None
    assert "boom" in err.message


# --- hostile answers: bounded reads ------------------------------------------------

HUGE = 100 * 1024 * 1024


def _deep_json(depth: int) -> str:
    return '{"error": ' + "[" * depth + "]" * depth + "}"


def test_deeply_nested_json_error_is_plain_text() -> None:
    """A 100 000-deep JSON error body (RecursionError in ``json``) is classified, no crash."""
    body = _deep_json(100_000).encode()
    err = classify_response(400, body, {"Content-Type": "application/json"}, where="w")
    assert err is not None
    assert err.category is ErrorCategory.BAD_DATA
    assert len(err.message) <= sinks.MAX_ERROR_TEXT + 50


async def _peak_during(call: Awaitable[object]) -> tuple[int, BaseException | None]:
    """Run ``call``; return the peak traced memory (bytes) and what it raised."""
    tracemalloc.start()
    try:
        try:
            await call
        except Exception as exc:
            raised: BaseException | None = exc
        else:
            raised = None
        return tracemalloc.get_traced_memory()[1], raised
    finally:
        tracemalloc.stop()


async def test_huge_error_body_is_read_bounded(socket_enabled: None) -> None:
    """Fake server streaming a 100 MiB error body: at most 8 KiB is read, then the socket closes.

    Figures: the sink's traced memory peak (the in-process test server included) stays under 4 MiB
    for a 100 MiB answer,
    the server manages to send only what socket buffers hold (< 16 MiB) before
    the client closes, and the error is classified (SERVER, one short line).
    """
    sent = 0
    chunk = b"x" * 65536

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        resp = web.StreamResponse(status=502)
        resp.content_length = HUGE
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            while sent < HUGE:
                await resp.write(chunk)
                sent += len(chunk)
        return resp

    async with fake_server(handler) as server, aiohttp.ClientSession() as session:
        sink = create_sink(v1(server.url), session)
        peak, raised = await _peak_during(sink.write([b"m v=1"]))
        for _ in range(100):  # let the handler see the closed connection
            if sent >= HUGE or not server.seen:
                break
            await asyncio.sleep(0.01)
    assert isinstance(raised, DeliveryError)
    assert raised.category is ErrorCategory.SERVER
    assert len(raised.message) < sinks.MAX_ERROR_TEXT + 100
    assert peak < 4 * 1024 * 1024
    assert sent < 16 * 1024 * 1024


def _gzip_bomb(size: int) -> bytes:
    """Gzip of ``size`` zero bytes, compressed chunk by chunk (blocking)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, packer.flush()])


async def test_gzip_bomb_error_body_is_not_inflated(socket_enabled: None) -> None:
    """Fake server answering 500 with a gzip body inflating to 200 MiB: no more than 8 KiB read.

    Figure: the compressed answer is ~200 KiB, it would inflate to 200 MiB; the
    traced memory peak of the write stays under 4 MiB and the error is SERVER.
    """
    loop = asyncio.get_running_loop()
    bomb = await loop.run_in_executor(None, _gzip_bomb, 200 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    handler = _raw_answer(500, bomb, {"Content-Encoding": "gzip", "Content-Type": "text/plain"})
    async with fake_server(handler) as server, aiohttp.ClientSession() as session:
        sink = create_sink(v1(server.url), session)
        peak, raised = await _peak_during(sink.write([b"m v=1"]))
    assert isinstance(raised, DeliveryError)
    assert raised.category is ErrorCategory.SERVER
    assert peak < 4 * 1024 * 1024


async def test_deeply_nested_json_answer(socket_enabled: None) -> None:
    """Fake server answering 400 with 100 000-deep JSON (200 KB): classified BAD_DATA, no crash."""
    body = _deep_json(100_000).encode()
    handler = _raw_answer(400, body, {"Content-Type": "application/json"})
    async with fake_server(handler) as server, aiohttp.ClientSession() as session:
        sink = create_sink(v1(server.url), session)
        with pytest.raises(DeliveryError) as exc:
            await sink.write([b"m v=1"])
        # The connection was dropped with the unread rest: the next request still works.
        with pytest.raises(DeliveryError):
            await sink.write([b"m v=2"])
    assert exc.value.category is ErrorCategory.BAD_DATA
    assert len(server.seen) == 2


def _raw_answer(status: int, body: bytes, headers: dict[str, str]) -> Handler:
    """A handler sending ``body`` bytes as they are (no compression by the server)."""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, body=body, headers=headers)

    return handler


# --- Retry-After ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("Thu, 01 Jan 2026 12:02:00 GMT", 120.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),  # in the past: retry now
        ("Thursday, 01-Jan-26 12:00:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Thu, 01 Jan 2026 12:02:00 -0000", 120.0),
        ("Thu, 99 Foo 2026 12:02:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Delta seconds and HTTP dates parse; garbage and negatives are ignored."""
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_defaults_to_now() -> None:
    """Without ``now`` the current time is used."""
    later = datetime.now(UTC) + timedelta(hours=1)
    value = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    result = parse_retry_after(value)
    assert result is not None
    assert 3500 < result <= 3600


# --- client-side failures -----------------------------------------------------------


def _self_signed() -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1."""
    import ipaddress  # noqa: PLC0415 - only this helper needs them
    from pathlib import Path  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp, "c.pem"), Path(tmp, "k.pem")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


async def test_untrusted_certificate_is_tls(socket_enabled: None) -> None:
    """Fake HTTPS server with a self-signed cert: TLS (config); ``ssl=False`` accepts it."""
    loop = asyncio.get_running_loop()
    ctx = await loop.run_in_executor(None, _self_signed)
    # The client aborts the handshake; asyncio reports that server-side reset to the
    # loop's exception handler, which Home Assistant's test harness turns into a failure.
    previous = loop.get_exception_handler()

    def ignore_handshake_reset(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), ConnectionResetError | ssl.SSLError):
            return
        if previous is not None:
            previous(loop, context)
        else:  # pragma: no cover
            loop.default_exception_handler(context)

    loop.set_exception_handler(ignore_handshake_reset)
    try:
        await _tls_round(ctx)
    finally:
        loop.set_exception_handler(previous)


async def _tls_round(ctx: ssl.SSLContext) -> None:
    async with (
        fake_server(answer(204), ssl_context=ctx) as server,
        aiohttp.ClientSession() as session,
    ):
        sink = create_sink(v1(server.url), session)
        with pytest.raises(DeliveryError) as exc:
            await sink.write([b"m v=1"])
        assert exc.value.category is ErrorCategory.TLS
        assert not exc.value.transient
        await create_sink(v1(server.url), session, ssl=False).write([b"m v=1"])
    assert len(server.seen) == 1


class FailingResolver(aiohttp.abc.AbstractResolver):
    """A resolver that fails like a DNS lookup of an unknown host (no network needed)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        """Fail."""
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        """Nothing to release."""


async def test_dns_failure(socket_enabled: None) -> None:
    """Fake resolver (tests have no DNS): an unknown host is DNS, transient."""
    connector = aiohttp.TCPConnector(resolver=FailingResolver())
    async with aiohttp.ClientSession(connector=connector) as session:
        sink = create_sink(
            InfluxV2Target(url="https://influx.example.invalid", org="o", bucket="b", token="t"),
            session,
        )
        with pytest.raises(DeliveryError) as exc:
            await sink.write([b"m v=1"])
    assert exc.value.category is ErrorCategory.DNS
    assert exc.value.transient
    assert "Name or service not known" in exc.value.message
    assert "https://influx.example.invalid/api/v2/write" in exc.value.message


async def test_server_disconnect_is_network(socket_enabled: None) -> None:
    """Fake server that drops the connection mid-request: NETWORK."""

    async def handler(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=204)

    async with fake_server(handler) as server, aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError) as exc:
            await create_sink(v1(server.url), session).write([b"m v=1"])
    assert exc.value.category is ErrorCategory.NETWORK


async def test_cancellation_propagates(socket_enabled: None) -> None:
    """Fake server that never answers: cancelling the write raises CancelledError untouched."""
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(_: web.Request) -> web.Response:
        started.set()
        await release.wait()
        return web.Response(status=204)

    async with fake_server(handler) as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(create_sink(v1(server.url), session).write([b"m v=1"]))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()  # let the server's handler finish before the server stops
        for _ in range(10):
            await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (TimeoutError(), ErrorCategory.TIMEOUT),
        (aiohttp.ServerTimeoutError("read"), ErrorCategory.TIMEOUT),
        (aiohttp.ServerDisconnectedError(), ErrorCategory.NETWORK),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), ErrorCategory.NETWORK),
        (ConnectionResetError(104, "Connection reset by peer"), ErrorCategory.NETWORK),
        (aiohttp.ClientPayloadError("truncated"), ErrorCategory.NETWORK),
        (ssl.SSLCertVerificationError("bad cert"), ErrorCategory.TLS),
        (aiohttp.InvalidURL("nope"), ErrorCategory.NOT_FOUND),
        (aiohttp.ClientError("odd"), ErrorCategory.SERVER),
        (ValueError("odd"), ErrorCategory.SERVER),
    ],
)
def test_exception_classification(exc: BaseException, category: ErrorCategory) -> None:
    """Unit: client-side exceptions map to categories (those hard to provoke for real)."""
    assert classify_exception(exc, where="w").category is category


def test_gaierror_in_chain_is_dns() -> None:
    """Unit: aiohttp without ClientConnectorDNSError wraps socket.gaierror: still DNS."""
    key = aiohttp.client_reqrep.ConnectionKey(
        "h", 80, False, True, None, None, None
    )  # minimal key for the error's message
    inner = aiohttp.ClientConnectorError(key, socket.gaierror(-2, "Name or service not known"))
    assert classify_exception(inner, where="w").category is ErrorCategory.DNS
    wrapped = RuntimeError("x")
    wrapped.__cause__ = socket.gaierror(-2, "nope")
    assert classify_exception(wrapped, where="w").category is ErrorCategory.DNS
    err = DeliveryError(ErrorCategory.AUTH, "m")
    assert classify_exception(err, where="w") is err


# --- construction --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["ftp://host", "not a url", "http://", "", "http://[::1", "http://u:p@:80"]
)
def test_invalid_url(url: str) -> None:
    """An unusable URL is a NOT_FOUND configuration error at creation."""
    with pytest.raises(DeliveryError) as exc:
        create_sink(v1(url), None)  # type: ignore[arg-type]
    assert exc.value.category is ErrorCategory.NOT_FOUND


def test_invalid_precision() -> None:
    """Only InfluxDB's precisions are accepted."""
    with pytest.raises(ValueError, match="precision"):
        create_sink(v1("http://127.0.0.1:1", precision="xs"), None)  # type: ignore[arg-type]


def test_url_override_and_secrets_in_url() -> None:
    """``url=`` replaces the target's URL; credentials in it never reach the endpoint."""
    target = InfluxV2Target(url="http://primary:8086", org="o", bucket="b", token="tok")
    sink = create_sink(
        target,
        None,  # type: ignore[arg-type]
        url="https://user:pw-secret@backup:8443/influx/?x=1",
    )
    assert sink.endpoint == "https://backup:8443/influx"
    assert "pw-secret" not in repr(sink)
    assert "tok" not in repr(target)
