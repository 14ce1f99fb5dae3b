"""The reference data-api receiver (scripts/data_api_receiver.py) as pytest fixtures.

Load it as a plugin (``-p tests.data_api`` or ``pytest_plugins = ["tests.data_api"]``).

* ``data_api_receiver`` - a receiver subprocess started for one test on a free
  127.0.0.1 port, with a throwaway SQLite file, a test token and ``--test-mode``;
  stopped afterwards.
* ``data_api_receiver_factory`` - ``make(max_body=..., token=...)`` starts more
  receivers (e.g. with a tiny body limit for 413); all are stopped afterwards.

A :class:`DataApiReceiver` exposes ``url`` and ``token``; ``stop()`` / ``start()``
(and the event-loop friendly ``astop()`` / ``astart()``) simulate an outage on
the same port and database; ``events()`` / ``devices()`` / ``entities()`` read
the SQLite file directly (so they work while the receiver is down); the async
``inject_fault()`` / ``clear_faults()`` / ``requests()`` talk to the receiver's
``/_test/*`` admin endpoints.

Both fixtures request ``socket_enabled``: pytest-homeassistant-custom-component
blocks sockets in tests, and the tests talk to the receiver over 127.0.0.1.
"""

import asyncio
from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass, field
import json
from pathlib import Path
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from typing import Any

import aiohttp
import pytest

# Not imported from tests.servers: a -p plugin loads before conftest registers
# that module for assertion rewriting.
HOST = "127.0.0.1"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "data_api_receiver.py"
READY_MARK = b"data_api_receiver ready on "
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
DEFAULT_TOKEN = "test-token-4f1c9e"


@dataclass(kw_only=True)
class DataApiReceiver:
    """One reference receiver subprocess; data survives stop/start."""

    port: int
    workdir: Path
    token: str = DEFAULT_TOKEN
    max_body: int | None = None
    """``--max-body``; None keeps the receiver's default. Applied on the next start."""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        return f"http://{HOST}:{self.port}"

    @property
    def db_path(self) -> Path:
        """The receiver's SQLite file."""
        return self.workdir / "data_api.sqlite"

    @property
    def log_path(self) -> Path:
        """Where the receiver's stdout and stderr go."""
        return self.workdir / "data_api.log"

    @property
    def running(self) -> bool:
        """Whether the subprocess is alive."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def auth(self) -> dict[str, str]:
        """The ``Authorization`` header for raw requests."""
        return {"Authorization": f"Bearer {self.token}"}

    # -- process control ------------------------------------------------------

    def _argv(self) -> list[str]:
        argv = [
            sys.executable,
            str(SCRIPT),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--db",
            str(self.db_path),
            "--token",
            self.token,
            "--test-mode",
        ]
        if self.max_body is not None:
            argv += ["--max-body", str(self.max_body)]
        return argv

    def _spawn(self) -> int:
        """Start the subprocess; return the log offset its ready line will follow."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._argv(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        return offset

    def _is_ready(self, offset: int) -> bool:
        """Whether the ready line was printed since ``offset``; raise if it died."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            if READY_MARK in log.read():
                return True
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"data-api receiver exited; log tail:\n{self.log_tail()}")
        return False

    def _timed_out(self) -> RuntimeError:
        self.stop()
        return RuntimeError(
            f"data-api receiver not ready within {READY_TIMEOUT:.0f} s; log:\n{self.log_tail()}"
        )

    def start(self) -> None:
        """Start (or restart on the same port and database) and wait until listening."""
        if self.running:
            return
        offset = self._spawn()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._is_ready(offset):
            if time.monotonic() > deadline:
                raise self._timed_out()
            time.sleep(0.02)

    async def astart(self) -> None:
        """:meth:`start` in a thread: the event loop keeps running while it waits."""
        await asyncio.to_thread(self.start)

    def _terminate(self) -> subprocess.Popen[bytes] | None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return None
        proc.send_signal(signal.SIGTERM)
        return proc

    def stop(self) -> None:
        """Stop the receiver (SIGTERM, then SIGKILL); the database is kept."""
        if (proc := self._terminate()) is None:
            return
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    async def astop(self) -> None:
        """:meth:`stop` in a thread: the event loop keeps running while it waits."""
        await asyncio.to_thread(self.stop)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the receiver's log (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    # -- read back (SQLite, works while stopped) ------------------------------

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.db_path.exists():
            return []
        # A fresh connection per read: always sees the receiver's latest commit.
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=10)) as db:
            return db.execute(sql, args).fetchall()

    def events(self, entity_id: str | None = None) -> list[dict[str, Any]]:
        """Stored events as sent (parsed JSON), in arrival order."""
        if entity_id is None:
            rows = self._query("SELECT body FROM events ORDER BY seq")
        else:
            rows = self._query(
                "SELECT body FROM events WHERE entity_id = ? ORDER BY seq", (entity_id,)
            )
        return [json.loads(body) for (body,) in rows]

    def event_keys(self) -> list[str]:
        """Stored idempotency keys in arrival order (duplicates would show twice)."""
        return [key for (key,) in self._query("SELECT idempotency_key FROM events ORDER BY seq")]

    def _registry(self, table: str, id_col: str, include_deleted: bool) -> dict[str, Any]:
        where = "" if include_deleted else " WHERE deleted = 0"
        rows = self._query(f"SELECT {id_col}, body, deleted FROM {table}{where}")
        return {
            ident: {**json.loads(body), "deleted": bool(deleted)} for ident, body, deleted in rows
        }

    def devices(self, *, include_deleted: bool = True) -> dict[str, dict[str, Any]]:
        """Stored devices by id; tombstones have ``deleted: True``."""
        return self._registry("devices", "id", include_deleted)

    def entities(self, *, include_deleted: bool = True) -> dict[str, dict[str, Any]]:
        """Stored entities by entity_id; tombstones have ``deleted: True``."""
        return self._registry("entities", "entity_id", include_deleted)

    # -- test-mode admin endpoints --------------------------------------------

    async def _admin(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.url}{path}", json=body) as resp,
        ):
            resp.raise_for_status()
            return await resp.json()

    async def inject_fault(
        self,
        status: int | None = None,
        *,
        count: int = 1,
        retry_after: str | float | None = None,
        delay: float = 0.0,
        path: str | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``path``, or any) with ``status``.

        ``retry_after`` becomes the ``Retry-After`` header, ``delay`` seconds pass
        before answering, ``body`` replaces the default ``{"error": "injected fault"}``.
        ``status=None`` with a ``delay`` only slows requests down.
        """
        fault = {
            "status": status,
            "count": count,
            "retry_after": None if retry_after is None else str(retry_after),
            "delay": delay,
            "path": path,
            "body": body,
        }
        await self._admin("POST", "/_test/faults", fault)

    async def clear_faults(self) -> None:
        """Drop every queued fault."""
        await self._admin("DELETE", "/_test/faults")

    async def requests(self) -> list[dict[str, Any]]:
        """Recent non-admin requests (method, path, status, fault, headers of interest)."""
        return list((await self._admin("GET", "/_test/requests"))["requests"])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (sockets must be enabled)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


type ReceiverFactory = Callable[..., DataApiReceiver]


@pytest.fixture
def data_api_receiver_factory(
    tmp_path_factory: pytest.TempPathFactory, socket_enabled: None
) -> Iterator[ReceiverFactory]:
    """``make(*, max_body=None, token=DEFAULT_TOKEN)``: start a receiver for this test."""
    started: list[DataApiReceiver] = []

    def make(*, max_body: int | None = None, token: str = DEFAULT_TOKEN) -> DataApiReceiver:
        receiver = DataApiReceiver(
            port=free_port(),
            workdir=tmp_path_factory.mktemp("data_api"),
            token=token,
            max_body=max_body,
        )
        started.append(receiver)
        receiver.start()
        return receiver

    try:
        yield make
    finally:
        for receiver in started:
            receiver.stop()


@pytest.fixture
def data_api_receiver(data_api_receiver_factory: ReceiverFactory) -> DataApiReceiver:
    """A running reference receiver with default limits, fresh for this test."""
    return data_api_receiver_factory()
