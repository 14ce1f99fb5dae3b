"""Reference receiver for the ha_ingestor data-api (see docs/data-api.md).

A small, single-process aiohttp server that implements the contract exactly:
bearer auth, ``POST /events`` (gzip or plain JSON array, per-event validation,
all-or-nothing batches, deduplication by ``idempotency_key``), the device and
entity registry ``bulk_upsert`` endpoints, inspection ``GET`` endpoints and
``GET /health``. Data lives in one SQLite file.

It is a *reference and test double*, not a production service: SQLite calls
block the event loop (fine for one client and small batches, and it keeps each
request's validate-then-commit step free of interleaving), there is one token,
no TLS and no retention.

``--test-mode`` adds ``/_test/*`` admin endpoints (no auth) to inject faults
(status, ``Retry-After``, delay) for the next N requests and to list recent
requests. Never enable it outside tests.

Usage::

    python scripts/data_api_receiver.py --host 127.0.0.1 --port 8099 \\
        --db /tmp/data_api.sqlite --token secret [--max-body BYTES] [--test-mode]

Prints ``data_api_receiver ready on http://HOST:PORT`` to stdout once listening
and stops cleanly on SIGTERM / SIGINT.
"""

import argparse
import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
import hmac
import json
from pathlib import Path
import re
import signal
import sqlite3
import sys
from typing import Any
import zlib

from aiohttp import web

API_VERSION = 1
SERVICE = "ha_ingestor-data-api-reference"
DEFAULT_MAX_BODY = 10 * 1024 * 1024
MAX_DETAILS = 100
MAX_ENTITY_ID = 255
MAX_KEY = 128
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_RE_KEY = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII, no spaces

_EVENT_REQUIRED: dict[str, str] = {
    "entity_id": "str",
    "domain": "str",
    "state": "str",
    "attributes": "object",
    "last_changed": "str",
    "last_updated": "str",
    "time_ns": "int",
    "context_id": "str|null",
    "event_type": "str",
    "idempotency_key": "str",
}

# Known fields of registry items and the types ha_ingestor sends (documentation and
# the OpenAPI cross-check only): apart from the id and ``deleted`` they are stored as
# sent, unvalidated, see validate_registry_item.
_DEVICE_FIELDS: dict[str, str] = {
    "name": "str|null",
    "name_by_user": "str|null",
    "manufacturer": "str|null",
    "model": "str|null",
    "model_id": "str|null",
    "sw_version": "str|null",
    "hw_version": "str|null",
    "serial_number": "str|null",
    "area_id": "str|null",
    "labels": "str[]",
    "config_entries": "str[]",
    "identifiers": "pair[]",
    "connections": "pair[]",
    "via_device_id": "str|null",
    "entry_type": "str|null",
    "disabled_by": "str|null",
    "deleted": "bool",
}
_ENTITY_FIELDS: dict[str, str] = {
    "unique_id": "str|null",
    "platform": "str|null",
    "device_id": "str|null",
    "area_id": "str|null",
    "labels": "str[]",
    "name": "str|null",
    "original_name": "str|null",
    "device_class": "str|null",
    "original_device_class": "str|null",
    "unit_of_measurement": "str|null",
    "entity_category": "str|null",
    "disabled_by": "str|null",
    "hidden_by": "str|null",
    "config_entry_id": "str|null",
    "deleted": "bool",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    entity_id TEXT NOT NULL,
    domain TEXT NOT NULL,
    state TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    last_changed TEXT NOT NULL,
    last_updated TEXT NOT NULL,
    context_id TEXT,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_entity_time ON events (entity_id, time_ns);
CREATE INDEX IF NOT EXISTS events_time ON events (time_ns);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    deleted INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
    entity_id TEXT PRIMARY KEY,
    deleted INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


class BadRequestError(Exception):
    """The request as a whole is unusable (400 / 413 / 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------
# validation


def _reject_constant(name: str) -> Any:
    """json.loads hook: NaN / Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def _type_ok(value: Any, kind: str) -> bool:
    """Whether ``value`` matches one of the tiny type names used above."""
    match kind:
        case "str":
            return isinstance(value, str)
        case "str|null":
            return value is None or isinstance(value, str)
        case "int":
            return isinstance(value, int) and not isinstance(value, bool)
        case "object":
            return isinstance(value, dict)
    raise AssertionError(kind)


def _utc_timestamp_error(value: str) -> str | None:
    """Why ``value`` is not an ISO 8601 timestamp with a UTC offset, or None."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return "is not an ISO 8601 timestamp"
    offset = moment.utcoffset()
    if offset is None:
        return "has no UTC offset"
    if offset.total_seconds() != 0:
        return "is not in UTC"
    return None


def canonical(item: Any) -> str:
    """Compact JSON text for storage; raises ValueError for lone surrogates."""
    text = json.dumps(item, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate (not valid UTF-8)") from None
    return text


def validate_event(event: Any) -> str | None:
    """Return why ``event`` is invalid, or None when it matches the schema."""
    if not isinstance(event, dict):
        return "not a JSON object"
    for key, kind in _EVENT_REQUIRED.items():
        if key not in event:
            return f"missing {key}"
        if not _type_ok(event[key], kind):
            return f"{key} must be {kind}"
    entity_id: str = event["entity_id"]
    domain, dot, object_id = entity_id.partition(".")
    if not dot or not domain or not object_id or len(entity_id) > MAX_ENTITY_ID:
        return "entity_id must be '<domain>.<object_id>' (at most 255 characters)"
    if event["domain"] != domain:
        return "domain must be the part of entity_id before the dot"
    if not event["event_type"]:
        return "event_type must not be empty"
    if not INT64_MIN <= event["time_ns"] <= INT64_MAX:
        return "time_ns must fit in a signed 64-bit integer"
    for key in ("last_changed", "last_updated"):
        if problem := _utc_timestamp_error(event[key]):
            return f"{key} {problem}"
    key = event["idempotency_key"]
    if not 1 <= len(key) <= MAX_KEY or not _RE_KEY.match(key):
        return "idempotency_key must be 1-128 visible ASCII characters"
    if event.get("extra") is not None and not isinstance(event["extra"], dict):
        return "extra must be an object when present"
    return None


def validate_registry_item(item: Any, id_key: str) -> str | None:
    """Return why a device / entity item is invalid, or None.

    Only identity and the removal flag are checked. Descriptive fields are stored
    as sent: some integrations put numbers where HA types strings (identifiers,
    versions), and one odd device must never block the whole registry sync.
    """
    if not isinstance(item, dict):
        return "not a JSON object"
    ident = item.get(id_key)
    if not isinstance(ident, str) or not ident:
        return f"{id_key} must be a non-empty string"
    if id_key == "entity_id":
        domain, dot, object_id = ident.partition(".")
        if not dot or not domain or not object_id or len(ident) > MAX_ENTITY_ID:
            return "entity_id must be '<domain>.<object_id>' (at most 255 characters)"
    if "deleted" in item and not isinstance(item["deleted"], bool):
        return "deleted must be a boolean"
    return None


def check_batch(
    items: list[Any], validate: Callable[[Any], str | None]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Validate every item; return (canonical texts, problems as {index, error})."""
    texts: list[str] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        problem = validate(item)
        if problem is None:
            try:
                texts.append(canonical(item))
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            problems.append({"index": index, "error": problem})
    return texts, problems


# --------------------------------------------------------------------------
# body decoding


def inflate(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body (one or more members) to at most ``limit`` bytes."""
    out = bytearray()
    data = body
    while data:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += decoder.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise BadRequestError(400, f"invalid gzip body: {exc}") from None
        if len(out) > limit:
            raise BadRequestError(413, f"decompressed body exceeds {limit} bytes")
        if not decoder.eof:
            raise BadRequestError(400, "truncated gzip body")
        data = decoder.unused_data
    return bytes(out)


async def read_array(request: web.Request, limit: int) -> list[Any]:
    """Read, size-check, decompress and parse a JSON array body."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequestError(413, f"body exceeds {limit} bytes")
    try:
        body = await request.read()  # bounded by the app's client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise BadRequestError(413, f"body exceeds {limit} bytes") from None
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        body = inflate(body, limit)
    elif encoding not in ("", "identity"):
        raise BadRequestError(415, f"unsupported Content-Encoding {encoding!r}: use gzip or none")
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequestError(400, f"body is not valid UTF-8 JSON: {str(exc)[:200]}") from None
    if not isinstance(data, list):
        raise BadRequestError(400, "body must be a JSON array")
    return data


# --------------------------------------------------------------------------
# storage


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Store:
    """The SQLite file; every write is one transaction (all or nothing)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a 2xx promises durability
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def ping(self) -> None:
        self.db.execute("SELECT 1 FROM events LIMIT 1").fetchall()

    def insert_events(self, events: list[dict[str, Any]], texts: list[str]) -> int:
        """Store new events in one transaction; return how many were new."""
        received = _now()
        rows = [
            (
                e["idempotency_key"],
                e["entity_id"],
                e["domain"],
                e["state"],
                e["time_ns"],
                e["last_changed"],
                e["last_updated"],
                e["context_id"],
                e["event_type"],
                text,
                received,
            )
            for e, text in zip(events, texts, strict=True)
        ]
        with self._transaction():
            before = self.db.total_changes
            # UNIQUE(idempotency_key) + OR IGNORE: a re-delivery never stores twice.
            self.db.executemany(
                "INSERT OR IGNORE INTO events (idempotency_key, entity_id, domain, state,"
                " time_ns, last_changed, last_updated, context_id, event_type, body,"
                " received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            return self.db.total_changes - before

    def upsert(
        self, table: str, id_col: str, items: list[dict[str, Any]], texts: list[str]
    ) -> tuple[int, int]:
        """Apply snapshots and tombstones in order; return (upserted, deleted)."""
        upserted = deleted = 0
        now = _now()
        with self._transaction():
            for item, text in zip(items, texts, strict=True):
                if item.get("deleted") is True:
                    # Keep the last snapshot as a tombstone; a later upsert revives it.
                    self.db.execute(
                        f"INSERT INTO {table} ({id_col}, deleted, body, updated_at)"
                        f" VALUES (?, 1, ?, ?) ON CONFLICT({id_col}) DO UPDATE SET"
                        " deleted = 1, updated_at = excluded.updated_at",
                        (item[id_col], text, now),
                    )
                    deleted += 1
                else:
                    self.db.execute(
                        f"INSERT INTO {table} ({id_col}, deleted, body, updated_at)"
                        f" VALUES (?, 0, ?, ?) ON CONFLICT({id_col}) DO UPDATE SET"
                        " deleted = 0, body = excluded.body, updated_at = excluded.updated_at",
                        (item[id_col], text, now),
                    )
                    upserted += 1
        return upserted, deleted

    def query_events(self, entity_id: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first (by time_ns, then arrival)."""
        sql = "SELECT body FROM events"
        args: list[Any] = []
        if entity_id:
            sql += " WHERE entity_id = ?"
            args.append(entity_id)
        sql += " ORDER BY time_ns DESC, seq DESC LIMIT ?"
        args.append(limit)
        return [json.loads(row[0]) for row in self.db.execute(sql, args)]

    def query_registry(self, table: str, id_col: str, include_deleted: bool) -> list[Any]:
        """All items of a registry table, ordered by id."""
        where = "" if include_deleted else " WHERE deleted = 0"
        rows = self.db.execute(f"SELECT body, deleted FROM {table}{where} ORDER BY {id_col}")
        return [{**json.loads(body), "deleted": bool(deleted)} for body, deleted in rows]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any error (also a failed COMMIT)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            raise


# --------------------------------------------------------------------------
# fault injection (--test-mode)


@dataclass
class Fault:
    """Answer the next ``count`` matching requests with ``status`` after ``delay`` s.

    ``status`` None only delays, then handles the request normally.
    """

    status: int | None = None
    count: int = 1
    retry_after: str | None = None
    delay: float = 0.0
    path: str | None = None
    body: Any = None

    def matches(self, path: str) -> bool:
        return self.count > 0 and (self.path is None or path == self.path)


@dataclass
class TestState:
    """Faults queued by the tests and a log of recent requests."""

    faults: list[Fault] = field(default_factory=list)
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))

    def take(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(path):
                fault.count -= 1
                self.faults = [f for f in self.faults if f.count > 0]
                return fault
        return None


def parse_fault(data: Any) -> Fault:
    """Build a Fault from the admin endpoint's JSON object."""
    if not isinstance(data, dict):
        raise TypeError("a fault must be a JSON object")
    status = data.get("status")
    if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
        raise ValueError("status must be an HTTP status code or null")
    count = data.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise ValueError("count must be a positive integer")
    retry_after = data.get("retry_after")
    delay = data.get("delay", 0.0)
    if not isinstance(delay, int | float) or delay < 0:
        raise ValueError("delay must be a non-negative number")
    path = data.get("path")
    if path is not None and not isinstance(path, str):
        raise ValueError("path must be a string")
    return Fault(
        status=status,
        count=count,
        retry_after=None if retry_after is None else str(retry_after),
        delay=float(delay),
        path=path,
        body=data.get("body"),
    )


# --------------------------------------------------------------------------
# HTTP


def error(status: int, message: str, **extra: Any) -> web.Response:
    """The contract's error body."""
    return web.json_response({"error": message, **extra}, status=status)


@dataclass
class Config:
    """Command-line settings."""

    token: str
    max_body: int
    test_mode: bool


STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", Config)
TEST = web.AppKey("test", TestState)

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def record_and_fault(request: web.Request, handler: Handler) -> web.StreamResponse:
    """In test mode: apply injected faults and log every non-admin request."""
    state = request.app.get(TEST)
    if state is None or request.path.startswith("/_test/"):
        return await handler(request)
    entry: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "content_encoding": request.headers.get("Content-Encoding"),
        "idempotency_key": request.headers.get("Idempotency-Key"),
        "status": None,
        "fault": False,
    }
    state.requests.append(entry)
    fault = state.take(request.path)
    if fault is not None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            entry["status"], entry["fault"] = fault.status, True
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            body = fault.body if fault.body is not None else {"error": "injected fault"}
            # Drain the body so the client never sees a reset while still sending.
            with contextlib.suppress(web.HTTPException):
                await request.read()
            return web.json_response(body, status=fault.status, headers=headers)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        entry["status"] = exc.status
        raise
    entry["status"] = response.status
    return response


@web.middleware
async def failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map storage trouble to 503 + Retry-After and bugs to a JSON 500."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except sqlite3.Error as exc:
        # Locked / full / read-only / broken database: the transaction rolled back.
        print(f"storage error on {request.path}: {exc}", file=sys.stderr, flush=True)
        return web.json_response(
            {"error": "storage unavailable"}, status=503, headers={"Retry-After": "1"}
        )
    except Exception as exc:
        print(f"internal error on {request.path}: {exc!r}", file=sys.stderr, flush=True)
        return error(500, "internal error")


def authorized(request: web.Request) -> web.Response | None:
    """None when the bearer token matches, else the 401 answer."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[CONFIG].token
    if scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        return None
    return web.json_response(
        {"error": "missing or invalid bearer token"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="data-api"'},
    )


async def health(request: web.Request) -> web.Response:
    """Unauthenticated liveness + storage check."""
    try:
        request.app[STORE].ping()
    except sqlite3.Error:
        return web.json_response(
            {"status": "unavailable", "service": SERVICE, "api_version": API_VERSION},
            status=503,
            headers={"Retry-After": "5"},
        )
    return web.json_response({"status": "ok", "service": SERVICE, "api_version": API_VERSION})


async def post_events(request: web.Request) -> web.Response:
    """Store a batch atomically; duplicates count as success."""
    if (denied := authorized(request)) is not None:
        return denied
    try:
        events = await read_array(request, request.app[CONFIG].max_body)
    except BadRequestError as exc:
        return error(exc.status, exc.message, rejected=[])
    texts, problems = check_batch(events, validate_event)
    if problems:
        return error(
            422,
            f"{len(problems)} of {len(events)} event(s) invalid; nothing was stored",
            rejected=[p["index"] for p in problems],
            details=problems[:MAX_DETAILS],
        )
    new = request.app[STORE].insert_events(events, texts) if events else 0
    return web.json_response({"accepted": new, "duplicates": len(events) - new})


def _upsert_handler(table: str, id_col: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        if (denied := authorized(request)) is not None:
            return denied
        try:
            items = await read_array(request, request.app[CONFIG].max_body)
        except BadRequestError as exc:
            return error(exc.status, exc.message, rejected=[])
        texts, problems = check_batch(items, lambda item: validate_registry_item(item, id_col))
        if problems:
            return error(
                422,
                f"{len(problems)} of {len(items)} item(s) invalid; nothing was stored",
                rejected=[p["index"] for p in problems],
                details=problems[:MAX_DETAILS],
            )
        upserted, deleted = request.app[STORE].upsert(table, id_col, items, texts)
        return web.json_response({"upserted": upserted, "deleted": deleted})

    return handle


def _list_handler(table: str, id_col: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        if (denied := authorized(request)) is not None:
            return denied
        include = request.query.get("include_deleted", "false").lower() in ("1", "true", "yes")
        return web.json_response({table: request.app[STORE].query_registry(table, id_col, include)})

    return handle


async def get_events(request: web.Request) -> web.Response:
    """Inspection: newest events first, optionally for one entity."""
    if (denied := authorized(request)) is not None:
        return denied
    try:
        limit = int(request.query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        return error(400, "limit must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        return error(400, f"limit must be between 1 and {MAX_LIMIT}")
    events = request.app[STORE].query_events(request.query.get("entity_id"), limit)
    return web.json_response({"events": events})


async def add_faults(request: web.Request) -> web.Response:
    """``POST /_test/faults``: one fault object or an array of them, queued in order."""
    try:
        data = await request.json()
        faults = [parse_fault(item) for item in (data if isinstance(data, list) else [data])]
    except (ValueError, TypeError) as exc:
        return error(400, str(exc))
    request.app[TEST].faults.extend(faults)
    return web.json_response({"queued": len(request.app[TEST].faults)})


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /_test/faults``."""
    request.app[TEST].faults.clear()
    return web.json_response({"queued": 0})


async def list_requests(request: web.Request) -> web.Response:
    """``GET /_test/requests``: the recent non-admin requests, oldest first."""
    return web.json_response({"requests": list(request.app[TEST].requests)})


async def clear_requests(request: web.Request) -> web.Response:
    """``DELETE /_test/requests``."""
    request.app[TEST].requests.clear()
    return web.json_response({"requests": []})


def make_app(store: Store, config: Config) -> web.Application:
    """Build the application (also usable in-process)."""
    middlewares: list[Any] = [failures]
    if config.test_mode:
        middlewares.insert(0, record_and_fault)
    app = web.Application(client_max_size=config.max_body, middlewares=middlewares)
    app[STORE] = store
    app[CONFIG] = config
    app.router.add_get("/health", health)
    app.router.add_post("/events", post_events)
    app.router.add_get("/events", get_events)
    app.router.add_post("/internal/devices/bulk_upsert", _upsert_handler("devices", "id"))
    app.router.add_post(
        "/internal/entities/bulk_upsert",
        _upsert_handler("entities", "entity_id"),
    )
    app.router.add_get("/internal/devices", _list_handler("devices", "id"))
    app.router.add_get("/internal/entities", _list_handler("entities", "entity_id"))
    if config.test_mode:
        app[TEST] = TestState()
        app.router.add_post("/_test/faults", add_faults)
        app.router.add_delete("/_test/faults", clear_faults)
        app.router.add_get("/_test/requests", list_requests)
        app.router.add_delete("/_test/requests", clear_requests)
    return app


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGTERM / SIGINT."""
    store = Store(Path(args.db))
    app = make_app(
        store, Config(token=args.token, max_body=args.max_body, test_mode=args.test_mode)
    )
    # We decompress ourselves: the size limit must apply to the inflated body too.
    runner = web.AppRunner(app, auto_decompress=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"data_api_receiver ready on http://{args.host}:{args.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        store.close()


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Reference receiver for the ha_ingestor data-api.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="SQLite file (created if missing)")
    parser.add_argument("--token", required=True, help="the bearer token clients must send")
    parser.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        help="largest accepted body in bytes, as sent and after gzip decompression",
    )
    parser.add_argument(
        "--test-mode", action="store_true", help="enable the /_test/* admin endpoints"
    )
    args = parser.parse_args(None if argv is None else list(argv))
    if args.max_body < 2:
        parser.error("--max-body must be at least 2")
    if not args.token:
        parser.error("--token must not be empty")
    return args


def main() -> None:
    """Entry point."""
    asyncio.run(serve(parse_args()))


if __name__ == "__main__":
    main()
