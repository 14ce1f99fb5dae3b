"""Encoders of HA-free event snapshots: what the rest of the integration imports.

The shared types (:class:`EventRecord`, :class:`EncoderConfig`,
:class:`EncodeResult`, the :class:`Encoder` contract) live in
:mod:`.encoding`, InfluxDB line protocol in :mod:`.line_protocol` (its line
cache in :mod:`.line_cache`) and the data-api's JSON in :mod:`.json_events`.
"""

from .encoding import (
    MAX_TIME_NS,
    MIN_TIME_NS,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    EncodeError,
    Encoder,
    EncoderConfig,
    EncodeResult,
    EventRecord,
    MeasurementStrategy,
    Override,
    Overrides,
    Rendered,
    clean_text,
    json_safe,
    record_debug_payload,
)
from .json_events import JsonEventEncoder, idempotency_key
from .line_protocol import LineProtocolEncoder, format_line, single_line, truncate_utf8

__all__ = [
    "MAX_TIME_NS",
    "MIN_TIME_NS",
    "STATE_UNAVAILABLE",
    "STATE_UNKNOWN",
    "EncodeError",
    "EncodeResult",
    "Encoder",
    "EncoderConfig",
    "EventRecord",
    "JsonEventEncoder",
    "LineProtocolEncoder",
    "MeasurementStrategy",
    "Override",
    "Overrides",
    "Rendered",
    "clean_text",
    "format_line",
    "idempotency_key",
    "json_safe",
    "record_debug_payload",
    "single_line",
    "truncate_utf8",
]
