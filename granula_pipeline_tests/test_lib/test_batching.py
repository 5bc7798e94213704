"""Which ready files share a run, and which chunks share a load step."""

from __future__ import annotations

from granula_pipeline.lib.inbox.batching import group_chunks, plan_batches
from granula_pipeline.lib.inbox.scan import InboxCursor, InboxFile, select_ready
from granula_pipeline.lib.model import ChunkPlan

NOW = 1_000 * 10**9


def found(name: str, *, size: int = 100, priority: int = 0, age: float = 60) -> InboxFile:
    changed = NOW - int(age * 1e9)
    return InboxFile(name, size, changed, priority, "orders", changed)


def names(batches) -> list[list[str]]:
    return [[f.relative_path for f in batch.files] for batch in batches]


def test_small_files_share_a_run_up_to_the_count():
    ready = [found(f"{i}.csv") for i in range(5)]
    batches = plan_batches(ready, max_files=2, max_bytes=10_000)
    assert names(batches) == [["0.csv", "1.csv"], ["2.csv", "3.csv"], ["4.csv"]]


def test_a_batch_stops_at_the_size_and_a_large_file_runs_alone():
    ready = [
        found("a", size=400),
        found("big", size=1000),
        found("b", size=400),
        found("c", size=300),
    ]
    batches = plan_batches(ready, max_files=50, max_bytes=1000)
    assert names(batches) == [["big"], ["a", "b"], ["c"]]
    assert [batch.size_bytes for batch in batches] == [1000, 800, 300]


def test_small_files_are_shared_out_evenly_over_the_run_slots():
    ready = [found(f"{i:02d}.csv") for i in range(25)]
    batches = plan_batches(ready, max_files=50, max_bytes=10_000, spread=2)
    assert [len(batch.files) for batch in batches] == [13, 12]
    assert [f.relative_path for b in batches for f in b.files] == [f.relative_path for f in ready]
    assert [len(b.files) for b in plan_batches(ready, max_files=10, max_bytes=10**4, spread=2)] == [
        9,
        9,
        7,
    ]


def test_a_few_files_are_not_spread_over_runs():
    ready = [found(f"{i:02d}.csv") for i in range(19)]
    batches = plan_batches(ready, max_files=50, max_bytes=10_000, spread=2)
    assert [len(batch.files) for batch in batches] == [19]


def test_a_batch_never_mixes_priorities_and_higher_ones_come_first():
    ready = [
        found("p9-a", priority=9),
        found("p9-b", priority=9),
        found("p0-big", priority=0, size=5000),
        found("p3", priority=3),
        found("p0-a", priority=0),
    ]
    batches = plan_batches(ready, max_files=50, max_bytes=1000)
    assert names(batches) == [["p9-a", "p9-b"], ["p3"], ["p0-big"], ["p0-a"]]
    assert [batch.priority for batch in batches] == [9, 3, 0, 0]


def chunk(index: int, rows: int, size: int) -> ChunkPlan:
    return ChunkPlan(index, 0, size, 1, rows)


def test_chunks_of_small_files_share_a_step_and_a_full_chunk_has_its_own():
    chunks = [chunk(0, 10, 100), chunk(1, 10, 100), chunk(2, 100, 1000), chunk(3, 5, 50)]
    groups = group_chunks(chunks, lambda c: c, max_rows=100, max_bytes=1000)
    assert [[c.index for c in group] for group in groups] == [[0, 1], [2], [3]]
    assert group_chunks([], lambda c: c, max_rows=1, max_bytes=1) == []


def test_a_quiet_file_is_ready_at_the_first_look():
    scan = select_ready([found("old.csv")], InboxCursor({}, {}), now_ns=NOW, settle_seconds=2)
    assert [f.relative_path for f in scan.ready] == ["old.csv"]


def test_a_file_changed_lately_by_mtime_or_ctime_waits():
    recent = found("new.csv", age=0.5)
    copied = InboxFile("kept-mtime.csv", 100, NOW - 3600 * 10**9, 0, "orders", NOW - 10**8)
    scan = select_ready([recent, copied], InboxCursor({}, {}), now_ns=NOW, settle_seconds=2)
    assert scan.ready == []
    assert scan.next_ready_in(NOW, 2) == 1.5


def test_a_file_changed_since_the_last_look_waits_one_more_look_whatever_its_age():
    before = select_ready(
        [found("f.csv", size=1)], InboxCursor({}, {}), now_ns=NOW, settle_seconds=0
    )
    grown = found("f.csv", size=2)
    after = select_ready([grown], before.cursor, now_ns=NOW, settle_seconds=0)
    assert after.ready == [] and after.waiting == [grown]
    again = select_ready([grown], after.cursor, now_ns=NOW, settle_seconds=0)
    assert again.ready == [grown]
