"""Every row exactly once, whatever fails: faults raised by PostgreSQL itself, real retries."""

from __future__ import annotations

import csv
import uuid

import pytest
from dagster import AssetKey, DagsterEventType, ReexecutionOptions, execute_job, reconstructable

from granula_pipeline.definitions import ingest_file_job
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.runs import ingest, retry
from granula_pipeline_tests.factories import write_orders
from granula_pipeline_tests.faults import clear_fault, inject_fault

pytestmark = pytest.mark.slow

ROWS, CHUNK = 600, 100  # six chunks


@pytest.fixture
def granula(settings) -> GranulaResource:
    return GranulaResource.from_settings(settings.model_copy(update={"chunk_size": CHUNK}))


@pytest.fixture
def dataset(instance, granula, settings) -> str:
    """A dataset whose table exists already, so a fault trigger can be put on it."""
    name = f"faults_{uuid.uuid4().hex[:8]}"
    seed = write_orders(settings.data_dir / "seed.csv", 1, start=-1)
    record, _ = ingest(instance, granula, seed, dataset=name)
    assert record.status == "completed"
    return name


def assert_exactly_once(db, dataset: str, file_id: int, expected_ids: range) -> None:
    ids = [
        row[0]
        for row in db.execute(
            f"SELECT id FROM datasets.{dataset} WHERE _granula_file_id = %s ORDER BY id",
            (file_id,),
        ).fetchall()
    ]
    assert ids == list(expected_ids)


def chunk_rows(db, file_id: int) -> dict[int, tuple[str, int]]:
    rows = db.execute(
        "SELECT chunk_index, status, attempts FROM granula.chunks WHERE file_id = %s",
        (file_id,),
    ).fetchall()
    return {index: (status, attempts) for index, status, attempts in rows}


def test_transient_fault_is_retried_and_the_chunk_loads_once(
    instance, granula, settings, db, dataset
):
    inject_fault(db, dataset, chunk=2, times=2, sqlstate="40001")  # serialization failure
    path = write_orders(settings.inbox / "retried.csv", ROWS)
    record, result = ingest(instance, granula, path, dataset=dataset)

    assert result.success
    assert record.status == "completed"
    assert chunk_rows(db, record.file_id)[2] == ("loaded", 3)
    assert_exactly_once(db, dataset, record.file_id, range(ROWS))
    retries = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == 2


def test_terminal_fault_is_not_retried_and_other_chunks_still_load(
    instance, granula, settings, db, dataset
):
    inject_fault(db, dataset, chunk=1, times=1000, sqlstate="23514")  # check_violation: bad data
    path = write_orders(settings.inbox / "terminal.csv", ROWS)
    record, result = ingest(instance, granula, path, dataset=dataset)

    assert not result.success
    assert record.status == "completed_with_errors"
    chunks = chunk_rows(db, record.file_id)
    assert chunks[1] == ("failed", 1), "bad data is not retried"
    assert all(status == "loaded" for i, (status, _) in chunks.items() if i != 1)
    assert "chunk 1 (lines from" in record.error_message
    assert "injected fault 23514" in record.error_message
    assert_exactly_once(db, dataset, record.file_id, [*range(0, 100), *range(200, ROWS)])


def test_fault_that_never_clears_then_retry_completes_exactly_once(
    instance, granula, settings, db, dataset
):
    inject_fault(db, dataset, chunk=3, times=1000, sqlstate="40P01")  # deadlock, forever
    path = write_orders(settings.inbox / "stubborn.csv", ROWS)
    record, result = ingest(instance, granula, path, dataset=dataset)

    assert not result.success
    assert record.status == "completed_with_errors"
    assert (record.failed_chunks, record.processed_chunks) == (1, 5)
    assert chunk_rows(db, record.file_id)[3] == ("failed", 4), "MAX_RETRIES=3: four attempts"
    assert "still failing after 3 retries" in record.error_message
    assert_exactly_once(db, dataset, record.file_id, [*range(0, 300), *range(400, ROWS)])
    assert (settings.failed_dir / f"{record.file_id}-stubborn.csv").exists()
    outcomes = instance.fetch_materializations(AssetKey("file_status"), limit=1).records
    assert outcomes, "the status asset records the outcome of a failed load"
    outcome = outcomes[0].asset_materialization
    assert outcome.partition == record.partition_key
    metadata = outcome.metadata
    assert metadata["status"].value == "completed_with_errors"
    assert metadata["failed_chunks"].value == 1

    clear_fault(db, dataset)
    retried, again = retry(instance, granula, record.file_id)

    assert again is not None and again.success
    assert retried.status == "completed"
    assert (retried.loaded_rows, retried.failed_chunks) == (ROWS, 0)
    assert_exactly_once(db, dataset, record.file_id, range(ROWS))
    assert (settings.processed_dir / f"{record.file_id}-stubborn.csv").exists()


def test_reexecute_from_failure_reloads_only_the_failed_chunk(
    instance, granula, settings, db, dataset, monkeypatch
):
    # The re-executed run loads its resource from the environment, as the UI's would.
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CHUNK_SIZE", str(CHUNK))
    inject_fault(db, dataset, chunk=4, times=1000, sqlstate="57P01")  # admin shutdown
    path = write_orders(settings.inbox / "reexecuted.csv", ROWS)
    record, parent = ingest(instance, granula, path, dataset=dataset)
    assert record.status == "completed_with_errors"
    clear_fault(db, dataset)

    parent_run = instance.get_run_by_id(parent.run_id)
    with execute_job(
        reconstructable(ingest_file_job),
        instance=instance,
        reexecution_options=ReexecutionOptions.from_failure(parent.run_id, instance),
        tags=parent_run.tags,  # the Python API does not carry the parent's tags over
    ) as child:
        assert child.success
        executed = {
            e.step_key for e in child.all_events if e.event_type == DagsterEventType.STEP_START
        }
    loaded = {key for key in executed if key.startswith("file_status.")}
    assert loaded == {"file_status.load_chunk[00004]", "file_status.record_outcome"}
    assert_exactly_once(db, dataset, record.file_id, range(ROWS))
    with db.cursor() as cursor:
        status = cursor.execute(
            "SELECT status, loaded_rows FROM granula.files WHERE file_id = %s", (record.file_id,)
        ).fetchone()
    assert status == ("completed", ROWS)


def test_rows_match_the_source_exactly(instance, granula, settings, db, dataset):
    path = write_orders(settings.inbox / "exact.csv", ROWS)
    with path.open(newline="") as handle:
        expected = [(int(r[0]), r[1], float(r[2])) for r in list(csv.reader(handle))[1:]]
    record, _ = ingest(instance, granula, path, dataset=dataset)
    rows = db.execute(
        f"SELECT id, name, value FROM datasets.{dataset} WHERE _granula_file_id = %s ORDER BY id",
        (record.file_id,),
    ).fetchall()
    assert rows == expected
