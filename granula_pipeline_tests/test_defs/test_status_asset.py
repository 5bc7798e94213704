"""What a user sees of a file on the `file_status` asset (metadata, checks) and of its dataset's
table on the dataset's asset (row count, columns, lineage)."""

from __future__ import annotations

import pytest
from dagster import AssetCheckKey, AssetKey

from granula_pipeline.definitions import build_definitions
from granula_pipeline.defs.datasets import datasets_loaded_events
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.status import COLUMNS_UNCHANGED, NO_FAILED_CHUNKS, ROWS_ADD_UP
from granula_pipeline.runs import ingest
from granula_pipeline_tests.factories import write_orders
from granula_pipeline_tests.faults import inject_fault

pytestmark = pytest.mark.slow

FILE_STATUS = AssetKey("file_status")


def latest_checks(instance, partition: str) -> dict[str, tuple[bool, str]]:
    """Each check's latest evaluation for `partition`: (passed, severity)."""
    found = {}
    for name in (ROWS_ADD_UP, NO_FAILED_CHUNKS, COLUMNS_UNCHANGED):
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(FILE_STATUS, name), limit=20
        )
        for record in history:
            evaluation = record.event.dagster_event.event_specific_data
            if evaluation.partition == partition:
                found[name] = (evaluation.passed, evaluation.severity.value)
                break
    return found


def test_loaded_file_materializes_with_standard_metadata_and_passing_checks(
    instance, granula, settings
):
    path = write_orders(settings.inbox / "shown.csv", 40)
    record, result = ingest(instance, granula, path)
    assert result.success

    [event] = instance.fetch_materializations(FILE_STATUS, limit=1).records
    materialization = event.asset_materialization
    assert materialization.partition == record.partition_key
    metadata = materialization.metadata
    assert metadata["status"].value == "completed"
    assert metadata["dagster/row_count"].value == 40
    assert metadata["dagster/table_name"].value.endswith(".datasets.shown")
    columns = [(c.name, c.type) for c in metadata["dagster/column_schema"].value.columns]
    assert columns[:3] == [("id", "bigint"), ("name", "text"), ("value", "double precision")]
    assert columns[3:] == [
        ("_granula_file_id", "bigint"),
        ("_granula_chunk_index", "integer"),
        ("_granula_row", "bigint"),
    ]
    assert "name 1, with comma" in metadata["preview"].value
    assert metadata["rejected_preview"].value == "No rejected rows."
    assert metadata["source_rows"].value == metadata["loaded_rows"].value == 40

    assert latest_checks(instance, record.partition_key) == {
        ROWS_ADD_UP: (True, "ERROR"),
        NO_FAILED_CHUNKS: (True, "ERROR"),
        COLUMNS_UNCHANGED: (True, "WARN"),
    }


def test_changed_columns_warn(instance, granula, settings):
    write_orders(settings.inbox / "first.csv", 5)
    ingest(instance, granula, settings.inbox / "first.csv", dataset="evolving")
    second = settings.inbox / "second.csv"
    second.write_text("id,name,value,extra\n1,a,2.5,x\n")
    record, _ = ingest(instance, granula, second, dataset="evolving")

    assert record.status == "completed"
    assert latest_checks(instance, record.partition_key)[COLUMNS_UNCHANGED] == (False, "WARN")


def test_failed_chunk_is_reported_on_the_asset(instance, settings, db, database_url):
    granula = GranulaResource(
        database_url=database_url, data_dir=str(settings.data_dir), chunk_size=10
    )
    write_orders(settings.inbox / "seed.csv", 1)
    ingest(instance, granula, settings.inbox / "seed.csv", dataset="flaky")
    inject_fault(db, "flaky", chunk=1, message="chunk one refused")
    record, result = ingest(
        instance, granula, write_orders(settings.inbox / "f.csv", 30), dataset="flaky"
    )

    assert not result.success and record.status == "completed_with_errors"
    # Materialized with its outcome: the partition page shows a materialization's metadata only.
    [event] = instance.fetch_materializations(FILE_STATUS, limit=1).records
    failed = event.asset_materialization
    assert failed.partition == record.partition_key
    assert failed.metadata["status"].value == "completed_with_errors"
    assert "chunk one refused" in failed.metadata["error"].value
    assert "chunk one refused" in (failed.description or "")
    assert failed.metadata["run"].value == result.run_id
    assert latest_checks(instance, record.partition_key)[NO_FAILED_CHUNKS] == (False, "ERROR")
    # The rows it did load (chunks 0 and 2) are in the table, and its asset says so.
    [table] = instance.fetch_materializations(AssetKey(["datasets", "flaky"]), limit=1).records
    assert table.asset_materialization.metadata["dagster/row_count"].value == 1 + 20
    assert table.asset_materialization.metadata["last_file_id"].value == record.file_id


def test_each_load_materializes_its_dataset_table(instance, granula, settings):
    first, _ = ingest(instance, granula, write_orders(settings.inbox / "a.csv", 7), dataset="sales")
    second, result = ingest(
        instance, granula, write_orders(settings.inbox / "b.csv", 5, start=100), dataset="sales"
    )
    assert result.success

    key = AssetKey(["datasets", "sales"])
    events = instance.fetch_materializations(key, limit=5).records
    assert [e.asset_materialization.metadata["dagster/row_count"].value for e in events] == [12, 7]
    latest = events[0].asset_materialization.metadata
    assert latest["last_file"].value == "b.csv"
    assert latest["last_file_partition"].value == second.partition_key
    assert latest["dagster/table_name"].value.endswith(".datasets.sales")
    names = [c.name for c in latest["dagster/column_schema"].value.columns]
    assert names[:3] == ["id", "name", "value"]
    assert latest["loaded_at"].value >= first.finished_at.timestamp()
    # The file's own materialization says how long it waited in the queue before it started.
    [file_event] = instance.fetch_materializations(FILE_STATUS, limit=1).records
    assert file_event.asset_materialization.metadata["wait_seconds"].value >= 0.0

    # The code location, loaded now, has the table as an asset downstream of file_status.
    graph = build_definitions(granula.settings, granula=granula).resolve_asset_graph()
    node = graph.get(key)
    assert node.parent_keys == {FILE_STATUS}
    assert node.kinds == {"postgres"} and node.group_name == "datasets"
    assert node.metadata["dagster/table_name"] == "datasets.sales"


def test_a_batch_of_files_materializes_each_table_once(instance, granula, settings):
    loads = [
        ingest(instance, granula, write_orders(settings.inbox / f"{n}.csv", rows), dataset=name)[0]
        for n, (name, rows) in enumerate([("north", 3), ("north", 4), ("south", 2)])
    ]

    events = datasets_loaded_events(granula, [(r, r.partition_key) for r in loads])

    by_key = {tuple(e.asset_key.path): e.metadata for e in events}
    assert set(by_key) == {("datasets", "north"), ("datasets", "south")}
    north = by_key[("datasets", "north")]
    assert north["files_loaded"].value == 2 and north["dagster/row_count"].value == 7
    assert north["last_file_id"].value == loads[1].file_id
