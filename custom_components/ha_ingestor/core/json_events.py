"""Encode event records as the data-api's JSON objects."""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
import hashlib
import json
from typing import Any, Final

from .encoding import (
    SKIPPED_STATES,
    EncodeError,
    EncodeResult,
    EventRecord,
    Rendered,
    check_record,
    clean_text,
    json_safe,
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _ns_to_iso(time_ns: int) -> str:
    """ISO 8601 UTC with microseconds for an epoch timestamp in ns."""
    seconds, rest = divmod(time_ns, 1_000_000_000)
    moment = _EPOCH + timedelta(seconds=seconds, microseconds=rest // 1000)
    return moment.isoformat(timespec="microseconds")


def idempotency_key(entity_id: str, time_ns: int, event_type: str) -> str:
    """Stable key for one event: sha256 hex (32 chars) of its identity."""
    raw = f"{entity_id}\x1f{time_ns}\x1f{event_type}"
    return hashlib.sha256(clean_text(raw).encode("utf-8")).hexdigest()[:32]


class JsonEventEncoder:
    """Encode :class:`EventRecord` objects as one compact JSON object each.

    Keys: ``entity_id``, ``domain``, ``state``, ``attributes`` (JSON-safe:
    non-finite floats become null, other objects their ``str``),
    ``last_changed`` / ``last_updated`` (ISO 8601 UTC), ``time_ns``,
    ``context_id``, ``event_type``, ``idempotency_key`` and, when the record
    has any, ``extra``. Unknown / unavailable / empty states are skipped unless
    ``include_unknown`` is set (the same default as :class:`EncoderConfig`).
    """

    def __init__(self, *, include_unknown: bool = False) -> None:
        """Configure whether unknown / unavailable / empty states are sent."""
        self.include_unknown = include_unknown

    def encode(self, record: EventRecord) -> bytes | None:
        """Encode one record; None if skipped, :class:`EncodeError` if unencodable."""
        check_record(record)
        if record.state in SKIPPED_STATES and not self.include_unknown:
            return None
        # check_record bounds both stamps to int64 ns: years 1677-2262, no overflow.
        last_changed = _ns_to_iso(record.last_changed_ns)
        last_updated = _ns_to_iso(record.time_ns)
        data: dict[str, Any] = {
            "entity_id": clean_text(record.entity_id),
            "domain": clean_text(record.domain),
            "state": clean_text(record.state),
            "attributes": json_safe(record.attributes),
            "last_changed": last_changed,
            "last_updated": last_updated,
            "time_ns": record.time_ns,
            "context_id": None if record.context_id is None else clean_text(record.context_id),
            "event_type": clean_text(str(record.event_type)),
            "idempotency_key": idempotency_key(
                record.entity_id, record.time_ns, str(record.event_type)
            ),
        }
        if record.extra:
            data["extra"] = json_safe(record.extra)
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")

    def encode_many(self, records: Iterable[EventRecord | Rendered]) -> EncodeResult:
        """Encode many records; never raises (bad records end up in ``rejected``)."""
        result = EncodeResult()
        for record in records:
            if isinstance(record, tuple):
                result.lines.append(record)
                continue
            try:
                payload = self.encode(record)
            except EncodeError as exc:
                result.rejected.append((record, str(exc)))
            except Exception as exc:  # noqa: BLE001 - one odd record must not stop the batch
                result.rejected.append((record, f"unexpected {type(exc).__name__}: {exc}"[:500]))
            else:
                if payload is None:
                    result.skipped += 1
                else:
                    result.lines.append((record.time_ns, payload))
        return result
