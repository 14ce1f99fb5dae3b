"""A small fault-injecting TCP proxy (127.0.0.1 only) in front of a real server.

Modes, chosen per connection when it is accepted (:meth:`FaultProxy.set_mode`
also aborts every open connection so pooled keep-alive sockets cannot bypass
the new mode):

* ``PASS``: forward bytes both ways unchanged;
* ``RESET``: read the first request bytes, then close with RST (``SO_LINGER`` 0);
* ``BLACKHOLE``: accept and read, never answer;
* ``SLOW``: forward, but sleep ``delay`` real seconds before each chunk;
* ``ANSWER``: answer every HTTP request itself with ``answer`` (the upstream
  is never contacted), e.g. a 429 with ``Retry-After`` that a real server
  cannot produce on demand.

TLS: with :attr:`FaultProxy.tls` set to a server-side ``SSLContext`` the proxy
terminates TLS on each new connection (with the context set at that moment,
so a test can swap in a wrong certificate) and forwards plain bytes; the
modes apply after the handshake. :attr:`FaultProxy.url` is then ``https://``.
"""

import asyncio
from collections.abc import Callable
import contextlib
from enum import StrEnum
import socket
import ssl
import struct
from typing import Self

from tests.common import IN_FLIGHT

HOST = "127.0.0.1"
_CHUNK = 65536


class Mode(StrEnum):
    """What the proxy does with a new connection."""

    PASS = "pass"
    RESET = "reset"
    BLACKHOLE = "blackhole"
    SLOW = "slow"
    ANSWER = "answer"


class FaultProxy:
    """An asyncio TCP proxy with switchable faults; use as ``async with``."""

    def __init__(self, upstream_port: int, *, mode: Mode = Mode.PASS) -> None:
        """Forward to ``127.0.0.1:upstream_port``; call :meth:`start` before use."""
        self.upstream_port = upstream_port
        self.mode = mode
        self.delay = 0.0
        self.answer = b""
        #: Called once per connection (ANSWER: once per request) with the mode used.
        self.on_request: Callable[[Mode], None] | None = None
        self.connections = 0
        #: Server-side TLS context for new connections; None = plain TCP.
        self.tls: ssl.SSLContext | None = None
        #: TLS handshakes that failed (the client refused the certificate).
        self.handshake_failures = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.BaseTransport] = set()

    @property
    def port(self) -> int:
        """The listening port."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """Base URL of the proxy."""
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://{HOST}:{self.port}"

    @property
    def active(self) -> int:
        """Connection handlers still running."""
        return len(self._tasks)

    async def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._handle, HOST, 0)

    async def __aenter__(self) -> Self:
        """Start the proxy."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the proxy."""
        await self.close()

    def set_mode(self, mode: Mode, *, delay: float = 0.0, answer: bytes = b"") -> None:
        """Switch mode; open connections are aborted so the next request sees it."""
        self.mode, self.delay, self.answer = mode, delay, answer
        self._abort_all()

    async def close(self) -> None:
        """Stop listening, abort every connection and wait for every handler."""
        if self._server is not None:
            self._server.close()
        self._abort_all()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # --- internals ---------------------------------------------------------------------

    def _abort_all(self) -> None:
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    def _track(self, writer: asyncio.StreamWriter) -> None:
        self._transports.add(writer.transport)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._track(writer)
        self.connections += 1
        mode = self.mode
        upstream: asyncio.StreamWriter | None = None
        try:
            if self.tls is not None:
                try:
                    await writer.start_tls(self.tls)
                except (ssl.SSLError, OSError):
                    self.handshake_failures += 1
                    return
                self._track(writer)
            if mode is Mode.ANSWER:
                await self._answer(reader, writer)
                return
            if self.on_request is not None:
                self.on_request(mode)
            if mode is Mode.RESET:
                await reader.read(_CHUNK)
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            if mode is Mode.BLACKHOLE:
                # Tests waiting for answers must not wait for this one.
                IN_FLIGHT.held += 1
                IN_FLIGHT.progress.set()
                try:
                    while await reader.read(_CHUNK):
                        pass
                finally:
                    IN_FLIGHT.held -= 1
                return
            up_reader, upstream = await asyncio.open_connection(HOST, self.upstream_port)
            self._track(upstream)
            delay = self.delay if mode is Mode.SLOW else 0.0
            await asyncio.gather(
                self._pipe(reader, upstream, delay), self._pipe(up_reader, writer, delay)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass  # a peer went away (or we aborted it): nothing to forward any more
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._transports.discard(w.transport)
                    w.transport.abort()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
        try:
            while chunk := await src.read(_CHUNK):
                if delay:
                    await asyncio.sleep(delay)
                dst.write(chunk)
                await dst.drain()
        finally:
            with contextlib.suppress(OSError):
                if dst.can_write_eof() and not dst.transport.is_closing():
                    dst.write_eof()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read each HTTP/1.1 request (head + Content-Length body), reply ``answer``."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # client closed the keep-alive connection
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            if self.on_request is not None:
                self.on_request(Mode.ANSWER)
            writer.write(self.answer)
            await writer.drain()
