"""The byte format of a spool segment: the points of one flush, compressed together.

A segment is one format byte followed by a compressed body::

    flags (1 byte) | count (uint32) | times (int64 x count) | lengths (uint32 x count) | payloads

little-endian. ``times`` are deltas from the previous point (the first from 0)
unless ``flags`` has :data:`_ABSOLUTE` (deltas that do not fit in 64 bits).
The format byte says how the body is compressed: zlib, or zstd (Python 3.14's
``compression.zstd``) where available. Either is always readable where its
module exists; zlib is written when zstd is not available.
"""

from array import array
from collections.abc import Sequence
from itertools import accumulate
from operator import sub
import struct
import sys
from types import ModuleType
from typing import Final
import zlib

_zstd: ModuleType | None
try:  # Python 3.14+
    from compression import zstd as _zstd
except ImportError:  # pragma: no cover - older Pythons write zlib
    _zstd = None

FORMAT_ZLIB: Final = 1
FORMAT_ZSTD: Final = 2
#: What this interpreter writes.
WRITE_FORMAT: Final = FORMAT_ZSTD if _zstd is not None else FORMAT_ZLIB
_ABSOLUTE: Final = 1
_HEADER: Final = struct.Struct("<BI")
_BIG_ENDIAN: Final = sys.byteorder == "big"
# zlib level 1 and zstd level 1: a flush's lines repeat their measurement, tags
# and field names, so the fastest levels already shrink them many times over.
_ZLIB_LEVEL: Final = 1
_ZSTD_LEVEL: Final = 1


class SegmentError(ValueError):
    """A segment's bytes cannot be decoded (damaged, or an unknown format)."""


def _little(values: array[int]) -> bytes:
    if _BIG_ENDIAN:
        values.byteswap()
    return values.tobytes()


def encode(times: Sequence[int], payloads: Sequence[bytes], fmt: int = WRITE_FORMAT) -> bytes:
    """Return the segment bytes for points ``times[i]``, ``payloads[i]``."""
    flags = 0
    try:
        deltas = array("q", map(sub, times, [0, *times[:-1]]))
    except OverflowError:
        deltas = array("q", times)
        flags = _ABSOLUTE
    body = b"".join(
        (
            _HEADER.pack(flags, len(payloads)),
            _little(deltas),
            _little(array("I", map(len, payloads))),
            *payloads,
        )
    )
    if fmt == FORMAT_ZSTD and _zstd is not None:
        packed: bytes = _zstd.compress(body, _ZSTD_LEVEL)
        return bytes((FORMAT_ZSTD,)) + packed
    return bytes((FORMAT_ZLIB,)) + zlib.compress(body, _ZLIB_LEVEL)


def _body(data: bytes) -> bytes:
    if not data:
        raise SegmentError("empty segment")
    fmt = data[0]
    try:
        if fmt == FORMAT_ZLIB:
            return zlib.decompress(memoryview(data)[1:])
        if fmt == FORMAT_ZSTD and _zstd is not None:
            unpacked: bytes = _zstd.decompress(memoryview(data)[1:])
            return unpacked
    except (zlib.error, ValueError, EOFError) as err:
        raise SegmentError(f"damaged segment: {err}") from None
    except Exception as err:  # noqa: BLE001 - zstd's error type differs between builds
        raise SegmentError(f"damaged segment: {err}") from None
    raise SegmentError(f"unknown segment format {fmt}")


def decode(data: bytes) -> tuple[list[int], list[bytes]]:
    """Return the times and payloads of a segment; raise :class:`SegmentError` if damaged."""
    body = _body(data)
    if len(body) < _HEADER.size:
        raise SegmentError("truncated segment")
    flags, count = _HEADER.unpack_from(body)
    start = _HEADER.size
    times = array("q")
    lengths = array("I")
    try:
        times.frombytes(body[start : start + 8 * count])
        lengths.frombytes(body[start + 8 * count : start + 12 * count])
    except ValueError:
        raise SegmentError("truncated segment") from None
    if len(times) != count or len(lengths) != count:
        raise SegmentError("truncated segment")
    if _BIG_ENDIAN:
        times.byteswap()
        lengths.byteswap()
    base = start + 12 * count
    ends = list(accumulate(lengths, initial=base))
    if ends[-1] != len(body):
        raise SegmentError("segment payloads do not match their lengths")
    payloads = list(map(body.__getitem__, map(slice, ends[:-1], ends[1:])))
    absolute = times.tolist() if flags & _ABSOLUTE else list(accumulate(times))
    return absolute, payloads


def encode_offsets(offsets: Sequence[int]) -> bytes:
    """Return point offsets within a segment as bytes (sorted uint32)."""
    return _little(array("I", sorted(offsets)))


def decode_offsets(data: bytes | None) -> set[int]:
    """Return the offsets stored by :func:`encode_offsets` (empty for None)."""
    if not data:
        return set()
    values = array("I")
    values.frombytes(data[: len(data) - len(data) % 4])
    if _BIG_ENDIAN:
        values.byteswap()
    return set(values)
