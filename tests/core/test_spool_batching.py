"""The spool's few-statement inserts and deletes keep order and counters exact."""

from pathlib import Path

from custom_components.ha_ingestor.core import spool as spool_mod
from custom_components.ha_ingestor.core.spool import Spool


def test_multi_row_inserts_keep_order_and_counters(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.open()
    rows = [(i, b"p%d" % i) for i in range(spool_mod._INSERT_ROWS * 2 + 7)]
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
