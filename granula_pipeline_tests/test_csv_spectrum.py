"""Every csv-spectrum case loads through the real job with exactly the values it must parse to.

NULL and empty string: PostgreSQL's CSV rules (and Granula's README) load an unquoted empty field
as NULL and a quoted `""` as an empty string in text columns; in typed columns both are NULL.
csv-spectrum's JSON writes both as "", so for its cases a NULL compares equal to "" (any other
value must match exactly). The exact NULL / "" rule is pinned by EXACT_CASES below.
Values are typed in the table, so they are compared as PostgreSQL prints them (`::text`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance
from psycopg import sql

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.lib.load.tables import GRANULA_COLUMNS
from granula_pipeline.lib.model import FileRecord
from granula_pipeline.runs import ingest

pytestmark = pytest.mark.slow

SPECTRUM = Path(__file__).parent / "fixtures" / "csv-spectrum"
CASES = sorted(path.stem for path in (SPECTRUM / "csvs").glob("*.csv"))


@pytest.fixture(scope="module")
def instance(memory_instance: DagsterInstance) -> DagsterInstance:
    return memory_instance


def expected_rows(case: str) -> list[list[str]]:
    """The records csv-spectrum says the file holds, in file order, all values as text."""
    source = SPECTRUM / "csvs" / f"{case}.csv"
    with source.open(newline="", encoding="utf-8") as handle:
        header, *records = list(csv.reader(handle))
    if case == "location_coordinates":
        # Its JSON is a single object with another phone number: the CSV as Python reads it
        # is the reference (the stray `"` inside the unquoted coordinates field are kept).
        return records
    expected = json.loads((SPECTRUM / "json" / f"{case}.json").read_text(encoding="utf-8"))
    return [[row[name] for name in header] for row in expected]


def table_rows(db: psycopg.Connection, record: FileRecord) -> list[tuple[int, list[str | None]]]:
    """(chunk index, values as text) of every row of the file's table, in load order."""
    schema, table = record.table_name.split(".")
    columns = [
        name
        for (name,) in db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table),
        ).fetchall()
        if name not in GRANULA_COLUMNS
    ]
    # A fresh table filled by COPY keeps its rows in insertion order: ctid orders a chunk's rows.
    query = sql.SQL("SELECT _granula_chunk_index, {} FROM {} ORDER BY _granula_chunk_index, ctid")
    text_columns = sql.SQL(", ").join(
        sql.SQL("{}::text").format(sql.Identifier(name)) for name in columns
    )
    rows = db.execute(query.format(text_columns, sql.Identifier(schema, table))).fetchall()
    return [(row[0], list(row[1:])) for row in rows]


def load(instance, granula, settings, name: str, content: bytes, dataset: str) -> FileRecord:
    path = settings.inbox / name
    path.write_bytes(content)
    record, result = ingest(instance, granula, path, dataset=dataset, log_level="WARNING")
    assert result.success, record.error_message
    return record


def chunked(granula: GranulaResource) -> GranulaResource:
    return GranulaResource(
        database_url=granula.database_url, data_dir=granula.data_dir, chunk_size=1
    )


def blank_as_null(rows: list[tuple[int, list[str | None]]]) -> list[tuple[int, list[str]]]:
    return [(index, ["" if value is None else value for value in values]) for index, values in rows]


@pytest.mark.parametrize("case", CASES)
def test_spectrum_case_loads_exactly_its_records(instance, granula, settings, db, case):
    content = (SPECTRUM / "csvs" / f"{case}.csv").read_bytes()
    expected = expected_rows(case)

    record = load(instance, granula, settings, f"{case}.csv", content, f"spectrum_{case}")

    assert record.status == "completed"
    assert (record.total_rows, record.loaded_rows, record.rejected_rows) == (
        len(expected),
        len(expected),
        0,
    )
    assert blank_as_null(table_rows(db, record)) == [(0, values) for values in expected]


@pytest.mark.parametrize("case", CASES)
def test_spectrum_case_loads_the_same_rows_one_record_per_chunk(
    instance, granula, settings, db, case
):
    content = (SPECTRUM / "csvs" / f"{case}.csv").read_bytes()
    expected = expected_rows(case)

    record = load(
        instance, chunked(granula), settings, f"{case}.csv", content, f"spectrum_{case}_chunked"
    )

    assert record.status == "completed"
    assert record.total_chunks == record.loaded_rows == len(expected)
    assert blank_as_null(table_rows(db, record)) == list(enumerate(expected))


# Cases beyond csv-spectrum: exact values, NULL told apart from "", for what a loader gets wrong.
EXACT_CASES = {
    "empty_and_null": (
        b'id,name,n\n1,"",\n2,,5\n3,x,7\n',
        [["1", "", None], ["2", None, "5"], ["3", "x", "7"]],
    ),
    "na_tokens": (
        b"id,score,label\n1,NA,NA\n2,2.5,null\n3,N/A,\n",
        [["1", None, "NA"], ["2", "2.5", "null"], ["3", None, None]],
    ),
    # The NA makes PostgreSQL refuse the chunk's bytes: the careful way must keep "" apart too.
    "empty_text_beside_na": (
        b'id,score,label\n1,NA,""\n2,2.5,x\n3,N/A,\n',
        [["1", None, ""], ["2", "2.5", "x"], ["3", None, None]],
    ),
    # 01/02/2024 is 1 February or 2 January depending on the country: kept as written.
    "ambiguous_dates": (
        b"id,day,iso\n1,13/04/2024,2024-04-13\n2,01/02/2024,2024-02-01\n",
        [["1", "13/04/2024", "2024-04-13"], ["2", "01/02/2024", "2024-02-01"]],
    ),
    "beyond_bigint": (
        b"id,big\n1,12345678901234567890\n2,-99999999999999999999999\n",
        [["1", "12345678901234567890"], ["2", "-99999999999999999999999"]],
    ),
    # PostgreSQL drops quotes inside an unquoted field (a""b -> ab); csv and polars keep them.
    "quotes_inside_unquoted_field": (
        b'id,text\n1,a""b\n2,"q ""x"" q"\n3,5\'10""\n',
        [["1", 'a""b'], ["2", 'q "x" q'], ["3", '5\'10""']],
    ),
    "spaces_and_unicode": (
        'id,text\n1, padded \n2,"naïve ""quote"", 😀"\n'.encode(),
        [["1", " padded "], ["2", 'naïve "quote", 😀']],
    ),
}


@pytest.mark.parametrize("case", sorted(EXACT_CASES))
@pytest.mark.parametrize("chunk_size", [None, 1])
def test_tricky_values_load_exactly_whatever_the_chunk_size(
    instance, granula, settings, db, case, chunk_size
):
    content, expected = EXACT_CASES[case]
    resource = chunked(granula) if chunk_size == 1 else granula
    dataset = f"exact_{case}_{chunk_size or 'whole'}"

    record = load(instance, resource, settings, f"{case}.csv", content, dataset)

    assert (record.status, record.loaded_rows, record.rejected_rows) == (
        "completed",
        len(expected),
        0,
    )
    assert [values for _, values in table_rows(db, record)] == expected


def test_fixtures_are_the_whole_suite():
    assert len(CASES) == 12
    assert {path.stem for path in (SPECTRUM / "json").glob("*.json")} == set(CASES)
    assert "BSD-2-Clause" in (SPECTRUM / "README.md").read_text()
