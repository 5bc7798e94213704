"""TSV and other delimiters: detected from the header (or set), then the same guarantees as CSV."""

from __future__ import annotations

import csv
import mimetypes
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance

from granula_pipeline.lib.formats.csv.dialect import sniff_delimiter
from granula_pipeline.lib.formats.source import content_type
from granula_pipeline_tests.loads import chunks, column_types, failed_copy, load, rejected

ROWS = 40


@pytest.fixture(scope="module")
def instance(memory_instance: DagsterInstance) -> DagsterInstance:
    return memory_instance


def rows() -> list[tuple[int, str, float, date]]:
    notes = ["plain", "a, comma", "a; semicolon", "a\ttab", 'say "hi"', "two\nlines", "a|pipe"]
    return [
        (i, notes[i % len(notes)], i * 1.25, date(2026, 1, 1) + timedelta(days=i))
        for i in range(1, ROWS + 1)
    ]


def write(path, delimiter: str) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(["id", "note", "amount", "day"])
        writer.writerows(rows())


@pytest.mark.parametrize(
    ("name", "delimiter"),
    [("orders.tsv", "\t"), ("semicolons.csv", ";"), ("pipes.txt", "|")],
)
def test_delimited_file_loads_every_row_typed_in_several_chunks(
    instance, settings, db, name, delimiter
):
    path = settings.inbox / name
    write(path, delimiter)

    record = load(instance, settings, path, chunk_size=7)

    assert record.status == "completed", record.error_message
    assert (record.format, record.delimiter) == ("csv", delimiter)
    assert (record.total_rows, record.loaded_rows, record.rejected_rows) == (ROWS, ROWS, 0)
    assert column_types(db, record) == {
        "id": "bigint",
        "note": "text",
        "amount": "double precision",
        "day": "date",
        "_granula_file_id": "bigint",
        "_granula_chunk_index": "integer",
    }
    loaded = db.execute(
        f"SELECT id, note, amount, day, _granula_file_id, _granula_chunk_index "
        f"FROM {record.table_name} WHERE _granula_file_id = %s ORDER BY id",
        (record.file_id,),
    ).fetchall()
    assert loaded == [(*row, record.file_id, position // 7) for position, row in enumerate(rows())]
    assert len(chunks(db, record)) == 6
    assert (settings.processed_dir / f"{record.file_id}-{name}").exists()


def test_configured_delimiter_wins_over_detection(instance, settings, db):
    # A header of one column holding commas: detection would split it, the setting does not.
    settings = settings.model_copy(update={"csv_delimiter": "\t"})
    path = settings.inbox / "configured.csv"
    path.write_text("name, with comma\nx, y\nz\n")

    record = load(instance, settings, path)

    assert record.status == "completed", record.error_message
    assert record.delimiter == "\t"
    assert db.execute(f"SELECT name_with_comma FROM {record.table_name}").fetchall() == [
        ("x, y",),
        ("z",),
    ]


def test_ragged_tsv_rows_long_rejected_with_their_line_short_padded(instance, settings, db):
    lines = ["id\tname"] + [f"{i}\tname {i}" for i in range(30)]
    lines[5] = "4\ttoo\tmany"  # line 6
    lines[22] = "21"  # line 23
    path = settings.inbox / "ragged.tsv"
    path.write_text("\n".join(lines) + "\n")

    record = load(instance, settings, path, chunk_size=10)

    assert record.status == "completed_with_errors"
    assert (record.total_rows, record.loaded_rows, record.rejected_rows) == (30, 29, 1)
    assert [(line, reason) for line, reason in rejected(db, record)] == [
        (6, "this record has 3 fields but the header has 2"),
    ]
    short = db.execute(f"SELECT name FROM {record.table_name} WHERE id = 21").fetchall()
    assert short == [(None,)]


def test_tsv_with_an_unclosed_quote_fails_and_moves_to_failed(instance, settings, db):
    content = b'id\tname\n1\t"open\n2\tb\n'
    path = settings.inbox / "unclosed.tsv"
    path.write_bytes(content)

    record = load(instance, settings, path)

    assert record.status == "failed"
    assert "never closed; check for a stray double quote (line 2)" in record.error_message
    assert failed_copy(settings, record).read_bytes() == content
    assert db.execute("SELECT to_regclass('datasets.unclosed')").fetchone() == (None,)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"a,b,c\n1,2,3\n", ","),
        (b"a;b;c\n", ";"),
        (b"a\tb\tc\n", "\t"),
        (b"a|b|c\n", "|"),
        (b'"x;y",b,c\n', ","),  # delimiters inside quotes do not count
        (b"a;b,c;d\n", ";"),
        (b"single\n1\n", ","),  # one column: a comma, the default
        (b"a;b\r\n", ";"),
    ],
)
def test_delimiter_is_the_most_frequent_outside_quotes_on_the_header_line(header, expected):
    assert sniff_delimiter(header) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.parquet", ("application/vnd.apache.parquet", None)),
        ("a.NDJSON", ("application/x-ndjson", None)),
        ("a.jsonl", ("application/jsonl", None)),
        ("a.ndjson.gz", ("application/x-ndjson", "gzip")),
        ("a.csv.gz", ("text/csv", "gzip")),
        ("a.tsv", ("text/tab-separated-values", None)),
    ],
)
def test_content_types_are_known_even_after_mimetypes_is_reinitialised(name, expected):
    mimetypes.init()  # as dagster-webserver does on import: registrations are forgotten
    assert content_type(Path(name)) == expected
