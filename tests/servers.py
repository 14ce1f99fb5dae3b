"""Real InfluxDB 1.x and VictoriaMetrics servers as pytest fixtures.

Load it as a plugin (``pytest_plugins = ["tests.servers"]`` or ``-p tests.servers``).

Session-scoped fixtures start one server each on a free 127.0.0.1 port with a
throwaway data directory and stop it at the end of the session:

* ``influxdb_v1`` - InfluxDB 1.x (Debian ``influxd``), no auth;
* ``influxdb_v1_auth`` - a second instance with ``auth-enabled`` and an admin user
  (:attr:`InfluxV1Server.admin`);
* ``influxdb_v1_small_body`` - a third instance with a tiny ``max-body-size`` (413);
* ``victoria_metrics`` - VictoriaMetrics (``/write`` and ``/api/v2/write``).

Function-scoped helpers give each test its own names so tests stay independent:
``influx_db`` (a fresh database on ``influxdb_v1``, dropped afterwards) and
``vm_measurement`` (a unique measurement name: VictoriaMetrics has no databases,
and ``/api/v2/write`` does not label series with the bucket).

pytest-homeassistant-custom-component blocks socket creation in every test and
DNS for anything but loopback. The per-test fixtures therefore request
``socket_enabled`` (tests using only a session fixture must request it
themselves), and the session fixtures lift the block just while they talk to
the server. Helpers come in two flavours: blocking ones (``query``) for fixtures
and sync code, and aiohttp-based ones (``aquery``) for async tests, which must not
block the event loop nor leave executor threads behind.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
import contextlib
from dataclasses import dataclass, field
import http.client
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import time
from types import ModuleType
from typing import Any
import urllib.parse
import uuid

import aiohttp
import pytest

pytest_socket: ModuleType | None
try:  # pytest-socket is how phcc blocks sockets; absent elsewhere
    import pytest_socket
except ImportError:  # pragma: no cover - depends on the environment
    pytest_socket = None

HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
LOG_TAIL_CHARS = 3000


@contextlib.contextmanager
def real_sockets() -> Iterator[None]:
    """Temporarily lift pytest-socket's block (session fixtures run inside a test's setup)."""
    if pytest_socket is None:  # pragma: no cover
        yield
        return
    saved = socket.socket, socket.getaddrinfo
    socket.socket = pytest_socket._true_socket  # type: ignore[misc]
    # Older pytest-socket releases (minimum HA run) do not guard getaddrinfo.
    guarded = getattr(pytest_socket, "_guarded_getaddrinfo", None)
    if guarded is not None and socket.getaddrinfo is guarded:
        socket.getaddrinfo = pytest_socket._true_getaddrinfo
    try:
        yield
    finally:
        socket.socket, socket.getaddrinfo = saved  # type: ignore[misc]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with real_sockets(), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """Blocking HTTP request (for fixtures and sync code); returns (status, body)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    with real_sockets():
        conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "<no log>"


def _rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten an InfluxDB /query JSON answer into one dict per row."""
    rows: list[dict[str, Any]] = []
    for result in payload.get("results", []):
        if "error" in result:
            raise RuntimeError(f"InfluxDB query error: {result['error']}")
        for series in result.get("series", []):
            for values in series.get("values", []):
                row = {"_measurement": series.get("name"), **series.get("tags", {})}
                row.update(zip(series["columns"], values, strict=True))
                rows.append(row)
    if "error" in payload:
        raise RuntimeError(f"InfluxDB query error: {payload['error']}")
    return rows


@dataclass(kw_only=True)
class _Process:
    """A server subprocess that can be stopped, restarted, paused and resumed."""

    name: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8086``."""
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the server's stdout and stderr go."""
        return self.workdir / f"{self.name}.log"

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        """Start (or restart, same port and data) the server and wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            return
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._argv(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if self._ready():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not become ready on {self.url} within {READY_TIMEOUT:.0f} s; "
            f"log tail:\n{_log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the data directory is kept."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # A paused process ignores SIGTERM until continued.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP the server: connections are accepted by the kernel but never answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self._wait_state(stopped=True)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self._wait_state(stopped=False)

    def _wait_state(self, *, stopped: bool) -> None:
        # Signals are delivered asynchronously: wait until the kernel reports the
        # new state so that the next request really meets a frozen server.
        assert self.proc is not None
        stat = Path(f"/proc/{self.proc.pid}/stat")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                state = stat.read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return  # no procfs: best effort
            if (state in {"T", "t"}) == stopped:
                return
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        """Whether the process is alive (paused counts as alive)."""
        return self.proc is not None and self.proc.poll() is None


@dataclass(kw_only=True)
class InfluxV1Server(_Process):
    """An ``influxd`` 1.x process with blocking and async helpers.

    With ``auth_enabled`` every helper authenticates as :attr:`admin`.
    """

    rpc_port: int
    auth_enabled: bool = False
    max_body_size: int = 25_000_000
    admin: tuple[str, str] = ("admin", "admin-secret")

    def config_text(self) -> str:
        """The generated influxd TOML config."""
        d = self.workdir
        return f"""\
reporting-enabled = false
bind-address = "{HOST}:{self.rpc_port}"

[meta]
  dir = "{d}/meta"
  logging-enabled = false

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  index-version = "inmem"

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{HOST}:{self.port}"
  auth-enabled = {"true" if self.auth_enabled else "false"}
  log-enabled = false
  pprof-enabled = false
  max-body-size = {self.max_body_size}

[logging]
  level = "error"
  suppress-logo = true

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[retention]
  enabled = false

[shard-precreation]
  enabled = false

[ifql]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
"""

    def _argv(self) -> list[str]:
        config = self.workdir / "influxd.toml"
        config.write_text(self.config_text())
        return ["influxd", "run", "-config", str(config)]

    def _ready(self) -> bool:
        status, _ = http_request("GET", f"{self.url}/ping", timeout=1)
        return status == 204

    def start(self) -> None:
        """Start the server; on an auth instance also create the admin user once."""
        super().start()
        if self.auth_enabled:
            # Allowed without credentials only while no user exists; a restart keeps it.
            user, password = self.admin
            self.query(f"CREATE USER {user} WITH PASSWORD '{password}' WITH ALL PRIVILEGES")

    def _params(self, params: dict[str, str]) -> str:
        if self.auth_enabled:
            params = {"u": self.admin[0], "p": self.admin[1], **params}
        return urllib.parse.urlencode(params)

    def query(self, q: str, db: str | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL (POST /query, ns epochs); return one dict per row."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        status, body = http_request("POST", f"{self.url}/query?{self._params(params)}")
        if status != 200:
            raise RuntimeError(f"query {q!r} -> HTTP {status}: {body[:300]!r}")
        return _rows(json.loads(body))

    def create_database(self, name: str) -> None:
        """CREATE DATABASE (idempotent)."""
        self.query(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        """DROP DATABASE (idempotent)."""
        self.query(f'DROP DATABASE "{name}"')

    def write(self, db: str, body: bytes, *, precision: str = "ns") -> tuple[int, bytes]:
        """Raw v1 write; returns (status, body) without raising."""
        params = self._params({"db": db, "precision": precision})
        return http_request("POST", f"{self.url}/write?{params}", body=body)

    async def aquery(self, q: str, db: str | None = None) -> list[dict[str, Any]]:
        """Async :meth:`query` over aiohttp (for tests running in the event loop)."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/query?{self._params(params)}") as resp,
        ):
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"query {q!r} -> HTTP {resp.status}: {body[:300]!r}")
            return _rows(json.loads(body))

    async def acreate_database(self, name: str) -> None:
        """Async :meth:`create_database`."""
        await self.aquery(f'CREATE DATABASE "{name}"')

    async def adrop_database(self, name: str) -> None:
        """Async :meth:`drop_database`."""
        await self.aquery(f'DROP DATABASE "{name}"')

    async def awrite(self, db: str, body: bytes, *, precision: str = "ns") -> tuple[int, bytes]:
        """Async :meth:`write`."""
        params = self._params({"db": db, "precision": precision})
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/write?{params}", data=body) as resp,
        ):
            return resp.status, await resp.read()


@dataclass(kw_only=True)
class VictoriaMetricsServer(_Process):
    """A ``victoria-metrics`` process with blocking and async helpers.

    Influx points become series ``<measurement>_<field>`` with tags as labels
    (``/write?db=`` adds a ``db`` label); only numeric fields are kept.
    """

    def _argv(self) -> list[str]:
        return [
            "victoria-metrics",
            f"-httpListenAddr={HOST}:{self.port}",
            f"-storageDataPath={self.workdir / 'data'}",
            "-retentionPeriod=100y",  # test data may carry old timestamps
            "-loggerLevel=ERROR",
            "-search.disableCache",  # re-reads after new writes must see them
            "-search.latencyOffset=0s",  # otherwise points from the last 30 s are hidden
        ]

    def _ready(self) -> bool:
        status, _ = http_request("GET", f"{self.url}/health", timeout=1)
        return status == 200

    def export(self, match: str, *, wait: float = 10.0) -> list[dict[str, Any]]:
        """Flush, then ``/api/v1/export`` a series selector; one dict per series.

        Freshly written rows become searchable a second or two later even after
        ``/internal/force_flush``, so this polls until something matches or
        ``wait`` seconds passed (``wait=0`` for a single look).
        """
        query = urllib.parse.urlencode({"match[]": match})
        deadline = time.monotonic() + wait
        while True:
            status, body = http_request("GET", f"{self.url}/internal/force_flush")
            assert status == 200, body
            status, body = http_request("GET", f"{self.url}/api/v1/export?{query}")
            if status != 200:
                raise RuntimeError(f"export {match!r} -> HTTP {status}: {body[:300]!r}")
            if body.strip() or time.monotonic() >= deadline:
                return [json.loads(line) for line in body.splitlines() if line.strip()]
            time.sleep(0.1)

    async def aexport(self, match: str, *, wait: float = 10.0) -> list[dict[str, Any]]:
        """Async :meth:`export`."""
        query = urllib.parse.urlencode({"match[]": match})
        deadline = time.monotonic() + wait
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(f"{self.url}/internal/force_flush") as resp:
                    assert resp.status == 200
                async with session.get(f"{self.url}/api/v1/export?{query}") as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(
                            f"export {match!r} -> HTTP {resp.status}: {body[:300]!r}"
                        )
                if body.strip() or time.monotonic() >= deadline:
                    return [json.loads(line) for line in body.splitlines() if line.strip()]
                await asyncio.sleep(0.1)


def _require(binary: str) -> None:
    """Skip without ``binary`` locally; under CI (``CI=true``) fail: green means it ran."""
    if shutil.which(binary) is not None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{binary} not on PATH under CI: the real-server tests must run")
    pytest.skip(f"{binary} not on PATH")


def _influx(
    tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs: Any
) -> Iterator[InfluxV1Server]:
    _require("influxd")
    server = InfluxV1Server(
        name=name,
        port=free_port(),
        rpc_port=free_port(),
        workdir=tmp_path_factory.mktemp(name),
        **kwargs,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def influxdb_v1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxV1Server]:
    """A shared InfluxDB 1.x server without auth (use ``influx_db`` for a fresh database)."""
    yield from _influx(tmp_path_factory, "influxd")


@pytest.fixture(scope="session")
def influxdb_v1_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxV1Server]:
    """An InfluxDB 1.x server with ``auth-enabled``; ``.admin`` holds the admin credentials."""
    yield from _influx(tmp_path_factory, "influxd-auth", auth_enabled=True)


@pytest.fixture(scope="session")
def influxdb_v1_small_body(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxV1Server]:
    """An InfluxDB 1.x server whose ``max-body-size`` is 256 bytes (answers 413 above it)."""
    yield from _influx(tmp_path_factory, "influxd-small", max_body_size=256)


@pytest.fixture(scope="session")
def victoria_metrics(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[VictoriaMetricsServer]:
    """A shared VictoriaMetrics server (use ``vm_measurement`` for unique series names)."""
    _require("victoria-metrics")
    server = VictoriaMetricsServer(
        name="victoria-metrics", port=free_port(), workdir=tmp_path_factory.mktemp("vm")
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def unique_name(prefix: str = "t") -> str:
    """A name that no other test uses (valid as database, bucket and measurement)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def influx_db(influxdb_v1: InfluxV1Server, socket_enabled: None) -> Iterator[str]:
    """A fresh database on ``influxdb_v1`` for this test, dropped afterwards."""
    name = unique_name("db")
    influxdb_v1.create_database(name)
    yield name
    # A test may have stopped or paused the shared server: bring it back first.
    if not influxdb_v1.running:
        influxdb_v1.start()
    influxdb_v1.resume()
    influxdb_v1.drop_database(name)


@pytest.fixture
def vm_measurement(victoria_metrics: VictoriaMetricsServer, socket_enabled: None) -> Iterator[str]:
    """A measurement name unique to this test on ``victoria_metrics``."""
    yield unique_name("m")
    if not victoria_metrics.running:
        victoria_metrics.start()
    victoria_metrics.resume()


@pytest.fixture
async def http_session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session for the test, closed afterwards (sockets enabled)."""
    async with aiohttp.ClientSession() as session:
        yield session


__all__ = [
    "InfluxV1Server",
    "VictoriaMetricsServer",
    "free_port",
    "http_request",
    "real_sockets",
    "unique_name",
]
