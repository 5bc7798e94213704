"""`granula_reader`, the BI role: reads loaded tables and the status view, nothing else."""

from __future__ import annotations

import psycopg
import pytest
from dagster_postgres import PostgresRunStorage

from granula_pipeline.runs import ingest
from granula_pipeline_tests.factories import write_orders

pytestmark = pytest.mark.slow


@pytest.fixture
def reader(settings):
    """A session acting as granula_reader."""
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        conn.execute("SET ROLE granula_reader")
        yield conn


def test_reader_selects_loaded_rows_and_status(instance, granula, settings, reader):
    record, _ = ingest(instance, granula, write_orders(settings.inbox / "bi.csv", 12))
    assert reader.execute("SELECT count(*) FROM datasets.bi").fetchone() == (12,)
    status = reader.execute(
        "SELECT status, progress_percent FROM granula.file_status WHERE file_id = %s",
        (record.file_id,),
    ).fetchone()
    assert status == ("completed", 100.0)


FORBIDDEN = [
    "INSERT INTO datasets.bi_write (id) VALUES (1)",
    "UPDATE datasets.bi_write SET id = 2",
    "DELETE FROM datasets.bi_write",
    "DROP TABLE datasets.bi_write",
    "SELECT * FROM granula.files",
    "SELECT * FROM granula.rejected_rows",
    "CREATE TABLE datasets.mine (id int)",
]


def test_reader_cannot_write_or_read_control_tables(instance, granula, settings, reader):
    ingest(instance, granula, write_orders(settings.inbox / "bi_write.csv", 1))
    for statement in FORBIDDEN:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(statement)


def test_reader_cannot_read_dagster_storage(settings, reader):
    storage_url = settings.dagster_storage_url
    PostgresRunStorage.create_clean_storage(storage_url)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("SELECT * FROM public.runs")
