"""A chunk COPYed in parts over several connections: every row once, whatever cuts it short."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.load import copying
from granula_pipeline.lib.load.chunk import load_chunk
from granula_pipeline.lib.load.file import PreparedLoad, prepare_load
from granula_pipeline.lib.model import ChunkResult
from granula_pipeline_tests.factories import write_orders
from granula_pipeline_tests.faults import clear_fault, inject_fault

ROWS = 3000
PART_BYTES = 8 * 1024  # small parts, so a 3000-row chunk is cut into several


def write_plain(
    path: Path, rows: int, *, bad_line: int | None = None, separator: str = ","
) -> Path:
    """`id,name,value` without quotes; line `bad_line` (1 = header) holds a field too many."""
    lines = ["id,name,value"]
    lines += [f"{i},name {i},{i * 0.5}" for i in range(rows)]
    if bad_line is not None:
        lines[bad_line - 1] = f"{bad_line - 2},name,1.5,surplus"
    path.write_text("\n".join(line.replace(",", separator) for line in lines) + "\n")
    return path


def prepare(settings, db, path: Path) -> PreparedLoad:
    control.register_file(
        db,
        partition_key=path.name,
        path=str(path),
        dataset=path.stem,
        priority=0,
        size_bytes=path.stat().st_size,
    )
    prepared = prepare_load(settings, path.name, "test-run")
    assert len(prepared.chunks) == 1
    return prepared


def load_in_parts(settings, prepared: PreparedLoad, streams: int = 2) -> ChunkResult:
    return load_chunk(
        settings.psycopg_conninfo,
        prepared.target,
        prepared.chunks[0],
        streams=streams,
        min_part_bytes=PART_BYTES,
    )


def every_row_once(prepared: PreparedLoad) -> list[tuple[int, int, int]]:
    """Each id once, with the file's id and chunk 0 as lineage."""
    return [(i, prepared.file.file_id, 0) for i in range(ROWS)]


def loaded(db, prepared: PreparedLoad) -> list[tuple[int, int, int]]:
    target = prepared.target
    return db.execute(
        f"SELECT id, _granula_file_id, _granula_chunk_index FROM {target.schema}.{target.table} "
        "ORDER BY id"
    ).fetchall()


def committed_parts(db, file_id: int) -> int:
    row = db.execute(
        "SELECT count(*) FROM granula.chunk_parts WHERE file_id = %s", (file_id,)
    ).fetchone()
    return row[0]


@pytest.fixture(params=["plain", "tabs", "quoted"])
def prepared(request, settings, db) -> PreparedLoad:
    """A one-chunk file: plain lines, comma- or tab-separated (lineage appended to them), or
    quoted fields holding newlines (lineage from the columns' defaults, parts cut at record ends,
    not at newlines)."""
    path = settings.inbox / f"{request.param}_{uuid.uuid4().hex[:8]}.csv"
    if request.param == "plain":
        write_plain(path, ROWS)
    elif request.param == "tabs":
        write_plain(path.with_suffix(".tsv"), ROWS, separator="\t")
        path = path.with_suffix(".tsv")
    else:
        write_orders(path, ROWS)
    return prepare(settings, db, path)


def test_chunk_loads_in_parts_every_row_once(settings, db, prepared):
    result = load_in_parts(settings, prepared, streams=3)

    assert (result.outcome, result.row_count, result.parts) == ("loaded", ROWS, 3)
    assert loaded(db, prepared) == every_row_once(prepared)
    assert committed_parts(db, prepared.file.file_id) == 0


def test_one_stream_loads_the_chunk_whole(settings, db, prepared):
    result = load_chunk(settings.psycopg_conninfo, prepared.target, prepared.chunks[0])

    assert (result.row_count, result.parts) == (ROWS, 1)
    assert loaded(db, prepared) == every_row_once(prepared)


def test_cut_short_between_part_commits_the_next_attempt_removes_the_parts_rows(
    settings, db, prepared
):
    # The chunk's own commit fails after its other parts have committed: the window a killed
    # process would leave open.
    db.execute("CREATE SEQUENCE cut_short_hits")
    db.execute(
        """
        CREATE FUNCTION cut_short() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status = 'loaded' AND nextval('cut_short_hits') = 1 THEN
                RAISE EXCEPTION 'cut short' USING ERRCODE = '57P01';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    db.execute(
        "CREATE TRIGGER cut_short BEFORE UPDATE ON granula.chunks "
        "FOR EACH ROW EXECUTE FUNCTION cut_short()"
    )
    try:
        with pytest.raises(psycopg.errors.AdminShutdown):
            load_in_parts(settings, prepared)
        left_behind = len(loaded(db, prepared))
        assert 0 < left_behind < ROWS
        assert committed_parts(db, prepared.file.file_id) == 1

        result = load_in_parts(settings, prepared)
    finally:
        db.execute("DROP TRIGGER cut_short ON granula.chunks")
        db.execute("DROP FUNCTION cut_short")
        db.execute("DROP SEQUENCE cut_short_hits")

    assert (result.outcome, result.row_count) == ("loaded", ROWS)
    assert loaded(db, prepared) == every_row_once(prepared)
    assert committed_parts(db, prepared.file.file_id) == 0
    again = load_in_parts(settings, prepared)
    assert again.outcome == "already_loaded"


def test_a_part_that_fails_rolls_back_every_part(settings, db, prepared):
    inject_fault(db, prepared.target.table, chunk=0, times=1, sqlstate="40P01")
    try:
        with pytest.raises(psycopg.errors.DeadlockDetected):
            load_in_parts(settings, prepared)
        assert loaded(db, prepared) == []
        assert committed_parts(db, prepared.file.file_id) == 0

        result = load_in_parts(settings, prepared)
    finally:
        clear_fault(db, prepared.target.table)

    assert result.row_count == ROWS
    assert loaded(db, prepared) == every_row_once(prepared)


def test_rejected_row_in_a_later_part_keeps_its_line_number(settings, db):
    bad_line = ROWS - 10  # near the end: in the last of the parts
    path = write_plain(
        settings.inbox / f"one_bad_{uuid.uuid4().hex[:8]}.csv", ROWS, bad_line=bad_line
    )
    prepared = prepare(settings, db, path)

    result = load_in_parts(settings, prepared, streams=3)

    assert (result.row_count, result.rejected_rows, result.parts) == (ROWS - 1, 1, 3)
    rejected = db.execute(
        "SELECT line_number, raw_text FROM granula.rejected_rows WHERE file_id = %s",
        (prepared.file.file_id,),
    ).fetchall()
    assert rejected == [(bad_line, f"{bad_line - 2},name,1.5,surplus")]
    ids = [row[0] for row in loaded(db, prepared)]
    assert ids == [i for i in range(ROWS) if i != bad_line - 2]


@pytest.mark.parametrize(
    ("terminator", "trailing"), [("\n", True), ("\r\n", True), ("\n", False), ("\r\n", False)]
)
def test_lineage_is_appended_block_by_block_whatever_the_line_ends(
    settings, db, monkeypatch, terminator, trailing
):
    # Blocks of 64 bytes: records end on block edges, and one record is longer than a block.
    monkeypatch.setattr(copying, "COPY_BLOCK_BYTES", 64)
    rows = [f"{i},name {i},{i * 0.5}" for i in range(ROWS)]
    rows[7] = f"7,{'long name ' * 20},3.5"
    text = terminator.join(["id,name,value", *rows]) + (terminator if trailing else "")
    path = settings.inbox / f"lines_{uuid.uuid4().hex[:8]}.csv"
    path.write_bytes(text.encode())
    prepared = prepare(settings, db, path)

    result = load_in_parts(settings, prepared, streams=2)

    assert (result.row_count, result.method, result.parts) == (ROWS, "copy", 2)
    assert loaded(db, prepared) == every_row_once(prepared)
    table = f"{prepared.target.schema}.{prepared.target.table}"
    assert db.execute(f"SELECT name, value FROM {table} WHERE id = 7").fetchone() == (
        "long name " * 20,
        3.5,
    )
    last = db.execute(f"SELECT name FROM {table} WHERE id = {ROWS - 1}").fetchone()
    assert last == (f"name {ROWS - 1}",), "no carriage return or lineage left in the last value"
