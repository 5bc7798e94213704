"""Parquet: chunks are runs of row groups, columns typed from the file's schema."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from granula_pipeline_tests.loads import chunks, column_types, failed_copy, load

ROWS = 45


@pytest.fixture(scope="module")
def instance(memory_instance: DagsterInstance) -> DagsterInstance:
    return memory_instance


def frame() -> pl.DataFrame:
    ids = list(range(ROWS))
    return pl.DataFrame(
        {
            "ID": ids,
            "name": [None if i % 7 == 0 else f'name {i}, "q"\n' for i in ids],
            "amount": [i * 1.25 for i in ids],
            "active": [i % 2 == 0 for i in ids],
            "day": [date(2026, 1, 1) + timedelta(days=i) for i in ids],
            "at": [datetime(2026, 1, 1, 12) + timedelta(seconds=i) for i in ids],
            "at_utc": [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in ids],
            "price": [Decimal(i) / 100 for i in ids],
            "tags": [[f"t{i}", "x"] if i % 5 else None for i in ids],
            "meta": [{"n": i, "s": f"s{i}"} for i in ids],
            "raw": [bytes([i, 0, 255]) for i in ids],
        },
        schema_overrides={"price": pl.Decimal(10, 2)},
    )


def test_parquet_file_loads_every_row_typed_by_row_groups(instance, settings, db):
    path = settings.inbox / "measures.parquet"
    pq.write_table(frame().to_arrow(), path, row_group_size=5)  # 9 row groups

    record = load(instance, settings, path, chunk_size=10)

    assert record.status == "completed", record.error_message
    assert record.format == "parquet"
    assert (record.total_rows, record.loaded_rows, record.rejected_rows) == (ROWS, ROWS, 0)
    assert column_types(db, record) == {
        "id": "bigint",
        "name": "text",
        "amount": "double precision",
        "active": "boolean",
        "day": "date",
        "at": "timestamp without time zone",
        "at_utc": "timestamp with time zone",
        "price": "numeric",
        "tags": "jsonb",
        "meta": "jsonb",
        "raw": "bytea",
        "_granula_file_id": "bigint",
        "_granula_chunk_index": "integer",
    }
    loaded = db.execute(
        f"SELECT *, _granula_file_id, _granula_chunk_index FROM {record.table_name} "
        "WHERE _granula_file_id = %s ORDER BY id",
        (record.file_id,),
    ).fetchall()
    expected = [
        (*row.values(), record.file_id, row["ID"] // 10) for row in frame().iter_rows(named=True)
    ]
    assert [row[:11] + row[-2:] for row in loaded] == expected
    ledger = db.execute(
        "SELECT chunk_index, row_start, row_group_start, row_group_end, first_line, planned_rows, "
        "row_count FROM granula.chunks WHERE file_id = %s ORDER BY chunk_index",
        (record.file_id,),
    ).fetchall()
    assert ledger == [
        (0, 0, 0, 2, 1, 10, 10),
        (1, 10, 2, 4, 11, 10, 10),
        (2, 20, 4, 6, 21, 10, 10),
        (3, 30, 6, 8, 31, 10, 10),
        (4, 40, 8, 9, 41, 5, 5),
    ]
    assert len(chunks(db, record)) == 5
    assert (settings.processed_dir / f"{record.file_id}-measures.parquet").exists()


def test_a_row_group_larger_than_a_chunk_is_a_chunk_of_its_own(instance, settings, db):
    path = settings.inbox / "big_groups.parquet"
    pq.write_table(frame().select("ID", "name").to_arrow(), path, row_group_size=20)

    record = load(instance, settings, path, chunk_size=7)

    assert record.status == "completed", record.error_message
    assert [c[2] for c in chunks(db, record)] == [20, 20, 5]
    assert db.execute(
        f"SELECT count(*), count(DISTINCT id) FROM {record.table_name} WHERE _granula_file_id = %s",
        (record.file_id,),
    ).fetchone() == (ROWS, ROWS)


@pytest.mark.parametrize("damage", ["truncated", "not_parquet", "bad_footer"])
def test_corrupt_parquet_file_fails_clearly_and_moves_to_failed(instance, settings, db, damage):
    whole = settings.data_dir / "whole.parquet"
    pq.write_table(frame().select("ID", "name").to_arrow(), whole, row_group_size=5)
    content = whole.read_bytes()
    content = {
        "truncated": content[: len(content) // 2],
        "not_parquet": b"id,name\n1,a\n",
        "bad_footer": content[:-12] + b"\xff" * 8 + content[-4:],
    }[damage]
    path = settings.inbox / f"broken_{damage}.parquet"
    path.write_bytes(content)

    record = load(instance, settings, path)

    assert record.status == "failed"
    assert record.error_message.startswith("not a readable Parquet file: ")
    assert failed_copy(settings, record).read_bytes() == content
    table = f"datasets.broken_{damage}"
    assert db.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,)
