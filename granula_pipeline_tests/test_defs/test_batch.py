"""`ingest_batch`: many files in one run, each its own partition, outcome and folder."""

from __future__ import annotations

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    ReexecutionOptions,
    execute_job,
    reconstructable,
)

from granula_pipeline.definitions import ingest_batch_job
from granula_pipeline.defs.status import COLUMNS_UNCHANGED, NO_FAILED_CHUNKS, ROWS_ADD_UP
from granula_pipeline.runs import ingest, ingest_batch_of
from granula_pipeline_tests.factories import write_orders
from granula_pipeline_tests.faults import clear_fault, inject_fault
from granula_pipeline_tests.test_defs.test_status_asset import latest_checks

pytestmark = pytest.mark.slow

FILE_STATUS = AssetKey("file_status")


def materialized(instance, partition: str) -> dict[str, object]:
    records = instance.fetch_materializations(FILE_STATUS, limit=100).records
    for record in records:
        if record.asset_materialization.partition == partition:
            return {k: v.value for k, v in record.asset_materialization.metadata.items()}
    raise AssertionError(f"{partition} not materialized")


def table_ids(db, dataset: str, file_id: int) -> list[int]:
    rows = db.execute(
        f"SELECT id FROM datasets.{dataset} WHERE _granula_file_id = %s ORDER BY id", (file_id,)
    ).fetchall()
    return [row[0] for row in rows]


def test_each_file_of_a_batch_is_its_own_partition_and_a_bad_file_fails_only_itself(
    instance, granula, settings, db
):
    good = [write_orders(settings.inbox / "orders" / f"day-{i}.csv", 10 + i) for i in range(3)]
    bad = settings.inbox / "orders" / "broken.csv"
    bad.write_text('id,name,value\n1,"never closed,2\n2,b,3\n')

    records, result = ingest_batch_of(instance, granula, [good[0], bad, good[1], good[2]])

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert failure.step_key == "finish_batch"
    assert "1 of 4 files failed" in failure.step_failure_data.error.message
    first, broken, second, third = records
    for record, rows in ((first, 10), (second, 11), (third, 12)):
        assert record.status == "completed" and record.loaded_rows == rows
        assert table_ids(db, "orders", record.file_id) == list(range(rows))
        metadata = materialized(instance, record.partition_key)
        assert metadata["status"] == "completed" and metadata["dagster/row_count"] == rows
        assert latest_checks(instance, record.partition_key) == {
            ROWS_ADD_UP: (True, "ERROR"),
            NO_FAILED_CHUNKS: (True, "ERROR"),
            COLUMNS_UNCHANGED: (True, "WARN"),
        }
        assert (
            settings.data_dir / "processed" / "orders" / f"{record.file_id}-{record.filename}"
        ).exists()

    assert broken.status == "failed" and "never closed" in (broken.error_message or "")
    # Its partition is materialized with its outcome: the partition page shows it (status, error).
    outcome = materialized(instance, broken.partition_key)
    assert outcome["status"] == "failed"
    assert "line 2" in outcome["error"]
    assert (settings.data_dir / "failed" / "orders" / f"{broken.file_id}-broken.csv").exists()
    run = instance.get_run_by_id(result.run_id)
    assert run.tags["granula/files"] == "4"
    assert run.tags["granula/dataset"] == "orders"


def test_small_files_load_in_one_step_and_the_run_stays_small(instance, granula, settings):
    paths = [write_orders(settings.inbox / "many" / f"{i:02d}.csv", 5) for i in range(12)]

    records, result = ingest_batch_of(instance, granula, paths)

    assert result.success
    assert {record.status for record in records} == {"completed"}
    steps = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}
    assert len(steps) == 3  # plan, one load step for the twelve files, finish
    per_file = 1 + 3  # a materialization and three checks; the table's once for all twelve
    assert len(instance.all_logs(result.run_id)) - 12 * per_file < 40  # not a step per file
    tables = instance.fetch_materializations(AssetKey(["datasets", "many"]), limit=10).records
    assert (
        len(tables) == 1
        and tables[0].asset_materialization.metadata["dagster/row_count"].value == 60
    )


def test_a_batch_reexecuted_from_failure_loads_only_what_failed(
    instance, granula, settings, db, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    ingest(
        instance,
        granula,
        write_orders(settings.data_dir / "seed.csv", 1, start=-1),
        dataset="flaky",
    )
    inject_fault(db, "flaky", chunk=0, sqlstate="57P01")  # the server going away, for good
    steady = [write_orders(settings.inbox / "steady" / f"{i}.csv", 20) for i in range(2)]
    flaky = write_orders(settings.inbox / "flaky" / "day.csv", 30)

    records, parent = ingest_batch_of(instance, granula, [*steady, flaky])

    assert not parent.success
    assert [r.status for r in records] == ["completed", "completed", "completed_with_errors"]
    clear_fault(db, "flaky")
    with execute_job(
        reconstructable(ingest_batch_job),
        instance=instance,
        reexecution_options=ReexecutionOptions.from_failure(parent.run_id, instance),
        tags=instance.get_run_by_id(parent.run_id).tags,
    ) as child:
        assert child.success
    for record, rows in zip(records, (20, 20, 30), strict=True):
        assert table_ids(db, record.dataset, record.file_id) == list(range(rows))
    with db.cursor() as cursor:
        statuses = cursor.execute(
            "SELECT status FROM granula.files WHERE file_id = ANY(%s) ORDER BY file_id",
            ([r.file_id for r in records],),
        ).fetchall()
    assert [s for (s,) in statuses] == ["completed", "completed", "completed"]
    steady_materializations = [
        r
        for r in instance.fetch_materializations(FILE_STATUS, limit=100).records
        if r.asset_materialization.partition == records[0].partition_key
    ]
    assert len(steady_materializations) == 1  # the re-execution did not load it again
