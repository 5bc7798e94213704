"""Whatever the chunk size, every record of a file lands in its table exactly once, unchanged.

The file is full of what breaks naive splitting: quoted fields over several lines (LF and CRLF),
embedded commas and doubled quotes. The job runs with chunks of 1, 7 and 100 records. Each chunk
is a Dagster step costing about 0.1 s, so the small chunk sizes load a prefix of the file (still
30 chunks each) while chunks of 100 take the whole file.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from datetime import date, timedelta

import pytest
from dagster import DagsterInstance

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.runs import ingest

pytestmark = pytest.mark.slow

ROWS = 3_000
NOTES = [
    "plain",
    "comma, inside",
    'say "hi"',
    '"',
    "two\nlines",
    "crlf\r\ninside",
    'all, of "it"\nat "once",\n',
    " padded ",
    "naïve ✓",
    "",  # written as "": an empty string, not NULL
    None,  # written as an empty field: NULL
]


@pytest.fixture(scope="module")
def instance(memory_instance: DagsterInstance) -> DagsterInstance:
    return memory_instance


Row = tuple[int, str | None, float | None, date]


def generated_rows(count: int) -> list[Row]:
    rng = random.Random(20_261_130)
    return [
        (
            index,
            rng.choice(NOTES),
            None if rng.random() < 0.1 else round(rng.uniform(-1e6, 1e6), 2),
            date(2024, 1, 1) + timedelta(days=rng.randrange(3_000)),
        )
        for index in range(1, count + 1)
    ]


def field(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    if text == "" or any(special in text for special in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_file(rows: list[Row]) -> bytes:
    lines = ["id,note,amount,day", *(",".join(field(value) for value in row) for row in rows)]
    return ("\n".join(lines) + "\n").encode()


def as_python_csv_reads(row: Row) -> list[str]:
    """Python's csv module has no NULL: an empty field and `""` both read as ""."""
    return ["" if value is None else str(value) for value in row]


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return generated_rows(ROWS)


def test_generated_file_reads_back_as_generated(rows):
    records = list(csv.reader(io.StringIO(csv_file(rows).decode(), newline="")))
    assert records[1:] == [as_python_csv_reads(row) for row in rows]
    assert sum("\n" in (row[1] or "") for row in rows) > ROWS // 10


@pytest.mark.parametrize(("chunk_size", "count"), [(1, 30), (7, 210), (100, ROWS)])
def test_every_record_loads_exactly_once_in_its_chunk(
    instance, settings, db, rows, chunk_size, count
):
    expected = rows[:count]
    path = settings.inbox / f"boundaries_{chunk_size}.csv"
    path.write_bytes(csv_file(expected))
    granula = GranulaResource(
        database_url=settings.database_url, data_dir=str(settings.data_dir), chunk_size=chunk_size
    )

    record, result = ingest(instance, granula, path, log_level="WARNING")

    assert result.success, record.error_message
    loaded = db.execute(
        f"SELECT id, note, amount, day, _granula_file_id, _granula_chunk_index "
        f"FROM {record.table_name}"
    ).fetchall()
    ids = Counter(row[0] for row in loaded)
    assert ids == Counter(row[0] for row in expected), "each record once, none lost or added"
    by_id = {row[0]: row for row in loaded}
    for position, row in enumerate(expected):
        assert by_id[row[0]] == (*row, record.file_id, position // chunk_size)

    chunks = db.execute(
        "SELECT chunk_index, status, planned_rows, row_count, rejected_rows "
        "FROM granula.chunks WHERE file_id = %s ORDER BY chunk_index",
        (record.file_id,),
    ).fetchall()
    sizes = [min(chunk_size, count - start) for start in range(0, count, chunk_size)]
    assert chunks == [(index, "loaded", size, size, 0) for index, size in enumerate(sizes)]

    file = db.execute(
        "SELECT status, total_chunks, processed_chunks, failed_chunks, total_rows, loaded_rows, "
        "rejected_rows FROM granula.files WHERE file_id = %s",
        (record.file_id,),
    ).fetchone()
    assert file == ("completed", len(sizes), len(sizes), 0, count, count, 0)
