"""COPY into a file's table: a chunk's bytes as they are, or a parsed frame row-checked.

`copy_as_is` sends bytes to `COPY ... (FORMAT csv)` unchanged; PostgreSQL must read as many
records as the planner's rule counts in them. `copy_checked` writes a frame whose values were
checked, setting aside (with line and reason) each row PostgreSQL still refuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import polars as pl
import psycopg
from psycopg import sql

from granula_pipeline.lib.db import cancelled_if_interrupted
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.csv.parsing import quoted, type_problems
from granula_pipeline.lib.formats.csv.records import count_records
from granula_pipeline.lib.load.tables import LINEAGE_COLUMNS
from granula_pipeline.lib.model import LINE_COLUMN, Column, LoadTarget, Rejected

COPY_BLOCK_BYTES = 1024 * 1024
MAX_REFUSALS_PER_CHUNK = 1000
_COPY_CONTEXT = re.compile(r"line (\d+)(?:, column ([^:]+))?")


def _copy_statement(
    target: LoadTarget, encoding: str, delimiter: str = ",", *, lineage: bool = False
) -> sql.Composed:
    names = [c.name for c in target.columns] + (list(LINEAGE_COLUMNS) if lineage else [])
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, ENCODING {}, DELIMITER {})").format(
        sql.Identifier(target.schema, target.table),
        sql.SQL(", ").join(sql.Identifier(name) for name in names),
        sql.Literal(encoding),
        sql.Literal(delimiter),
    )


class _Disagreement(Exception):
    """PostgreSQL read a different number of rows than the bytes hold."""


def copy_as_is(
    conn: psycopg.Connection,
    target: LoadTarget,
    chunk_index: int,
    data: bytes,
    start: int = 0,
    end: int | None = None,
) -> int | None:
    """COPY bytes [start, end) of `data` unchanged, in a savepoint; their row count, or None if
    PostgreSQL refuses them or reads another number of records than they hold.

    Where every newline ends a record, the lineage values are appended to each line block by block
    as the bytes go out: PostgreSQL reads them like any other field, which costs it less than
    filling in the columns' `current_setting` defaults row by row. Nothing but the block in hand is
    copied.
    """
    end = len(data) if end is None else end
    records, newline = _records(data, start, end)
    separator = target.delimiter
    suffix = f"{separator}{target.file_id}{separator}{chunk_index}".encode()
    statement = _copy_statement(target, target.encoding, separator, lineage=newline is not None)
    try:
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(statement) as copy, cancelled_if_interrupted(conn):
                for block in _blocks(data, start, end):
                    copy.write(block if newline is None else _with_lineage(block, newline, suffix))
            if cursor.rowcount != records:
                raise _Disagreement
            return records
    except (psycopg.errors.DataError, _Disagreement):
        return None


def _records(data: bytes, start: int, end: int) -> tuple[int, bytes | None]:
    """The records in bytes [start, end), and their terminator if every newline ends a record:
    None where a quoted field holds a newline or a carriage return stands alone."""
    newline: bytes | None = b"\n"
    if data.find(b"\r", start, end) != -1:
        same = data.count(b"\r", start, end) == data.count(b"\r\n", start, end)
        newline = b"\r\n" if same else None
    records, quoted_newline = count_records(data, start, end)
    return records, None if quoted_newline else newline


def _blocks(data: bytes, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) in blocks of about COPY_BLOCK_BYTES, each ending after a newline."""
    while start < end:
        cut = end
        if start + COPY_BLOCK_BYTES < end:
            cut = data.rfind(b"\n", start, start + COPY_BLOCK_BYTES) + 1
            if cut <= start:  # a record longer than a block
                cut = data.find(b"\n", start + COPY_BLOCK_BYTES, end) + 1 or end
        yield data[start:cut]
        start = cut


def _with_lineage(block: bytes, newline: bytes, suffix: bytes) -> bytes:
    """`block` with `suffix` at the end of every record (its last one may lack a newline)."""
    marked = block.replace(newline, suffix + newline)
    return marked if block.endswith(newline) else marked + suffix


def copy_checked(
    conn: psycopg.Connection,
    target: LoadTarget,
    first_line: int,
    frame: pl.DataFrame,
    rejected: list[Rejected],
    *,
    check_types: bool = True,
) -> tuple[int, list[Rejected]]:
    """COPY a frame with its source lines; set aside the rows whose values cannot be loaded."""
    rejected = list(rejected)
    problems = type_problems(frame, target.columns) if check_types else {}
    if problems:
        frame, set_aside = _set_aside(frame, target.columns, problems)
        rejected.extend(set_aside)
    for _ in range(MAX_REFUSALS_PER_CHUNK):
        try:
            return _copy_frame(conn, target, frame), rejected
        except psycopg.errors.DataError as exc:
            index, reason = _refused_row(exc, target, frame)
            frame, set_aside = _set_aside(frame, target.columns, {index: reason})
            rejected.extend(set_aside)
    raise BadInputError(
        f"PostgreSQL refused more than {MAX_REFUSALS_PER_CHUNK} rows of this chunk",
        line=first_line,
    )


def _copy_frame(conn: psycopg.Connection, target: LoadTarget, frame: pl.DataFrame) -> int:
    payload = frame.drop(LINE_COLUMN, strict=False).write_csv(include_header=False).encode()
    with conn.transaction(), conn.cursor() as cursor:
        copying = cursor.copy(_copy_statement(target, "UTF8"))  # polars writes UTF-8
        with copying as copy, cancelled_if_interrupted(conn):
            copy.write(payload)
        return cursor.rowcount


def _refused_row(
    exc: psycopg.errors.DataError, target: LoadTarget, frame: pl.DataFrame
) -> tuple[int, str]:
    """PostgreSQL's `COPY t, line 3, column x: "abc"` as a row index and a reason for a person."""
    message = exc.diag.message_primary or str(exc)
    match = _COPY_CONTEXT.search(exc.diag.context or "")
    if not match or not 0 < int(match.group(1)) <= frame.height:
        raise BadInputError(f"PostgreSQL refused this chunk: {message}") from exc
    by_name = {c.name: c.source_name for c in target.columns}
    column = match.group(2)
    where = f" (column {by_name.get(column, column)!r})" if column else ""
    return int(match.group(1)) - 1, f"{message}{where}"


def _set_aside(
    frame: pl.DataFrame, columns: list[Column], problems: dict[int, str]
) -> tuple[pl.DataFrame, list[Rejected]]:
    rows = frame.with_row_index("_index").filter(pl.col("_index").is_in(list(problems)))
    set_aside = [
        Rejected(record[LINE_COLUMN], quoted(record, columns), problems[record["_index"]])
        for record in rows.iter_rows(named=True)
    ]
    keep = frame.with_row_index("_index").filter(~pl.col("_index").is_in(list(problems)))
    return keep.drop("_index"), set_aside
