"""Load one chunk: its rows go to COPY in one transaction with the chunk's bookkeeping.

The fast way sends the chunk's bytes to `COPY ... (FORMAT csv)` exactly as they are in the file
while polars counts the same bytes' records on another core; the two must agree before the
transaction commits. When PostgreSQL refuses the bytes (a value it cannot read, a `NA` in a number
column, a ragged record) or the two disagree, the chunk goes the careful way: parsed record by
record, rows that cannot be loaded set aside in `granula.rejected_rows` with their line and reason,
the rest written to COPY. A chunk commits wholly or not at all, and a committed chunk is never
loaded again, so a retried chunk cannot duplicate rows.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl
import psycopg
from psycopg import sql

from granula_pipeline.lib import chunk_ledger
from granula_pipeline.lib.chunk_parsing import (
    LINE_COLUMN,
    Rejected,
    normalise_nulls,
    parse_chunk,
    quoted,
    type_problems,
)
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats import CSV, PARQUET, open_source
from granula_pipeline.lib.ndjson import parse_ndjson_chunk
from granula_pipeline.lib.parquet import read_row_groups
from granula_pipeline.lib.planning import ChunkPlan, has_stray_quotes
from granula_pipeline.lib.schema import Column

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


@dataclass(frozen=True)
class ChunkResult:
    chunk_index: int
    outcome: Literal["loaded", "already_loaded"]
    row_count: int
    rejected_rows: int
    method: Literal["copy", "parsed", "none"]
    seconds: float


def read_chunk_bytes(path: Path, chunk: ChunkPlan, compression: str | None = None) -> bytes:
    """The chunk's own bytes, and nothing before or after them.

    In a gzip'd file the range is in the decompressed stream: seeking there decompresses the
    bytes before it and throws them away, so memory holds the chunk only.
    """
    with open_source(path, compression) as source:
        source.seek(chunk.byte_start)
        data = source.read(chunk.byte_count)
    if len(data) != chunk.byte_count:
        raise BadInputError(
            f"the file changed after it was planned: expected {chunk.byte_count} bytes at offset "
            f"{chunk.byte_start}, found {len(data)}; drop it into the inbox again",
            line=chunk.first_line,
        )
    return data


def load_chunk(conninfo: str, target: LoadTarget, chunk: ChunkPlan) -> ChunkResult:
    """Load `chunk` of `target` exactly once; a chunk already loaded is left as it is."""
    started = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        chunk_ledger.mark_chunk_started(conn, target.file_id, chunk.index)
    with psycopg.connect(conninfo) as conn:
        status, path = chunk_ledger.lock_chunk(conn, target.file_id, chunk.index)
        if status == "loaded":
            conn.rollback()
            return ChunkResult(chunk.index, "already_loaded", 0, 0, "none", 0.0)
        conn.execute("SELECT set_config('granula.file_id', %s, true)", (str(target.file_id),))
        conn.execute("SELECT set_config('granula.chunk_index', %s, true)", (str(chunk.index),))
        # where the file is now: it may have moved
        rows, rejected, method = _copy_chunk(conn, target, chunk, Path(path))
        chunk_ledger.quarantine(conn, target.file_id, chunk.index, rejected)
        chunk_ledger.finish_chunk(
            conn, target.file_id, chunk.index, row_count=rows, rejected=len(rejected)
        )
        conn.commit()
    return ChunkResult(
        chunk.index, "loaded", rows, len(rejected), method, time.perf_counter() - started
    )


def _copy_chunk(
    conn: psycopg.Connection, target: LoadTarget, chunk: ChunkPlan, path: Path
) -> tuple[int, list[Rejected], Literal["copy", "parsed"]]:
    """The chunk's rows into COPY: a CSV chunk's bytes as they are when they can, else parsed."""
    if target.format != CSV:
        return (*_copy_records(conn, target, chunk, path), "parsed")
    data = read_chunk_bytes(path, chunk, target.compression)
    rows = None if has_stray_quotes(data, target.delimiter) else _copy_as_is(conn, target, data)
    if rows is not None:
        return rows, [], "copy"
    return (*_copy_parsed(conn, target, chunk, data), "parsed")


def _copy_statement(target: LoadTarget, encoding: str, delimiter: str = ",") -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, ENCODING {}, DELIMITER {})").format(
        sql.Identifier(target.schema, target.table),
        sql.SQL(", ").join(sql.Identifier(c.name) for c in target.columns),
        sql.Literal(encoding),
        sql.Literal(delimiter),
    )


class _Disagreement(Exception):
    """polars and PostgreSQL read a different number of rows from the same bytes."""


def _copy_as_is(conn: psycopg.Connection, target: LoadTarget, data: bytes) -> int | None:
    """COPY the raw bytes inside a savepoint; the row count if PostgreSQL and polars agree."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        counted = pool.submit(_count_records, data, len(target.columns), target.delimiter)
        try:
            with conn.transaction(), conn.cursor() as cursor:
                statement = _copy_statement(target, target.encoding, target.delimiter)
                with cursor.copy(statement) as copy:
                    view = memoryview(data)
                    for offset in range(0, len(data), COPY_BLOCK_BYTES):
                        copy.write(view[offset : offset + COPY_BLOCK_BYTES])
                if counted.result() != cursor.rowcount:
                    raise _Disagreement
                return cursor.rowcount
        except (psycopg.errors.DataError, _Disagreement):
            return None


def _count_records(data: bytes, width: int, separator: str = ",") -> int:
    try:
        frame = pl.read_csv(
            data,
            has_header=False,
            separator=separator,
            infer_schema=False,
            new_columns=[f"c{i}" for i in range(width)],
            encoding="utf8-lossy",
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, ValueError):
        return -1
    return frame.height if frame.width == width else -1


def _copy_parsed(
    conn: psycopg.Connection, target: LoadTarget, chunk: ChunkPlan, data: bytes
) -> tuple[int, list[Rejected]]:
    """Load the records that can be loaded; return their count and the ones set aside."""
    parsed = parse_chunk(data, target.columns, chunk.first_line, target.encoding, target.delimiter)
    frame = normalise_nulls(parsed.frame, target.columns)
    return _copy_checked(conn, target, chunk, frame, parsed.rejected)


def _copy_records(
    conn: psycopg.Connection, target: LoadTarget, chunk: ChunkPlan, path: Path
) -> tuple[int, list[Rejected]]:
    """An NDJSON or Parquet chunk, read by its format's reader into a frame, then COPY'd."""
    if target.format == PARQUET:
        frame = read_row_groups(path, target.columns, chunk)
        return _copy_checked(conn, target, chunk, frame, [], check_types=False)
    data = read_chunk_bytes(path, chunk)
    parsed = parse_ndjson_chunk(data, target.columns, chunk.first_line, target.encoding)
    return _copy_checked(conn, target, chunk, parsed.frame, parsed.rejected)


def _copy_checked(
    conn: psycopg.Connection,
    target: LoadTarget,
    chunk: ChunkPlan,
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
        line=chunk.first_line,
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
