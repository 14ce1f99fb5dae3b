"""The spool's few-statement inserts and deletes keep order and counters exact."""

from pathlib import Path
import sqlite3

import pytest

from custom_components.ha_ingestor.core import spool as spool_mod, spool_sqlite
from custom_components.ha_ingestor.core.spool import Spool, SpoolRow


def test_multi_row_inserts_keep_order_and_counters(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    rows = [(i, b"p%d" % i) for i in range(spool_sqlite._INSERT_ROWS * 2 + 7)]
    assert spool.append(rows).stored == len(rows)
    # Many odd tail sizes: the statement cache stays small.
    for size in range(1, 13):
        spool.append([(10_000 + size, b"t" * size)] * size)
    store = spool._disk
    assert store is not None
    assert len(store._insert_sql) <= 9
    peeked = spool.peek(len(rows), 1 << 30)
    assert [(r.time_ns, r.payload) for r in peeked] == rows
    assert [r.id for r in peeked] == sorted(r.id for r in peeked)
    extra = sum(range(1, 13))
    stats = spool.stats()
    assert stats.pending_count == len(rows) + extra
    assert stats.pending_bytes == sum(len(p) for _, p in rows) + sum(s * s for s in range(1, 13))
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


@pytest.mark.parametrize("aggregate", [True, False])
@pytest.mark.parametrize("max_bytes", [1, 10, 320, 1 << 20])
def test_peek_both_ways_same_rows(tmp_path: Path, aggregate: bool, max_bytes: int) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    store = spool._disk
    assert store is not None
    store.aggregate_peek = aggregate
    assert spool.peek(10, max_bytes) == []
    spool.append([(i, p) for i, p in enumerate(PAYLOADS * 3)])
    spool.delete([r.id for r in spool.peek(100, 1 << 20)][1::3])  # holes in the ids
    expected: list[SpoolRow] = []
    total = 0
    for row in spool_rows(tmp_path / "s.sqlite"):
        total += len(row.payload)
        if expected and total > max_bytes:
            break
        expected.append(row)
    got = spool.peek(100, max_bytes)
    assert got == expected
    assert all(isinstance(r, SpoolRow) and type(r.payload) is bytes for r in got)
    assert spool.peek(2, max_bytes) == expected[:2]
    spool.close()


def spool_rows(path: Path) -> list[SpoolRow]:
    conn = sqlite3.connect(path)
    try:
        return [
            SpoolRow(*row)
            for row in conn.execute("SELECT id, time_ns, payload FROM pending ORDER BY id")
        ]
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("name", "query"),
    [
        # Head out of queue order.
        (
            "_PEEK_HEAD",
            (
                "SELECT group_concat(id), group_concat(time_ns), group_concat(length(payload))"
                " FROM (SELECT id, time_ns, payload FROM pending WHERE id > ?"
                " ORDER BY id DESC LIMIT ?)"
            ),
        ),
        # Payloads that do not match the head.
        (
            "_PEEK_PAYLOADS",
            (
                "SELECT group_concat(id), CAST(group_concat(payload, '') AS BLOB) FROM"
                " (SELECT id, payload FROM pending WHERE id BETWEEN ? AND ? ORDER BY id DESC)"
            ),
        ),
    ],
)
def test_peek_falls_back_when_order_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, query: str
) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    spool.append([(i, b"p%d" % i) for i in range(5)])
    monkeypatch.setattr(spool_sqlite, name, query)
    assert [r.payload for r in spool.peek(10, 1 << 20)] == [b"p%d" % i for i in range(5)]
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
    """A spool on disk (aggregated or row-by-row reads) or in its memory fallback."""
    spool = Spool(path / "s.sqlite")
    if mode == "memory":
        with monkeypatch.context() as patch:  # no directory for the database: memory
            patch.setattr(Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "")))
            spool.open()
        assert spool.storage_failed
        return spool
    spool.open()
    assert spool._disk is not None
    spool._disk.aggregate_peek = mode == "aggregate"
    return spool


@pytest.mark.parametrize("mode", ["aggregate", "rows", "memory"])
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
