"""HTTP sinks: deliver encoded payloads to InfluxDB (v1 / v2 API) or the data-api.

A sink sends one batch per :meth:`Sink.write` call and either returns (the
destination accepted every point: 2xx) or raises :class:`DeliveryError`, whose
category tells the uploader what to do. Classification
(:func:`classify_response`, :func:`classify_exception`):

==========================================  ==============  ===========================
answer                                      category        why
==========================================  ==============  ===========================
2xx                                         (success)
408                                         TIMEOUT         transient
429; 503 "request throttled" (InfluxDB 1)   RATE_LIMITED    transient, ``Retry-After``
500 / 502 / 503 / 504 / other 5xx           SERVER          transient, ``Retry-After``
500 "retention policy not found" (v1)       NOT_FOUND       a config fault, not an outage
413                                         TOO_LARGE       split the batch
400 / 422 (incl. v1 "partial write")        BAD_DATA        bisect, quarantine bad lines
401 / 403 / 407                             AUTH            pause, ask for credentials
404 JSON "database/bucket ... not found"    NOT_FOUND       pause, tell the user
404 anything else (route not found)         NOT_FOUND       wrong API version / path
3xx (redirects are not followed)            NOT_FOUND       URL must be updated
any other 4xx (405, 409, 410, 415, ...)     NOT_FOUND       see below
TLS / certificate failure                   TLS             configuration
DNS failure                                 DNS             transient
refused, reset, disconnected, other OSError NETWORK         transient
timeout (connect or read)                   TIMEOUT         transient
==========================================  ==============  ===========================

NOT_FOUND errors are :class:`NotFoundError`, typed with what is :class:`Missing`.
The v2 setup check (an empty write) accepts only 2xx and InfluxDB 2.x's own
"writing requires points" answer; any other 400 / 422 there is REJECTED.

Unknown 4xx answers are treated as a configuration fault (NOT_FOUND: "check the
URL"), never as BAD_DATA: they usually come from a reverse proxy or a wrong
endpoint, and bisecting would quarantine (lose) perfectly good points, while a
config fault pauses delivery and keeps everything spooled until the user acts.

An answer's body is read up to :data:`MAX_BODY_BYTES` (decoded) and JSON that is
nested too deeply counts as plain text, so a hostile server cannot exhaust memory
or the stack. Secrets (passwords, tokens, credentials embedded in the URL) never appear in
reprs, :attr:`Sink.endpoint` or error messages. ``asyncio.CancelledError`` is
never caught. Nothing here imports ``homeassistant``.
"""

from abc import ABC, abstractmethod
import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
import email.utils
from enum import StrEnum
import gzip
import hashlib
import json
import math
import socket
import ssl as ssl_module
from typing import Any, Final, Protocol, override
import zlib

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from .errors import DeliveryError, ErrorCategory
from .redaction import redact_secrets

MAX_ERROR_TEXT: Final = 300
#: At most this much of an answer's body is read (after decompression): enough
#: for any error message or retention-policy list, and a hostile or broken
#: server (or a gzip bomb) cannot make us buffer more.
MAX_BODY_BYTES: Final = 8192
DEFAULT_TIMEOUT: Final = 30.0
_PRECISIONS: Final = frozenset({"ns", "u", "ms", "s", "m", "h"})
#: Runs ``fn(*args)`` off the event loop and returns its result (HA's executor job).
type Offload = Callable[..., Awaitable[Any]]
#: A request body and its headers.
type Body = tuple[bytes, Mapping[str, str]]
_TRANSIENT_STATUS: Final = {
    408: ErrorCategory.TIMEOUT,
    429: ErrorCategory.RATE_LIMITED,
}
# aiohttp >= 3.11 has a dedicated DNS error; older ones wrap socket.gaierror.
_DNS_ERROR: Final[type[Exception] | None] = getattr(aiohttp, "ClientConnectorDNSError", None)
#: InfluxDB 2.x's answer to an empty write: it comes only after the token, the
#: org, the bucket and the write permission were checked (its write handler).
_EMPTY_WRITE_CODE: Final = "invalid"
_EMPTY_WRITE_MESSAGE: Final = "writing requires points"


class Missing(StrEnum):
    """What a NOT_FOUND answer says is missing or wrong."""

    DATABASE = "database"  # 404 JSON "database/bucket ... not found"
    RETENTION_POLICY = "retention_policy"
    API = "api"  # a bare 404: no such route (API version or path)
    URL = "url"  # redirected, another 4xx, or an unusable URL


class NotFoundError(DeliveryError):
    """A NOT_FOUND failure that says what is missing (typed, for the config flow)."""

    def __init__(
        self,
        missing: Missing,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Create the error; ``message`` must never contain secrets."""
        super().__init__(ErrorCategory.NOT_FOUND, message, status=status, retry_after=retry_after)
        self.missing = missing


@dataclass(frozen=True, kw_only=True)
class InfluxV1Target:
    """InfluxDB 1.x ``/write`` API (also InfluxDB 1.8+ and VictoriaMetrics)."""

    url: str
    database: str
    retention_policy: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    precision: str = "ns"


@dataclass(frozen=True, kw_only=True)
class InfluxV2Target:
    """InfluxDB 2.x / 3.x / Cloud ``/api/v2/write`` API with a token."""

    url: str
    org: str
    bucket: str
    token: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class DataApiTarget:
    """The HTTP data-api: ``POST <url>/events`` with a gzip JSON array."""

    url: str
    token: str = field(repr=False)


type Target = InfluxV1Target | InfluxV2Target | DataApiTarget


class Sink(Protocol):
    """What the uploader and the config flow need from a destination."""

    endpoint: str
    """Base URL without credentials, query or trailing slash (safe to show and log)."""

    async def write(self, payloads: Sequence[bytes]) -> None:
        """Deliver one batch; return only when the destination accepted all of it.

        Raises :class:`DeliveryError` on any failure.
        """

    async def prepare(self, payloads: Sequence[bytes]) -> None:
        """Encode the request body for ``payloads`` ahead of their :meth:`write`.

        The uploader calls it while the batch before is in flight; a following
        ``write`` of this very sequence sends the prepared body.
        """

    async def check(self) -> None:
        """Verify reachability, credentials and that the database/bucket is writable.

        Writes no data. Raises :class:`DeliveryError` describing the first problem.
        """


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delta seconds or an HTTP date.

    Returns seconds to wait (>= 0), or ``None`` when absent or unparsable. Capping
    is the retry schedule's job (``retry_after_cap``).
    """
    if value is None or not (value := value.strip()):
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # Only the non-negative finite number form is valid; "nan" / "-5" are garbage.
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _server_text(body: bytes, headers: Mapping[str, str]) -> str:
    """Extract the server's error message (InfluxDB JSON, header, or raw text)."""
    text = body.decode("utf-8", "replace").strip()
    data = _loads(text)
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str) and data[key]:
                text = data[key]
                break
    if not text:
        text = headers.get("X-Influxdb-Error", "")
    text = " ".join(text.split())  # one line, whatever the server sent
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "…"
    return text


def _loads(text: str | bytes) -> Any:
    """Parse JSON, or return ``None`` when it is not valid or nested too deeply."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # a hostile "[[[[..." exhausts the C stack guard
        return None


async def read_bounded(resp: aiohttp.ClientResponse, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read at most ``limit`` bytes of the body and inflate them, never beyond ``limit``.

    Requests go out with ``auto_decompress=False``: how much aiohttp inflates
    per network chunk differs between its releases (one 64 KiB chunk of a gzip
    bomb can become 64 MiB), so the body is inflated here, under the same bound.
    A connection with unread bytes is dropped (they would poison the pool).
    """
    raw = bytearray()
    try:
        while len(raw) < limit:
            chunk = await resp.content.read(limit - len(raw))
            if not chunk:
                break
            raw += chunk
    except aiohttp.ClientPayloadError:
        # The status already answered; a broken body only loses its text.
        resp.close()
    else:
        if not resp.content.at_eof():
            resp.close()
    return _inflate(bytes(raw), resp.headers.get("Content-Encoding", ""), limit)


def _inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """Decode a (possibly cut) gzip / deflate body into at most ``limit`` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return b""  # another coding: the status alone classifies the answer
    # 47: a gzip or zlib header, detected; -15: raw deflate, as some servers send it.
    for wbits in (47, -15):
        try:
            return zlib.decompressobj(wbits).decompress(raw, limit)
        except zlib.error:
            continue
    return b""


def _is_empty_write_answer(body: bytes) -> bool:
    """Whether ``body`` is InfluxDB 2.x's answer to an empty write (see the v2 check)."""
    data = _loads(body)
    return (
        isinstance(data, dict)
        and data.get("code") == _EMPTY_WRITE_CODE
        and data.get("message") == _EMPTY_WRITE_MESSAGE
    )


def classify_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    where: str,
    now: datetime | None = None,
) -> DeliveryError | None:
    """Map an HTTP answer to ``None`` (accepted) or the :class:`DeliveryError` to raise.

    ``where`` names the request (endpoint + path, no secrets) for the message.
    """
    if 200 <= status < 300:
        return None
    text = _server_text(body, headers)
    detail = f": {text}" if text else ""
    retry_after = parse_retry_after(headers.get("Retry-After"), now=now)
    lowered = text.lower()

    def err(category: ErrorCategory, message: str) -> DeliveryError:
        return DeliveryError(
            category, f"{message} ({where})", status=status, retry_after=retry_after
        )

    def missing(what: Missing, message: str) -> DeliveryError:
        return NotFoundError(what, f"{message} ({where})", status=status, retry_after=retry_after)

    if status in _TRANSIENT_STATUS:
        return err(_TRANSIENT_STATUS[status], f"HTTP {status}{detail}")
    if status == 503 and "throttled" in lowered:
        return err(ErrorCategory.RATE_LIMITED, f"HTTP 503 throttled{detail}")
    if status >= 500:
        if "retention policy not found" in lowered:
            # InfluxDB 1.x answers 500 for a missing retention policy: retrying never helps.
            return missing(Missing.RETENTION_POLICY, f"retention policy not found{detail}")
        return err(ErrorCategory.SERVER, f"server error HTTP {status}{detail}")
    if status == 413:
        return err(ErrorCategory.TOO_LARGE, f"batch too large (HTTP 413){detail}")
    if status in (400, 422):
        return err(ErrorCategory.BAD_DATA, f"rejected data (HTTP {status}){detail}")
    if status in (401, 403, 407):
        return err(ErrorCategory.AUTH, f"not authorized (HTTP {status}){detail}")
    if status == 404:
        if "json" in headers.get("Content-Type", "") and "not found" in lowered:
            return missing(Missing.DATABASE, text)
        return missing(
            Missing.API,
            "API endpoint not found (HTTP 404): wrong API version or URL path? "
            "InfluxDB before 1.8 has no /api/v2/write: use the v1 API",
        )
    if 300 <= status < 400:
        location = headers.get("Location", "")
        target = f" to {_safe_url(location)}" if location else ""
        return missing(Missing.URL, f"redirected (HTTP {status}){target}: update the URL")
    return missing(Missing.URL, f"unexpected HTTP {status}{detail}: check the URL")


def _safe_url(raw: str) -> str:
    """Render a URL without userinfo and query (which may hold credentials)."""
    try:
        url = URL(raw)
        if url.absolute:
            url = url.with_user(None)
        return str(url.with_query(None).with_fragment(None))
    except (TypeError, ValueError):
        return "<invalid URL>"


def classify_exception(exc: BaseException, *, where: str) -> DeliveryError:
    """Map a client-side failure (aiohttp / OS / TLS / timeout) to a :class:`DeliveryError`.

    Never pass ``asyncio.CancelledError`` here: callers let it propagate.
    """
    if isinstance(exc, DeliveryError):
        return exc
    reason = _reason(exc)
    # TLS first: aiohttp's certificate errors are also ClientConnectorErrors.
    if isinstance(
        exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl_module.SSLError
    ):
        return DeliveryError(ErrorCategory.TLS, f"TLS failure: {reason} ({where})")
    if (_DNS_ERROR is not None and isinstance(exc, _DNS_ERROR)) or _is_gaierror(exc):
        return DeliveryError(ErrorCategory.DNS, f"cannot resolve host: {reason} ({where})")
    # ServerTimeoutError is both a ClientConnectionError and a TimeoutError.
    if isinstance(exc, TimeoutError):
        return DeliveryError(ErrorCategory.TIMEOUT, f"timed out ({where})")
    if isinstance(exc, aiohttp.InvalidURL):
        return NotFoundError(Missing.URL, f"invalid URL ({where})")
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | OSError):
        return DeliveryError(ErrorCategory.NETWORK, f"connection failed: {reason} ({where})")
    return DeliveryError(ErrorCategory.SERVER, f"unexpected client error: {reason} ({where})")


def _is_gaierror(exc: BaseException) -> bool:
    """Whether a resolver failure is somewhere in the exception's chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return True
        # getattr: older aiohttp certificate errors raise on ``os_error``.
        if isinstance(current, aiohttp.ClientConnectorError) and isinstance(
            getattr(current, "os_error", None), socket.gaierror
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _reason(exc: BaseException) -> str:
    """Describe an exception briefly, without its URL."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Older aiohttp certificate errors have no usable ``os_error``.
        inner = getattr(exc, "os_error", None) or getattr(exc, "certificate_error", None)
        if inner is not None:
            detail = (
                getattr(inner, "strerror", None) or getattr(inner, "reason", None) or str(inner)
            )
            return f"{type(exc).__name__}: {detail}"
        return type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


def gzip_lines(payloads: Sequence[bytes]) -> bytes:
    """Join line-protocol lines with newlines and gzip them (level 1, no timestamp).

    Level 1: the lines of a batch repeat their measurement, tags and field
    names, so the fastest level already shrinks them several times over.
    """
    return gzip.compress(b"\n".join(payloads), compresslevel=1, mtime=0)


def _basic_auth(username: str, password: str | None) -> str:
    """Build the ``Authorization`` value for HTTP basic auth (UTF-8, as InfluxDB expects)."""
    raw = f"{username}:{password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _base_url(raw: str) -> URL:
    """Parse and validate a destination URL; raise NOT_FOUND when it is unusable."""
    try:
        url = URL(raw.strip())
    except (TypeError, ValueError):
        raise NotFoundError(Missing.URL, "invalid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise NotFoundError(
            Missing.URL, f"invalid URL {_safe_url(raw)}: need http(s)://host[:port]"
        )
    return url


def _join(base: URL, path: str) -> URL:
    """Append ``path`` to the base URL's path, keeping a reverse-proxy prefix."""
    prefix = base.raw_path.rstrip("/")
    return (
        base.with_user(None)
        .with_query(None)
        .with_fragment(None)
        .with_path(f"{prefix}/{path}", encoded=True)
    )


class _HttpSink[TargetT: Target](ABC):
    """Shared construction, request and classification plumbing for the concrete sinks."""

    def __init__(
        self,
        target: TargetT,
        session: aiohttp.ClientSession,
        *,
        url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ssl: ssl_module.SSLContext | bool = True,
        compress: bool = True,
        offload: Offload | None = None,
    ) -> None:
        """Create the sink; ``url`` overrides ``target.url`` (fallback endpoints).

        ``compress`` sends gzip line-protocol bodies (the data-api always gzips);
        ``offload`` runs CPU-heavy encoding (gzip, hashing) off the event loop,
        without it that runs inline.
        """
        self._target = target
        self._session = session
        self._base = _base_url(url or target.url)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl = ssl
        self.endpoint: str = str(_join(self._base, "")).rstrip("/")
        self._offload = offload
        self._compress = compress
        self._headers: Mapping[str, str] = {}
        # The body prepare() encoded, with the very sequence it encodes.
        self._prepared: tuple[Sequence[bytes], Body] | None = None
        secret = self._configure()
        self._secrets = (secret, self._base.password)

    @abstractmethod
    def _configure(self) -> str | None:
        """Derive the fixed request parts (headers, parameters) from the target.

        Returns the target's credential, which is kept out of every message.
        """

    async def prepare(self, payloads: Sequence[bytes]) -> None:
        """Encode the body of the coming write of ``payloads`` (see :class:`Sink`)."""
        self._prepared = None
        self._prepared = (payloads, await self._body(payloads))

    async def _take_body(self, payloads: Sequence[bytes]) -> Body:
        """Return the prepared body of ``payloads`` when there is one, else encode it now."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[0] is payloads:
            return prepared[1]
        return await self._body(payloads)

    async def _body(self, payloads: Sequence[bytes]) -> Body:
        """Return the request body for line-protocol ``payloads`` and its headers.

        Gzip (off the loop) when enabled.
        """
        if not self._compress or not payloads:
            return b"\n".join(payloads), self._headers
        return await self._run(gzip_lines, payloads), {**self._headers, "Content-Encoding": "gzip"}

    async def _run[T](self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-heavy ``fn(*args)`` off the event loop when an offload is set."""
        if self._offload is None:
            return fn(*args)
        result: T = await self._offload(fn, *args)
        return result

    def __repr__(self) -> str:
        """Representation without secrets."""
        return f"{type(self).__name__}({self.endpoint})"

    def _redact(self, text: str) -> str:
        return redact_secrets(text, self._secrets)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, CIMultiDict[str]]:
        """Send one request; return (status, body, headers) or raise a classified error."""
        url = _join(self._base, path)
        where = f"{self.endpoint}/{path}"
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout,
                ssl=self._ssl,
                # A redirected POST would turn into a GET and silently lose the body.
                allow_redirects=False,
                auto_decompress=False,  # inflated by read_bounded, within its bound
            ) as resp:
                body = await read_bounded(resp)
                return resp.status, body, CIMultiDict(resp.headers)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a DeliveryError
            raise self._scrubbed(classify_exception(exc, where=where)) from None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send one request and raise the classified error unless it was accepted."""
        status, body, resp_headers = await self._request(
            method, path, params=params, data=data, headers=headers
        )
        if (err := self._classify(status, body, resp_headers, path)) is not None:
            raise err

    def _classify(
        self, status: int, body: bytes, headers: Mapping[str, str], path: str
    ) -> DeliveryError | None:
        """:func:`classify_response` with the sink's secrets redacted from the message."""
        err = classify_response(status, body, headers, where=f"{self.endpoint}/{path}")
        return None if err is None else self._scrubbed(err)

    def _scrubbed(self, err: DeliveryError) -> DeliveryError:
        """Return ``err`` with the sink's secrets redacted from its message."""
        err.message = self._redact(err.message)
        err.args = (err.message,)
        return err


class InfluxV1Sink(_HttpSink[InfluxV1Target]):
    """InfluxDB 1.x ``POST /write?db=&rp=&precision=`` with HTTP basic auth."""

    @override
    def _configure(self) -> str | None:
        """Set basic auth and the write parameters; refuse an unknown precision."""
        target = self._target
        if target.precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(_PRECISIONS)}")
        username = target.username or self._base.user
        password = target.password if target.username else self._base.password
        # Basic auth keeps the password out of the query string (and so out of any log).
        self._headers = {"Authorization": _basic_auth(username, password)} if username else {}
        self._params = {"db": target.database, "precision": target.precision}
        if target.retention_policy:
            self._params["rp"] = target.retention_policy
        return target.password

    async def write(self, payloads: Sequence[bytes]) -> None:
        """POST the lines joined by newlines; see the module doc for the errors."""
        data, headers = await self._take_body(payloads)
        await self._call("POST", "write", params=self._params, data=data, headers=headers)

    async def check(self) -> None:
        """Write an empty body, then verify the retention policy when one is set.

        InfluxDB 1.x checks credentials, the database's existence and the user's
        write privilege before it parses the body, and answers 204 for an empty
        one: so this proves writability without storing anything. An empty body
        does not reach the retention policy, hence the extra
        ``SHOW RETENTION POLICIES`` (skipped when the user may not read it).
        """
        await self._call("POST", "write", params=self._params, data=b"", headers=self._headers)
        rp = self._target.retention_policy
        if not rp:
            return
        database = self._target.database.replace('"', '\\"')
        query = f'SHOW RETENTION POLICIES ON "{database}"'
        status, body, _ = await self._request(
            "GET", "query", params={"q": query}, headers=self._headers
        )
        if status != 200:
            return  # not allowed to read: the first write will tell
        try:
            results = _loads(body)["results"][0]
            names = {row[0] for row in results["series"][0]["values"]}
        except (KeyError, IndexError, TypeError):
            return
        if rp not in names:
            raise NotFoundError(
                Missing.RETENTION_POLICY,
                f"retention policy not found: {rp} ({self.endpoint}/query)",
            )


class InfluxV2Sink(_HttpSink[InfluxV2Target]):
    """``POST /api/v2/write?org=&bucket=&precision=ns`` with ``Authorization: Token``.

    Spoken by InfluxDB 2.x, 3.x, Cloud, 1.8+ (token ``user:password``) and
    VictoriaMetrics.
    """

    @override
    def _configure(self) -> str | None:
        """Set token auth and the write parameters."""
        target = self._target
        self._params = {"org": target.org, "bucket": target.bucket, "precision": "ns"}
        self._headers = {
            "Authorization": f"Token {target.token}",
            "Content-Type": "text/plain; charset=utf-8",
        }
        return target.token

    async def write(self, payloads: Sequence[bytes]) -> None:
        """POST the lines joined by newlines; see the module doc for the errors."""
        data, headers = await self._take_body(payloads)
        await self._call("POST", "api/v2/write", params=self._params, data=data, headers=headers)

    async def check(self) -> None:
        """Write an empty body: the server checks token, org and bucket first.

        ``/api/v2/buckets`` exists only on InfluxDB 2.x / Cloud (VictoriaMetrics and
        InfluxDB 1.8 / 3 lack it), so the universal probe is an empty write, which
        stores nothing. VictoriaMetrics and InfluxDB 1.8+ answer 204. InfluxDB 2.x
        answers 400 ``{"code": "invalid", "message": "writing requires points"}``
        only after it authorized the token and found the org and bucket: that
        exact answer is success too. Any other 400 / 422 (a proxy answering HTTP
        on its HTTPS port, some other service) is REJECTED: nothing would be stored.
        """
        path = "api/v2/write"
        status, body, headers = await self._request(
            "POST", path, params=self._params, data=b"", headers=self._headers
        )
        if status == 400 and _is_empty_write_answer(body):
            return
        err = self._classify(status, body, headers, path)
        if err is None:
            return
        if err.category is ErrorCategory.BAD_DATA:
            text = self._redact(_server_text(body, headers))
            raise DeliveryError(
                ErrorCategory.REJECTED,
                f"an empty test write was refused (HTTP {status})"
                + (f": {text}" if text else "")
                + f" ({self.endpoint}/{path})",
                status=status,
            )
        raise err


class DataApiSink(_HttpSink[DataApiTarget]):
    """``POST <url>/events``: gzip JSON array, ``Authorization: Bearer``.

    ``Idempotency-Key`` is the SHA-256 of the uncompressed body, so a replayed
    batch carries the same key (each event also carries its own key). Compressing
    and hashing a batch takes tens of milliseconds: with ``offload`` (HA's
    executor) they run off the event loop.
    """

    @override
    def _configure(self) -> str | None:
        """Set bearer auth and the headers of gzip JSON bodies."""
        self._json_headers = {
            "Authorization": f"Bearer {self._target.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        return self._target.token

    @staticmethod
    def encode(payloads: Sequence[bytes]) -> tuple[bytes, str]:
        """Return the gzip body and its idempotency key for a batch of JSON objects."""
        raw = b"[" + b",".join(payloads) + b"]"
        # mtime=0 keeps the bytes deterministic for identical batches.
        return gzip.compress(raw, compresslevel=6, mtime=0), hashlib.sha256(raw).hexdigest()

    @staticmethod
    def pack(items: Sequence[Mapping[str, object]]) -> bytes:
        """Return the gzip JSON array of registry items."""
        raw = json.dumps(list(items), separators=(",", ":"), default=str).encode()
        return gzip.compress(raw, mtime=0)

    @override
    async def _body(self, payloads: Sequence[bytes]) -> Body:
        """Return the gzip JSON array and its headers (with the idempotency key)."""
        body, key = await self._run(self.encode, payloads)
        return body, {**self._json_headers, "Idempotency-Key": key}

    async def write(self, payloads: Sequence[bytes]) -> None:
        """POST the batch; see the module doc for the errors."""
        body, headers = await self._take_body(payloads)
        await self._call("POST", "events", data=body, headers=headers)

    async def upsert(self, path: str, items: Sequence[Mapping[str, object]]) -> None:
        """POST registry items (``internal/devices/bulk_upsert`` ...) as a gzip JSON array."""
        body = await self._run(self.pack, items)
        await self._call("POST", path.lstrip("/"), data=body, headers=self._json_headers)

    async def check(self) -> None:
        """``GET /health`` (reachability, right service), then POST an empty array (auth)."""
        await self._call("GET", "health")
        await self.write([])


#: The sink class of each target type.
SINK_CLASSES: Final[Mapping[type[Target], Callable[..., Sink]]] = {
    InfluxV1Target: InfluxV1Sink,
    InfluxV2Target: InfluxV2Sink,
    DataApiTarget: DataApiSink,
}


def create_sink(
    target: Target,
    session: aiohttp.ClientSession,
    *,
    url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    ssl: ssl_module.SSLContext | bool = True,
    offload: Offload | None = None,
    compress: bool = True,
) -> Sink:
    """Build the sink for ``target`` on the caller's session.

    ``url`` replaces ``target.url`` (fallback endpoints share credentials);
    ``timeout`` is the total per-request budget in seconds; ``ssl`` is passed to
    aiohttp (``False`` disables verification, a context pins a CA); ``offload``
    runs CPU-heavy encoding (gzip, the data-api's hash) off the event loop;
    ``compress`` gzips InfluxDB request bodies (the data-api always gzips). An
    unusable URL raises ``DeliveryError(NOT_FOUND)``.
    """
    sink_class = SINK_CLASSES[type(target)]
    return sink_class(
        target, session, url=url, timeout=timeout, ssl=ssl, compress=compress, offload=offload
    )
