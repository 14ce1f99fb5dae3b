"""Real TLS for tests: a private CA, certificates for 127.0.0.1 and a TLS proxy.

:func:`make_pki` (blocking: run it in the executor) writes a CA certificate and
two server certificates for ``127.0.0.1`` into a directory: one signed by that
CA and one self-signed (what a reverse proxy serves before its real
certificate is installed). :class:`TlsProxy` terminates TLS on an ephemeral
127.0.0.1 port and forwards the plain bytes to a real upstream server; its
certificate can be swapped (:meth:`TlsProxy.serve`), which also drops open
connections so pooled keep-alive sockets cannot keep the old certificate.
"""

import asyncio
from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import ipaddress
from pathlib import Path
import ssl
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
_CHUNK = 65536


@dataclass(frozen=True, kw_only=True)
class Pki:
    """Paths of the generated PEM files."""

    ca_cert: Path
    signed_cert: Path
    signed_key: Path
    self_signed_cert: Path
    self_signed_key: Path

    def server_context(self, *, trusted: bool) -> ssl.SSLContext:
        """A server context with the CA-signed (``trusted``) or the self-signed certificate.

        Blocking (reads files): run it in the executor.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if trusted:
            ctx.load_cert_chain(self.signed_cert, self.signed_key)
        else:
            ctx.load_cert_chain(self.self_signed_cert, self.self_signed_key)
        return ctx


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Name | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    ca: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        if issuer_key is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False,
            )
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    """Generate a CA, a CA-signed and a self-signed certificate for 127.0.0.1 (blocking)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("ha_ingestor test CA", ca_key, ca=True)
    signed_key = ec.generate_private_key(ec.SECP256R1())
    signed = _certificate(HOST, signed_key, issuer=ca.subject, issuer_key=ca_key)
    self_key = ec.generate_private_key(ec.SECP256R1())
    self_signed = _certificate(HOST, self_key)
    pki = Pki(
        ca_cert=directory / "ca.pem",
        signed_cert=directory / "server.pem",
        signed_key=directory / "server.key",
        self_signed_cert=directory / "self.pem",
        self_signed_key=directory / "self.key",
    )
    pem = serialization.Encoding.PEM
    pki.ca_cert.write_bytes(ca.public_bytes(pem))
    pki.signed_cert.write_bytes(signed.public_bytes(pem))
    _write_key(pki.signed_key, signed_key)
    pki.self_signed_cert.write_bytes(self_signed.public_bytes(pem))
    _write_key(pki.self_signed_key, self_key)
    return pki


@contextlib.contextmanager
def ignore_handshake_errors(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Keep refused handshakes out of the loop's exception handler.

    A client that rejects the certificate aborts the handshake; asyncio reports
    that server-side error to the loop's handler, which Home Assistant's test
    harness turns into a test failure. It is the expected outcome here.
    """
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), ConnectionResetError | ssl.SSLError):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)


class TlsProxy:
    """TLS on 127.0.0.1 in front of a plain-HTTP upstream; use as ``async with``."""

    def __init__(self, upstream_port: int, context: ssl.SSLContext) -> None:
        """Terminate TLS with ``context`` and forward to ``127.0.0.1:upstream_port``."""
        self.upstream_port = upstream_port
        self.context = context
        self.handshakes = 0
        self._server: asyncio.Server | None = None
        self._port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """Base URL (https) of the proxy."""
        return f"https://{HOST}:{self._port}"

    async def __aenter__(self) -> Self:
        """Listen on an ephemeral port."""
        await self._listen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop listening and drop every connection."""
        await self._stop()

    async def serve(self, context: ssl.SSLContext) -> None:
        """Present another certificate from now on, on the same port."""
        await self._stop()
        self.context = context
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, HOST, self._port, ssl=self.context, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.handshakes += 1
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream_port)
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except OSError:
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            with contextlib.suppress(OSError):
                dst.write_eof()
