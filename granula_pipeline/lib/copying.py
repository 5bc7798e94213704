"""COPY into a file's table: a chunk's bytes as they are, or a parsed frame row-checked.

`copy_as_is` sends bytes to `COPY ... (FORMAT csv)` unchanged while polars counts their records
on another core; the two must agree. `copy_checked` writes a frame whose values were checked,
setting aside (with line and reason) each row PostgreSQL still refuses.
"""

from __future__ import annotations

import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl
import psycopg
from psycopg import sql

from granula_pipeline.lib.chunk_parsing import LINE_COLUMN, Rejected, quoted, type_problems
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats import CSV
from granula_pipeline.lib.planning import record_ends
from granula_pipeline.lib.schema import Column
from granula_pipeline.lib.tables import LINEAGE_COLUMNS

COPY_BLOCK_BYTES = 1024 * 1024
MAX_REFUSALS_PER_CHUNK = 1000
_COPY_CONTEXT = re.compile(r"line (\d+)(?:, column ([^:]+))?")


@dataclass(frozen=True)
class LoadTarget:
    """Where a file's chunks go: the file's id and encoding, its table and columns, and how its
    bytes are read (format, compression, CSV delimiter)."""

    file_id: int
    schema: str
    table: str
    columns: list[Column] = field(default_factory=list)
    encoding: str = "UTF8"
    format: str = CSV
    compression: str | None = None
    delimiter: str = ","


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
    """polars and PostgreSQL read a different number of rows from the same bytes."""


def copy_as_is(
    conn: psycopg.Connection, target: LoadTarget, chunk_index: int, data: bytes
) -> int | None:
    """COPY the raw bytes inside a savepoint; the row count if PostgreSQL and polars agree.

    Where every newline ends a record, the lineage values are written at the end of each line:
    PostgreSQL then reads them like any other field, which costs it less than filling in the
    columns' `current_setting` defaults row by row.
    """
    separator = target.delimiter
    payload = _with_lineage(data, f"{separator}{target.file_id}{separator}{chunk_index}".encode())
    with ThreadPoolExecutor(max_workers=1) as pool:
        counted = pool.submit(_count_records, data, separator)
        statement = _copy_statement(target, target.encoding, separator, lineage=payload is not None)
        payload = data if payload is None else payload
        try:
            with conn.transaction(), conn.cursor() as cursor:
                with cursor.copy(statement) as copy:
                    view = memoryview(payload)
                    for offset in range(0, len(payload), COPY_BLOCK_BYTES):
                        copy.write(view[offset : offset + COPY_BLOCK_BYTES])
                if counted.result() != cursor.rowcount:
                    raise _Disagreement
                return cursor.rowcount
        except (psycopg.errors.DataError, _Disagreement):
            return None


def _with_lineage(data: bytes, suffix: bytes) -> bytes | None:
    """`data` with `suffix` at the end of every record, or None where lines and records differ
    (a quoted field holding a newline, a carriage return other than before a newline)."""
    if b"\r" in data:
        if data.count(b"\r") != data.count(b"\r\n"):
            return None
        newline = b"\r\n"
    else:
        newline = b"\n"
    if b'"' in data and record_ends(data)[1]:
        return None
    marked = data.replace(newline, suffix + newline)
    return marked if data.endswith(newline) else marked + suffix


def _count_records(data: bytes, separator: str) -> int:
    """Records in `data` as polars reads them (its quote-aware line count, nothing kept)."""
    try:
        frame = pl.scan_csv(
            io.BytesIO(data),
            has_header=False,
            separator=separator,
            infer_schema=False,
            encoding="utf8-lossy",
        )
        return int(frame.select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, ValueError):
        return -1


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
        with cursor.copy(_copy_statement(target, "UTF8")) as copy:  # polars writes UTF-8
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
