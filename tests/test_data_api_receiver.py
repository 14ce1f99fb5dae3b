"""The reference data-api receiver as a real server, and DataApiSink against it.

Run with the fixture plugin: ``pytest -p tests.data_api tests/test_data_api_receiver.py``.
"""

from collections.abc import AsyncIterator, Sequence
import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from custom_components.ha_ingestor.core.encoder import (
    MAX_TIME_NS,
    MIN_TIME_NS,
    EventRecord,
    JsonEventEncoder,
)
from custom_components.ha_ingestor.core.errors import DeliveryError, ErrorCategory
from custom_components.ha_ingestor.core.sinks import DataApiSink, DataApiTarget, create_sink
from tests.data_api import SCRIPT, DataApiReceiver, ReceiverFactory

DOCS = Path(__file__).resolve().parent.parent / "docs"

BASE_NS = 1_760_000_000_000_000_000
ENCODER = JsonEventEncoder(include_unknown=True)
# The encoder's timestamp bounds (InfluxDB's int64 range, minus its reserved ends).
MIN_NS, MAX_NS = MIN_TIME_NS, MAX_TIME_NS


def payload(entity_id: str = "sensor.t", n: int = 0, state: str = "21.5", **kw: Any) -> bytes:
    """One event exactly as the integration encodes it."""
    record = EventRecord(
        entity_id=entity_id,
        state=state,
        attributes=kw.pop("attributes", {"unit_of_measurement": "°C", "friendly_name": "T"}),
        time_ns=kw.pop("time_ns", BASE_NS + n * 1_000_000_000),
        last_changed_ns=kw.pop("last_changed_ns", BASE_NS),
        context_id=kw.pop("context_id", f"ctx{n}"),
        **kw,
    )
    encoded = ENCODER.encode(record)
    assert encoded is not None
    return encoded


def event(entity_id: str = "sensor.t", n: int = 0, **kw: Any) -> dict[str, Any]:
    """One event as a dict (to be tampered with)."""
    return json.loads(payload(entity_id, n, **kw))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    session: aiohttp.ClientSession,
    receiver: DataApiReceiver,
    path: str,
    items: Any = None,
    *,
    raw: bytes | None = None,
    gzipped: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    """POST JSON (or raw bytes) with the receiver's token unless ``headers`` say otherwise."""
    body = raw if raw is not None else json.dumps(items).encode()
    hdrs = {**receiver.auth, "Content-Type": "application/json", **(headers or {})}
    if gzipped:
        body = gzip.compress(body)
        hdrs["Content-Encoding"] = "gzip"
    async with session.post(f"{receiver.url}{path}", data=body, headers=hdrs) as resp:
        text = await resp.text()
        try:
            data = json.loads(text)
        except ValueError:
            data = text
        return resp.status, data, resp.headers


# --------------------------------------------------------------------------
# the receiver on its own


async def test_health_needs_no_auth(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{data_api_receiver.url}/health") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok"
    assert body["api_version"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": ""},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic dGVzdDp0ZXN0"},
        {"Authorization": "Bearer"},
    ],
)
async def test_auth_rejected(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    r = data_api_receiver
    for path in ("/events", "/internal/devices/bulk_upsert", "/internal/entities/bulk_upsert"):
        item = {"id": "d1", "entity_id": "light.x"} if "internal" in path else event()
        status, body, resp_headers = await post(session, r, path, [item], headers=headers)
        assert status == 401, path
        assert "error" in body
        assert resp_headers["WWW-Authenticate"].startswith("Bearer")
    for path in ("/events", "/internal/devices", "/internal/entities"):
        async with session.get(f"{r.url}{path}", headers=headers) as resp:
            assert resp.status == 401, path
    assert r.events() == []
    assert r.devices() == {}
    assert r.entities() == {}


async def test_dedup_across_redelivery(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    batch = [event(n=i) for i in range(3)]
    status, body, _ = await post(session, data_api_receiver, "/events", batch)
    assert (status, body) == (200, {"accepted": 3, "duplicates": 0})
    status, body, _ = await post(session, data_api_receiver, "/events", batch)
    assert (status, body) == (200, {"accepted": 0, "duplicates": 3})
    # Overlap: two old events, one new, and the new one twice in the same batch.
    status, body, _ = await post(
        session, data_api_receiver, "/events", [batch[1], batch[2], event(n=3), event(n=3)]
    )
    assert (status, body) == (200, {"accepted": 1, "duplicates": 3})
    keys = data_api_receiver.event_keys()
    assert len(keys) == len(set(keys)) == 4
    assert data_api_receiver.events()[:3] == batch


async def test_empty_batch_is_accepted(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(session, data_api_receiver, "/events", [])
    assert (status, body) == (200, {"accepted": 0, "duplicates": 0})


async def test_gzip_and_plain_bodies(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(session, data_api_receiver, "/events", [event(n=1)], gzipped=True)
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0})
    status, body, _ = await post(session, data_api_receiver, "/events", [event(n=2)])
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0})
    # Two concatenated gzip members are one valid gzip stream.
    first, second = b'[{"x":1}', b"]"
    raw = gzip.compress(first) + gzip.compress(second)
    status, body, _ = await post(
        session, data_api_receiver, "/events", raw=raw, headers={"Content-Encoding": "gzip"}
    )
    assert status == 422  # decoded fine; {"x":1} is not an event
    assert body["rejected"] == [0]
    assert len(data_api_receiver.events()) == 2


@pytest.mark.parametrize(
    ("raw", "encoding", "status"),
    [
        (b"not json", None, 400),
        (b'{"entity_id": "sensor.t"}', None, 400),  # not an array
        (b"[NaN]", None, 400),
        (b"\xff\xfe[]", None, 400),
        (b"\x1f\x8b garbage", "gzip", 400),
        (gzip.compress(b"[]")[:-6], "gzip", 400),  # truncated
        (b"[]", "br", 415),
    ],
)
async def test_malformed_bodies(
    data_api_receiver: DataApiReceiver,
    session: aiohttp.ClientSession,
    raw: bytes,
    encoding: str | None,
    status: int,
) -> None:
    headers = {"Content-Encoding": encoding} if encoding else {}
    got, body, _ = await post(session, data_api_receiver, "/events", raw=raw, headers=headers)
    assert got == status, body
    assert body["rejected"] == []
    assert isinstance(body["error"], str)


def _tamper(**changes: Any) -> dict[str, Any]:
    item = event(n=99)
    for key, value in changes.items():
        if value is KeyError:
            del item[key]
        else:
            item[key] = value
    return item


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (_tamper(entity_id=KeyError), "missing entity_id"),
        (_tamper(context_id=KeyError), "missing context_id"),
        (_tamper(entity_id="nodot"), "entity_id"),
        (_tamper(domain="light"), "domain"),
        (_tamper(state=21.5), "state"),
        (_tamper(attributes=[]), "attributes"),
        (_tamper(time_ns="123"), "time_ns"),
        (_tamper(time_ns=True), "time_ns"),
        (_tamper(time_ns=2**63), "time_ns"),
        (_tamper(last_updated="yesterday"), "last_updated"),
        (_tamper(last_changed="2025-01-01T00:00:00"), "last_changed"),
        (_tamper(last_changed="2025-01-01T01:00:00+01:00"), "last_changed"),
        (_tamper(event_type=""), "event_type"),
        (_tamper(idempotency_key=""), "idempotency_key"),
        (_tamper(idempotency_key="has space"), "idempotency_key"),
        (_tamper(extra=[1]), "extra"),
        (_tamper(state="\ud800"), "surrogate"),
        ("just a string", "object"),
    ],
)
async def test_invalid_events_reject_whole_batch(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession, bad: Any, reason: str
) -> None:
    batch = [event(n=0), bad, event(n=1), bad]
    # ensure_ascii keeps a lone surrogate as a \ud800 escape, valid JSON text.
    raw = json.dumps(batch).encode()
    status, body, _ = await post(session, data_api_receiver, "/events", raw=raw)
    assert status == 422, body
    assert body["rejected"] == [1, 3]
    assert [d["index"] for d in body["details"]] == [1, 3]
    assert reason in body["details"][0]["error"]
    assert "nothing was stored" in body["error"]
    assert data_api_receiver.events() == []
    # The client's bisection: the good half goes through on its own.
    status, body, _ = await post(session, data_api_receiver, "/events", batch[:1])
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0})


async def test_encoder_edge_cases_are_accepted(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    """Whatever JsonEventEncoder produces passes validation."""
    items = [
        payload(state=""),
        payload(
            "sensor.ünïcødé", 1, attributes={"nested": {"a": [1, None, 2.5]}, "x": float("nan")}
        ),
        payload("sensor.old", time_ns=MIN_NS, last_changed_ns=MIN_NS),
        payload("sensor.future", time_ns=MAX_NS, last_changed_ns=MAX_NS),
        payload("sensor.extra", 2, extra={"area": "kitchen"}, context_id=None),
        payload("automation.a", 3, event_type="automation_triggered"),
    ]
    raw = b"[" + b",".join(items) + b"]"
    status, body, _ = await post(session, data_api_receiver, "/events", raw=raw, gzipped=True)
    assert (status, body) == (200, {"accepted": 6, "duplicates": 0})
    assert data_api_receiver.events() == [json.loads(p) for p in items]


async def test_body_too_large(
    data_api_receiver_factory: ReceiverFactory, session: aiohttp.ClientSession
) -> None:
    receiver = data_api_receiver_factory(max_body=4096)
    big = [event(n=i) for i in range(40)]  # ~10 KiB of JSON
    assert len(json.dumps(big)) > 4096
    status, body, _ = await post(session, receiver, "/events", big)
    assert status == 413
    assert body["rejected"] == []
    # Gzip shrinks it below the limit on the wire, but the inflated size counts too.
    status, body, _ = await post(session, receiver, "/events", big, gzipped=True)
    assert status == 413
    # A gzip bomb is cut off at the limit.
    bomb = gzip.compress(b"[" + b" " * 10_000_000 + b"]")
    status, _, _ = await post(
        session, receiver, "/events", raw=bomb, headers={"Content-Encoding": "gzip"}
    )
    assert status == 413
    assert receiver.events() == []
    # The client splits: halves that fit are stored.
    for part in (big[:10], big[10:20]):
        status, body, _ = await post(session, receiver, "/events", part)
        assert status == 200, body
    assert len(receiver.events()) == 20


def device(ident: str, **changes: Any) -> dict[str, Any]:
    """A device item shaped like registry_sync.device_payload()."""
    return {
        "id": ident,
        "name": f"Device {ident}",
        "name_by_user": None,
        "manufacturer": "Acme",
        "model": "M1",
        "model_id": None,
        "sw_version": "1.0",
        "hw_version": None,
        "serial_number": None,
        "area_id": "kitchen",
        "labels": ["l1"],
        "config_entries": ["ce1"],
        "identifiers": [["acme", ident]],
        "connections": [["mac", "aa:bb:cc:dd:ee:ff"]],
        "via_device_id": None,
        "entry_type": None,
        "disabled_by": None,
        "deleted": False,
        **changes,
    }


def entity(entity_id: str, **changes: Any) -> dict[str, Any]:
    """An entity item shaped like registry_sync.entity_payload()."""
    return {
        "entity_id": entity_id,
        "unique_id": f"u-{entity_id}",
        "platform": "acme",
        "device_id": "d1",
        "area_id": None,
        "labels": [],
        "name": None,
        "original_name": "Temperature",
        "device_class": "temperature",
        "original_device_class": "temperature",
        "unit_of_measurement": "°C",
        "entity_category": None,
        "disabled_by": None,
        "hidden_by": None,
        "config_entry_id": "ce1",
        "deleted": False,
        **changes,
    }


async def test_device_and_entity_upsert_and_delete(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver
    status, body, _ = await post(
        session, r, "/internal/devices/bulk_upsert", [device("d1"), device("d2")], gzipped=True
    )
    assert (status, body) == (200, {"upserted": 2, "deleted": 0})
    # Update, tombstone, a tombstone for an unknown id, and a repeat (idempotent).
    changes = [
        device("d1", area_id="hall"),
        {"id": "d2", "deleted": True},
        {"id": "d9", "deleted": True},
    ]
    for _ in range(2):
        status, body, _ = await post(session, r, "/internal/devices/bulk_upsert", changes)
        assert (status, body) == (200, {"upserted": 1, "deleted": 2})
    devices = r.devices()
    assert devices["d1"] == device("d1", area_id="hall")
    assert devices["d2"]["deleted"] is True
    assert devices["d2"]["name"] == "Device d2"  # the tombstone keeps the last snapshot
    assert devices["d9"] == {"id": "d9", "deleted": True}
    assert set(r.devices(include_deleted=False)) == {"d1"}
    # A later upsert revives a deleted device.
    await post(session, r, "/internal/devices/bulk_upsert", [device("d2", name="Back")])
    assert r.devices()["d2"] == device("d2", name="Back")

    # Entities, including a rename (old id deleted, new id upserted) as registry_sync sends it.
    status, body, _ = await post(
        session, r, "/internal/entities/bulk_upsert", [entity("sensor.a"), entity("sensor.b")]
    )
    assert (status, body) == (200, {"upserted": 2, "deleted": 0})
    rename = [{"entity_id": "sensor.a", "deleted": True}, entity("sensor.a2", name="Renamed")]
    status, body, _ = await post(session, r, "/internal/entities/bulk_upsert", rename)
    assert (status, body) == (200, {"upserted": 1, "deleted": 1})
    assert set(r.entities(include_deleted=False)) == {"sensor.a2", "sensor.b"}
    assert r.entities()["sensor.a"]["deleted"] is True
    assert r.entities()["sensor.a2"]["name"] == "Renamed"

    # Inspection endpoints.
    async with session.get(f"{r.url}/internal/devices", headers=r.auth) as resp:
        assert {d["id"] for d in (await resp.json())["devices"]} == {"d1", "d2"}
    async with session.get(
        f"{r.url}/internal/entities?include_deleted=true", headers=r.auth
    ) as resp:
        assert {e["entity_id"] for e in (await resp.json())["entities"]} == {
            "sensor.a",
            "sensor.a2",
            "sensor.b",
        }


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("/internal/devices/bulk_upsert", {"name": "no id"}),
        ("/internal/devices/bulk_upsert", device("")),
        ("/internal/devices/bulk_upsert", device("d3", deleted="yes")),
        ("/internal/entities/bulk_upsert", entity("nodot")),
        ("/internal/entities/bulk_upsert", {"entity_id": "sensor.c", "deleted": 1}),
        ("/internal/entities/bulk_upsert", ["not", "an", "object"]),
    ],
)
async def test_invalid_registry_items(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession, path: str, bad: Any
) -> None:
    good = device("d1") if "devices" in path else entity("sensor.ok")
    status, body, _ = await post(session, data_api_receiver, path, [good, bad])
    assert status == 422, body
    assert body["rejected"] == [1]
    assert data_api_receiver.devices() == {}
    assert data_api_receiver.entities() == {}


async def test_odd_descriptive_fields_are_stored_as_sent(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    """Integrations put numbers where HA types strings: never a reason to reject."""
    odd = device("d1", identifiers=[["acme", 123]], sw_version=2, labels=None, new_field={"a": 1})
    status, body, _ = await post(session, data_api_receiver, "/internal/devices/bulk_upsert", [odd])
    assert (status, body) == (200, {"upserted": 1, "deleted": 0})
    assert data_api_receiver.devices() == {"d1": odd}


async def test_get_events_for_inspection(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver
    batch = [event("sensor.a", n=i) for i in range(5)] + [event("sensor.b", n=9)]
    await post(session, r, "/events", batch)
    async with session.get(f"{r.url}/events?entity_id=sensor.a&limit=2", headers=r.auth) as resp:
        got = (await resp.json())["events"]
    assert got == [batch[4], batch[3]]  # newest first
    async with session.get(f"{r.url}/events", headers=r.auth) as resp:
        assert len((await resp.json())["events"]) == 6
    for bad in ("0", "x", "100001"):
        async with session.get(f"{r.url}/events?limit={bad}", headers=r.auth) as resp:
            assert resp.status == 400


async def test_restart_keeps_data_and_dedup(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver
    batch = [event(n=i) for i in range(3)]
    await post(session, r, "/events", batch)
    await r.astop()
    assert not r.running
    assert len(r.events()) == 3  # readable while down
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(session, r, "/events", batch)
    await r.astart()
    status, body, _ = await post(session, r, "/events", batch)
    assert (status, body) == (200, {"accepted": 0, "duplicates": 3})
    r.stop()
    r.start()
    assert len(r.event_keys()) == 3


async def test_fault_injection(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver
    await r.inject_fault(503, count=2, retry_after=7, path="/events")
    async with session.get(f"{r.url}/health") as resp:
        assert resp.status == 200  # other paths are untouched
    for _ in range(2):
        status, body, headers = await post(session, r, "/events", [event()])
        assert (status, body) == (503, {"error": "injected fault"})
        assert headers["Retry-After"] == "7"
    assert r.events() == []  # a fault never stores
    status, _, _ = await post(session, r, "/events", [event()])
    assert status == 200
    await r.inject_fault(418, count=5)
    await r.clear_faults()
    status, _, _ = await post(session, r, "/events", [event()])
    assert status == 200
    log = await r.requests()
    assert [(e["path"], e["status"], e["fault"]) for e in log] == [
        ("/health", 200, False),
        ("/events", 503, True),
        ("/events", 503, True),
        ("/events", 200, False),
        ("/events", 200, False),
    ]


# --------------------------------------------------------------------------
# DataApiSink (core/sinks.py) against the receiver


def sink_for(
    receiver: DataApiReceiver,
    session: aiohttp.ClientSession,
    *,
    token: str | None = None,
    timeout: float = 10.0,
) -> DataApiSink:
    sink = create_sink(
        DataApiTarget(url=receiver.url, token=token or receiver.token), session, timeout=timeout
    )
    assert isinstance(sink, DataApiSink)
    return sink


async def test_sink_writes_exactly_once(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver
    sink = sink_for(r, session)
    await sink.check()
    first = [payload(n=i) for i in range(50)]
    second = [payload("sensor.other", n=i) for i in range(10)]
    await sink.write(first)
    await sink.write(first)  # a replay after a lost answer
    await sink.write(first[25:] + second)  # overlapping batch
    stored = r.events()
    assert stored == [json.loads(p) for p in first + second]
    log = await r.requests()
    posts = [e for e in log if e["path"] == "/events"]
    assert all(e["content_encoding"] == "gzip" for e in posts)
    assert posts[1]["idempotency_key"] == posts[2]["idempotency_key"]  # same batch, same key


async def test_sink_registry_upsert(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver
    sink = sink_for(r, session)
    await sink.upsert("/internal/devices/bulk_upsert", [device("d1")])
    await sink.upsert("internal/entities/bulk_upsert", [entity("sensor.a")])
    await sink.upsert(
        "/internal/entities/bulk_upsert", [{"entity_id": "sensor.a", "deleted": True}]
    )
    assert r.devices() == {"d1": device("d1")}
    assert r.entities()["sensor.a"]["deleted"] is True


async def test_sink_outage_and_replay(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver
    sink = sink_for(r, session)
    batch = [payload(n=i) for i in range(5)]
    await sink.write(batch[:2])
    await r.astop()
    with pytest.raises(DeliveryError) as exc:
        await sink.write(batch)
    assert exc.value.category is ErrorCategory.NETWORK
    assert exc.value.transient
    await r.astart()
    await sink.write(batch)
    assert r.event_keys() == [json.loads(p)["idempotency_key"] for p in batch]


async def test_sink_timeout_on_slow_receiver(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver
    await r.inject_fault(None, delay=1.0, path="/events")
    sink = sink_for(r, session, timeout=0.3)
    with pytest.raises(DeliveryError) as exc:
        await sink.write([payload()])
    assert exc.value.category is ErrorCategory.TIMEOUT
    # The slow request may still have been stored; the retry is deduplicated.
    await sink.write([payload()])
    assert len(r.events()) == 1


async def test_sink_classifies_auth(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    sink = sink_for(data_api_receiver, session, token="not-the-token")
    for call in (sink.check(), sink.write([payload()])):
        with pytest.raises(DeliveryError) as exc:
            await call
        assert exc.value.category is ErrorCategory.AUTH
        assert exc.value.status == 401
        assert "not-the-token" not in str(exc.value)
    assert data_api_receiver.events() == []


async def test_sink_classifies_too_large_and_split_succeeds(
    data_api_receiver_factory: ReceiverFactory, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver_factory(max_body=8192)
    sink = sink_for(r, session)
    batch = [payload(n=i) for i in range(60)]  # > 8 KiB of JSON, gzip or not
    with pytest.raises(DeliveryError) as exc:
        await sink.write(batch)
    assert exc.value.category is ErrorCategory.TOO_LARGE
    assert exc.value.status == 413
    for start in range(0, 60, 15):
        await sink.write(batch[start : start + 15])
    assert len(r.event_keys()) == 60


async def _deliver_bisecting(sink: DataApiSink, payloads: Sequence[bytes]) -> list[bytes]:
    """What the uploader does on BAD_DATA: bisect; return the quarantined payloads."""
    try:
        await sink.write(payloads)
    except DeliveryError as exc:
        err = exc
    else:
        return []
    assert err.category is ErrorCategory.BAD_DATA
    assert err.status == 422
    if len(payloads) == 1:
        return list(payloads)
    mid = len(payloads) // 2
    return await _deliver_bisecting(sink, payloads[:mid]) + await _deliver_bisecting(
        sink, payloads[mid:]
    )


async def test_sink_classifies_bad_data_and_bisection_stores_good_events_once(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver
    sink = sink_for(r, session)
    poison = json.dumps(_tamper(time_ns="soon")).encode()
    good = [payload(n=i) for i in range(7)]
    batch = [*good[:3], poison, *good[3:]]
    quarantined = await _deliver_bisecting(sink, batch)
    assert quarantined == [poison]
    assert r.events() == [json.loads(p) for p in good]
    assert len(r.event_keys()) == 7


@pytest.mark.parametrize(
    ("status", "category"),
    [(429, ErrorCategory.RATE_LIMITED), (503, ErrorCategory.SERVER)],
)
async def test_sink_classifies_retry_after(
    data_api_receiver: DataApiReceiver,
    session: aiohttp.ClientSession,
    status: int,
    category: ErrorCategory,
) -> None:
    r = data_api_receiver
    sink = sink_for(r, session)
    await r.inject_fault(status, retry_after=7, path="/events")
    with pytest.raises(DeliveryError) as exc:
        await sink.write([payload()])
    assert exc.value.category is category
    assert exc.value.status == status
    assert exc.value.retry_after == 7.0
    assert exc.value.transient
    assert r.events() == []
    await sink.write([payload()])  # the fault is used up
    assert len(r.events()) == 1


async def test_sink_check_against_unhealthy_receiver(
    data_api_receiver: DataApiReceiver, session: aiohttp.ClientSession
) -> None:
    r = data_api_receiver
    await r.inject_fault(503, retry_after=2, path="/health")
    with pytest.raises(DeliveryError) as exc:
        await sink_for(r, session).check()
    assert exc.value.category is ErrorCategory.SERVER
    assert exc.value.retry_after == 2.0
    await sink_for(r, session).check()
    assert r.events() == []  # check() stores nothing


# --------------------------------------------------------------------------
# the written contract matches the code


def _receiver_module() -> Any:
    spec = importlib.util.spec_from_file_location("data_api_receiver", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openapi_matches_encoder_and_receiver() -> None:
    spec = yaml.safe_load((DOCS / "data-api.openapi.yaml").read_text())
    assert spec["openapi"].startswith("3.1")
    schemas = spec["components"]["schemas"]
    receiver = _receiver_module()
    encoded = event(n=1, extra={"area": "kitchen"})
    event_schema = schemas["Event"]
    assert set(event_schema["required"]) == set(receiver._EVENT_REQUIRED)
    assert set(encoded) == set(event_schema["properties"])
    assert set(event_schema["required"]) <= set(encoded)
    assert set(schemas["Device"]["properties"]) == {"id", *receiver._DEVICE_FIELDS}
    assert set(schemas["Entity"]["properties"]) == {"entity_id", *receiver._ENTITY_FIELDS}
    assert set(device("d")) == set(schemas["Device"]["properties"])
    assert set(entity("a.b")) == set(schemas["Entity"]["properties"])
    for path in ("/events", "/internal/devices/bulk_upsert", "/internal/entities/bulk_upsert"):
        assert {"200", "400", "401", "413", "422", "429", "503"} <= set(
            spec["paths"][path]["post"]["responses"]
        )
    assert spec["paths"]["/health"]["get"]["security"] == []
