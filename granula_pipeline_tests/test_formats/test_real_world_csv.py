"""Files as people really write them (issue #16): each fixture is one clean table written with one
pollution, and each loads as that table: the clean rows under the clean header, in the right
columns, with the dialect sniffed recorded in granula.files and shown in the status metadata."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance

from granula_pipeline.defs.status import status_metadata
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.load.chunk import load_chunk
from granula_pipeline.lib.load.file import prepare_load
from granula_pipeline_tests.loads import column_types, load, rejected

FIXTURES = Path(__file__).parent.parent / "fixtures" / "real-world"
COLUMNS = ["id", "name", "city", "amount", "day"]
CLEAN = [
    (1, "Smith, John", "Paris", 12.5, date(2026, 1, 1)),
    (2, "Ann Lee", "Lyon", 7.25, date(2026, 1, 2)),
    (3, "Pat O'Brien", "Nice", 100.0, date(2026, 1, 3)),
    (4, "Bo", "Saint-Denis, FR", 3.5, date(2026, 1, 4)),
    (5, 'Li "Lee" Wu', "Lille", 0.5, date(2026, 1, 5)),
    (6, "Zoé", "Metz", 42.0, date(2026, 1, 6)),
    (7, "Max", "Brest", 8.0, date(2026, 1, 7)),
    (8, "Eve Hart", "Dijon", 19.75, date(2026, 1, 8)),
]
TYPES = {
    "id": "bigint",
    "name": "text",
    "city": "text",
    "amount": "double precision",
    "day": "date",
}


@pytest.fixture(scope="module")
def instance(memory_instance: DagsterInstance) -> DagsterInstance:
    return memory_instance


def dropped(settings, name: str, dataset: str | None = None) -> Path:
    folder = settings.inbox / (dataset or Path(name).stem)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(FIXTURES / name, folder / name))


def table_rows(db, record, columns=COLUMNS) -> list[tuple]:
    names = ", ".join(columns)
    return db.execute(
        f"SELECT {names} FROM {record.table_name} WHERE _granula_file_id = %s ORDER BY 1",
        (record.file_id,),
    ).fetchall()


def data_types(db, record) -> dict[str, str]:
    return {k: v for k, v in column_types(db, record).items() if not k.startswith("_granula_")}


def dialect(db, record) -> dict:
    (facts,) = db.execute(
        "SELECT dialect FROM granula.files WHERE file_id = %s", (record.file_id,)
    ).fetchone()
    return facts


def assert_clean_table(db, record):
    assert record.status == "completed", record.error_message
    assert (record.total_rows, record.loaded_rows, record.rejected_rows) == (8, 8, 0)
    assert data_types(db, record) == TYPES
    assert table_rows(db, record) == CLEAN


@pytest.mark.parametrize(
    ("name", "delimiter", "quote", "escape", "terminator"),
    [
        ("comma_space.csv", ", ", '"', "doubled", "LF"),
        ("spaces.txt", " ", '"', "doubled", "LF"),
        ("single_quotes.csv", ",", "'", "doubled", "LF"),
        ("backslash_escape.csv", ",", '"', "backslash", "LF"),
        ("unescaped_quotes.csv", ",", '"', "none", "LF"),
        ("old_mac.csv", ",", '"', "doubled", "CR"),
    ],
)
def test_a_dialect_other_than_rfc_4180_is_sniffed_and_loads_the_clean_table(
    instance, settings, db, name, delimiter, quote, escape, terminator
):
    record = load(instance, settings, dropped(settings, name), chunk_size=3)

    assert_clean_table(db, record)
    facts = dialect(db, record)
    assert (facts["delimiter"], facts["quote"], facts["escape"], facts["terminator"]) == (
        delimiter,
        quote,
        escape,
        terminator,
    )
    assert facts["copyable"] is False  # parsed record by record, in the dialect
    assert record.delimiter == delimiter
    shown = status_metadata(record)["dialect"].value
    assert f"delimiter {delimiter!r}" in shown and "parsed record by record" in shown


def test_a_stray_quote_opening_a_cell_keeps_the_quote_in_the_cell(instance, settings, db):
    record = load(instance, settings, dropped(settings, "stray_quote.csv"))

    assert record.status == "completed", record.error_message
    assert (record.loaded_rows, record.rejected_rows) == (8, 0)
    links = table_rows(db, record, ["id", "link", "amount"])
    assert links[3] == (4, '"https://example.com/4.html', 3.5)
    assert [link for key, link, _ in links if key != 4] == [
        f"https://example.com/{i}.html" for i in (1, 2, 3, 5, 6, 7, 8)
    ]
    assert [amount for *_, amount in links] == [row[3] for row in CLEAN]


def test_a_stray_quote_past_the_sniffed_start_falls_back_to_the_careful_plan(
    instance, settings, db
):
    # 1.5 MiB of plain CSV, then the stray quote: the fast plan finds it only at the end.
    rows = [f"{i},name {i},https://example.com/{i}.html" for i in range(1, 40_001)]
    rows[38_000] = '38001,name 38001,""https://example.com/38001.html"'
    path = settings.inbox / "late" / "late_stray.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,name,link\n" + "\n".join(rows) + "\n")

    record = load(instance, settings, path)

    assert record.status == "completed", record.error_message
    assert (record.total_rows, record.loaded_rows) == (40_000, 40_000)
    (link,) = db.execute(f"SELECT link FROM {record.table_name} WHERE id = 38001").fetchone()
    assert link == '"https://example.com/38001.html'
    assert dialect(db, record)["copyable"] is False


def test_a_truly_unclosed_quote_still_fails_saying_where(instance, settings):
    path = settings.inbox / "unclosed" / "unclosed.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'id,name\n1,a\n2,"opened\n3,c\n4,d\n')

    record = load(instance, settings, path)

    assert record.status == "failed"
    assert "never closed; check for a stray double quote (line 3)" in record.error_message


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("header_semicolons.csv", "delimited by ';', unlike the rows"),
        ("header_short.csv", "one delimiter short: 'city amount' split in two"),
    ],
)
def test_a_header_that_is_the_odd_row_out_is_fixed_not_every_row_rejected(
    instance, settings, db, name, fix
):
    record = load(instance, settings, dropped(settings, name))

    assert_clean_table(db, record)
    facts = dialect(db, record)
    assert facts["header_fix"] == fix
    assert facts["copyable"] is True  # the rows are plain CSV: they still go to COPY
    assert fix in status_metadata(record)["dialect"].value


def test_a_header_only_file_completes_with_no_rows_and_its_table(instance, settings, db):
    record = load(instance, settings, dropped(settings, "header_only.csv"))

    assert record.status == "completed", record.error_message
    assert (record.total_rows, record.loaded_rows, record.rejected_rows) == (0, 0, 0)
    assert list(data_types(db, record)) == COLUMNS
    assert table_rows(db, record) == []
    assert (settings.processed_dir / "header_only" / f"{record.file_id}-header_only.csv").exists()


def test_a_preamble_is_skipped_and_kept_in_the_files_metadata(instance, settings, db):
    record = load(instance, settings, dropped(settings, "preamble.csv"))

    assert_clean_table(db, record)
    facts = dialect(db, record)
    assert facts["preamble"] == [
        "Sales export",
        "Generated on 2026-01-09 by the ERP, all shops",
    ]
    assert (facts["skip_lines"], facts["header_rows"], facts["copyable"]) == (3, 1, True)
    assert "Sales export" in status_metadata(record)["preamble"].value
    assert [line for line, _ in rejected(db, record)] == []


@pytest.mark.parametrize(
    ("name", "rows", "amount", "day"),
    [
        ("two_header_rows.csv", 2, "amount_eur", "day_iso_date"),
        ("three_header_rows.csv", 3, "amount_eur_net", "day_iso_date"),
    ],
)
def test_header_rows_below_the_header_are_joined_into_its_names(
    instance, settings, db, name, rows, amount, day
):
    record = load(instance, settings, dropped(settings, name))

    columns = ["id", "name", "city", amount, day]
    assert record.status == "completed", record.error_message
    assert list(data_types(db, record)) == columns
    assert data_types(db, record)[amount] == "double precision"
    assert table_rows(db, record, columns) == CLEAN
    assert dialect(db, record)["header_rows"] == rows


def test_a_file_without_a_header_gets_numbered_columns(instance, settings, db):
    record = load(instance, settings, dropped(settings, "no_header.csv"))

    columns = [f"column_{i}" for i in range(1, 6)]
    assert record.status == "completed", record.error_message
    assert list(data_types(db, record)) == columns
    assert table_rows(db, record, columns) == CLEAN
    assert dialect(db, record)["header_rows"] == 0
    assert "no header" in status_metadata(record)["dialect"].value


def test_a_second_table_is_not_mixed_into_the_first(instance, settings, db):
    record = load(instance, settings, dropped(settings, "two_tables.csv"))

    assert_clean_table(db, record)
    assert dialect(db, record)["second_table_line"] == 12
    assert "line 12: not loaded" in status_metadata(record)["second_table"].value


def test_a_ragged_row_is_padded_or_rejected_and_a_threshold_failure_names_it(
    instance, settings, db
):
    record = load(instance, settings, dropped(settings, "ragged_rows.csv"))

    # One long row of 8 is over MAX_REJECTED_PERCENT=10: the message says which line and why.
    assert record.status == "failed"
    assert record.error_message == (
        "1 of 8 rows were rejected, over MAX_REJECTED_PERCENT=10: line 4: this record has 6 "
        "fields but the header has 5; see granula.rejected_rows for each line and why"
    )
    loaded = table_rows(db, record)
    assert data_types(db, record) == TYPES
    assert loaded == [
        row if row[0] != 7 else (*row[:4], None) for row in CLEAN if row[0] != 3
    ]  # the short row 7 is padded with a NULL day


def test_a_ragged_row_under_the_threshold_completes_with_errors(instance, settings, db):
    settings = settings.model_copy(update={"max_rejected_percent": 20.0})
    record = load(instance, settings, dropped(settings, "ragged_rows.csv", "ragged_ok"))

    assert record.status == "completed_with_errors"
    assert (record.loaded_rows, record.rejected_rows) == (7, 1)
    [(line, raw, reason)] = db.execute(
        "SELECT line_number, raw_text, reason FROM granula.rejected_rows WHERE file_id = %s",
        (record.file_id,),
    ).fetchall()
    assert (line, raw) == (4, "3,Pat O'Brien,Nice,,100,2026-01-03")
    assert reason == "this record has 6 fields but the header has 5"


def test_a_dialect_set_for_the_dataset_wins_over_sniffing(instance, settings, db):
    # Sniffed, `a;b` in one column would be split; the folder says the file is comma-separated.
    folder = settings.inbox / "configured"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".granula-dialect.json").write_text('{"delimiter": ",", "header_rows": 1}')
    path = folder / "configured.csv"
    path.write_text("pair;kind\na;b\nc;d\n")

    record = load(instance, settings, path)

    assert record.status == "completed", record.error_message
    assert list(data_types(db, record)) == ["pair_kind"]
    assert table_rows(db, record, ["pair_kind"]) == [("a;b",), ("c;d",)]


def test_a_bad_dialect_file_fails_the_file_saying_what_to_fix(instance, settings):
    folder = settings.inbox / "misconfigured"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".granula-dialect.json").write_text('{"quote": "`"}')
    path = folder / "data.csv"
    path.write_text("a,b\n1,2\n")

    record = load(instance, settings, path)

    assert record.status == "failed"
    assert record.error_message == ".granula-dialect.json: quote must be one of \", '"


@pytest.mark.parametrize(
    ("name", "method"),
    [("plain.csv", "copy"), ("preamble.csv", "copy"), ("comma_space.csv", "parsed")],
)
def test_plain_rfc_4180_records_still_go_to_copy_as_bytes(settings, db, name, method):
    path = settings.inbox / name
    if name == "plain.csv":
        path.write_text("id,name\n" + "".join(f'{i},"n, {i}"\n' for i in range(50)))
    else:
        shutil.copy(FIXTURES / name, path)
    control.register_file(
        db, partition_key=name, path=str(path), dataset=path.stem, priority=0, size_bytes=None
    )
    prepared = prepare_load(settings, name, "test-run", allow_duplicate=True)

    result = load_chunk(settings.psycopg_conninfo, prepared.target, prepared.chunks[0])

    assert result.method == method
    assert result.rejected_rows == 0 and result.row_count in (50, 8)


def test_a_retry_reads_the_file_with_the_dialect_its_plan_recorded(settings, db):
    folder = settings.inbox / "retried"
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(shutil.copy(FIXTURES / "single_quotes.csv", folder / "single_quotes.csv"))
    key = "retried/single_quotes.csv"
    control.register_file(
        db, partition_key=key, path=str(path), dataset="retried", priority=0, size_bytes=None
    )
    first = prepare_load(settings, key, "run-1")
    assert first.target.dialect is not None and first.target.dialect.quote == "'"

    # Set otherwise since: the chunks planned are read as they were planned.
    (folder / ".granula-dialect.json").write_text('{"quote": "\\"", "delimiter": ";"}')
    again = prepare_load(settings, key, "run-2")

    assert again.target.dialect == first.target.dialect
    assert again.chunks == first.chunks
    result = load_chunk(settings.psycopg_conninfo, again.target, again.chunks[0])
    assert (result.row_count, result.rejected_rows) == (8, 0)
    assert table_rows(db, again.file) == CLEAN
