"""The spool's segments: inserts, partial deletes and reads keep order and counters exact."""

from pathlib import Path

import pytest

from custom_components.ha_ingestor.core import spool as spool_mod
from custom_components.ha_ingestor.core.spool import Spool, SpoolRow
from custom_components.ha_ingestor.core.spool_sqlite import DEFAULT_SEGMENT_POINTS


def test_segments_keep_order_and_counters(tmp_path: Path) -> None:
    """An append of more than ``segment_points`` makes several segments, one row each."""
    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    rows = [(i, b"p%d" % i) for i in range(DEFAULT_SEGMENT_POINTS * 2 + 7)]
    assert spool.append(rows).stored == len(rows)
    for size in range(1, 13):
        spool.append([(10_000 + size, b"t" * size)] * size)
    store = spool._disk
    assert store is not None
    # One insert per segment: 3 for the big append, one per small one.
    assert store.conn.execute("SELECT COUNT(*) FROM segments").fetchone() == (3 + 12,)
    extra = sum(range(1, 13))
    peeked = spool.peek(len(rows) + extra, 1 << 30)
    assert [(r.time_ns, r.payload) for r in peeked[: len(rows)]] == rows
    assert [r.id for r in peeked] == list(range(1, len(rows) + extra + 1))
    stats = spool.stats()
    assert stats.pending_count == len(rows) + extra
    assert stats.pending_bytes == sum(len(p) for _, p in rows) + sum(s * s for s in range(1, 13))
    assert 0 < stats.disk_bytes < stats.pending_bytes
    spool.close()
    # Counters were kept right: a reopen counts the rows again from scratch.
    spool.open()
    assert spool.stats().pending_count == len(rows) + extra
    spool.close()


def test_delete_non_contiguous_and_unknown_ids(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    spool.append([(i, b"x" * (i + 1)) for i in range(1200)])
    ids = [r.id for r in spool.peek(1200, 1 << 30)]
    every_other = ids[::2]
    assert spool.delete([*every_other, 10**9]) == len(every_other)
    # Already gone (a whole chunk of them) and a contiguous range of unknown ids.
    assert spool.delete(every_other) == 0
    assert spool.delete([10**9, 10**9 + 1]) == 0
    left = spool.peek(1200, 1 << 30)
    assert [r.id for r in left] == ids[1::2]
    stats = spool.stats()
    assert stats.pending_count == 600
    assert stats.pending_bytes == sum(len(r.payload) for r in left)
    spool.close()


PAYLOADS = [b"a", b"\x00nul", b"\xff\xfe not utf-8", b"comma,s", b"", b"x" * 300, b"\xc3\xa9"]


@pytest.mark.parametrize("segment_points", [1, 4, DEFAULT_SEGMENT_POINTS])
@pytest.mark.parametrize("max_bytes", [1, 10, 320, 1 << 20])
def test_peek_with_holes_and_limits(tmp_path: Path, segment_points: int, max_bytes: int) -> None:
    """Peek skips points gone from a segment and honours both limits (at least one point)."""
    spool = Spool(tmp_path / "s.sqlite", segment_points=segment_points)
    spool.open()
    assert spool.peek(10, max_bytes) == []
    spool.append([(i, p) for i, p in enumerate(PAYLOADS * 3)])
    all_rows = spool.peek(100, 1 << 20)
    gone = {r.id for r in all_rows[1::3]}
    spool.delete(sorted(gone))  # holes in the ids
    expected: list[SpoolRow] = []
    total = 0
    for row in (r for r in all_rows if r.id not in gone):
        total += len(row.payload)
        if expected and total > max_bytes:
            break
        expected.append(row)
    got = spool.peek(100, max_bytes)
    assert got == expected
    assert all(isinstance(r, SpoolRow) and type(r.payload) is bytes for r in got)
    assert spool.peek(2, max_bytes) == expected[:2]
    spool.close()
    # The holes survive a restart: nothing delivered comes back.
    spool.open()
    assert [r.id for r in spool.peek(100, 1 << 20)] == [r.id for r in all_rows if r.id not in gone]
    spool.close()


def test_append_reports_the_oldest_row_only_when_it_may_drop(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_bytes=30)
    spool.open()
    assert spool.append([(5, b"x" * 10)]).oldest_before is None  # fits: nothing to read
    result = spool.append([(7, b"y" * 10), (9, b"z" * 15)])
    assert (result.stored, result.dropped, result.oldest_before) == (2, 1, 5)
    assert result == spool_mod.AppendResult(2, 1)  # not part of equality
    assert [r.time_ns for r in spool.peek(10, 1 << 20)] == [7, 9]
    spool.close()
    aged = Spool(tmp_path / "a.sqlite", max_age_seconds=60)
    aged.open()
    assert aged.append([(3, b"a")]).oldest_before is None
    assert aged.append([(4, b"b")]).oldest_before == 3
    aged.close()


def open_spool(path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> Spool:
    """A spool on disk (segments of 5 000 or 2 points) or in its memory fallback."""
    spool = Spool(path / "s.sqlite", segment_points=2 if mode == "small_segments" else 5000)
    if mode == "memory":
        with monkeypatch.context() as patch:  # no directory for the database: memory
            patch.setattr(Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "")))
            spool.open()
        assert spool.storage_failed
        return spool
    spool.open()
    assert spool._disk is not None
    return spool


@pytest.mark.parametrize("mode", ["segments", "small_segments", "memory"])
def test_hand_back_and_advance(tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = open_spool(tmp_path, mode, monkeypatch)
    first = spool.append([(i, b"p%d" % i) for i in range(5)], hand_back=True)
    head = spool.peek(10, 1 << 20)
    # The ids the spool really gave, and the payloads.
    assert list(first.rows.ids) == [r.id for r in head]
    assert list(first.rows.payloads) == [r.payload for r in head]
    ids = list(first.rows.ids)
    generation = first.generation
    # Read after the third row; the first two are delivered and deleted in the same job.
    delivered = spool_mod.RowIds(generation, ids[:2])
    batch = spool.advance(delivered, generation, ids[2], 10, 1 << 20)
    assert batch.generation == generation
    assert (list(batch.rows.ids), list(batch.rows.payloads)) == (ids[3:], [b"p3", b"p4"])
    assert spool.stats().pending_count == 3
    # Ids of another generation are ignored: nothing deleted, reading from the head.
    stale = spool_mod.RowIds(generation + 1_000, ids)
    assert list(spool.advance(stale, stale.generation, ids[2], 10, 1 << 20).rows.ids) == ids[2:]
    assert spool.append([], delivered=stale) == spool_mod.AppendResult(0, 0)
    assert spool.delete_delivered(stale) == 0
    assert spool.quarantine(stale, "bad", "bad_data") == 0
    assert spool.stats().pending_count == 3
    assert spool.stats().dead_letter_count == 0
    # Deleting through append, in the same job as the next rows.
    more = spool.append(
        [(9, b"p9")], delivered=spool_mod.RowIds(generation, [ids[2]]), hand_back=True
    )
    assert list(more.rows.payloads) == [b"p9"]
    assert [r.payload for r in spool.peek(10, 1 << 20)] == [b"p3", b"p4", b"p9"]
    assert spool.delete_delivered(spool_mod.RowIds(generation, ids[3:])) == 2
    assert [r.payload for r in spool.peek(10, 1 << 20)] == [b"p9"]
    spool.close()


def test_generation_changes_with_the_store(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    one = spool.append([(1, b"a")], hand_back=True).generation
    spool.close()
    spool.open()
    assert spool.append([(2, b"b")], hand_back=True).generation != one
    spool.close()
