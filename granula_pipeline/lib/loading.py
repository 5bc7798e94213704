"""Load one chunk: its bytes go to COPY in one transaction with the chunk's bookkeeping.

The fast way sends the chunk's bytes to `COPY ... (FORMAT csv)` exactly as they are in the file while
polars parses the same bytes on another core; the two must agree on the row count before the
transaction commits. When PostgreSQL refuses the bytes (a value it cannot read, a `NA` in a number
column) or the two disagree, the chunk goes the careful way: polars types each column, and the
typed frame is written to COPY. A chunk commits wholly or not at all, and a committed chunk is
never loaded again, so a retried chunk cannot duplicate rows.
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

from granula_pipeline.lib import control
from granula_pipeline.lib.chunk_parsing import LINE_COLUMN, normalise_nulls, parse_chunk
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.planning import ChunkPlan
from granula_pipeline.lib.schema import Column

COPY_BLOCK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LoadTarget:
    """Where a file's chunks go: the file's id and path, and its dataset's table and columns."""

    file_id: int
    path: str
    schema: str
    table: str
    columns: list[Column] = field(default_factory=list)

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class ChunkResult:
    chunk_index: int
    outcome: Literal["loaded", "already_loaded"]
    row_count: int
    rejected_rows: int
    method: Literal["copy", "parsed", "none"]
    seconds: float


def read_chunk_bytes(path: Path, chunk: ChunkPlan) -> bytes:
    """The chunk's own bytes, and nothing before or after them."""
    with path.open("rb") as source:
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
        control.mark_chunk_started(conn, target.file_id, chunk.index)
    with psycopg.connect(conninfo) as conn:
        if control.lock_chunk(conn, target.file_id, chunk.index) == "loaded":
            conn.rollback()
            return ChunkResult(chunk.index, "already_loaded", 0, 0, "none", 0.0)
        conn.execute("SELECT set_config('granula.file_id', %s, true)", (str(target.file_id),))
        conn.execute("SELECT set_config('granula.chunk_index', %s, true)", (str(chunk.index),))
        data = read_chunk_bytes(Path(target.path), chunk)
        rows = None if chunk.stray_quotes else _copy_as_is(conn, target, chunk, data)
        method: Literal["copy", "parsed"] = "copy"
        if rows is None:
            method = "parsed"
            frame = parse_chunk(data, target.columns, chunk.first_line)
            rows = _copy_frame(conn, target, normalise_nulls(frame, target.columns))
        control.finish_chunk(conn, target.file_id, chunk.index, row_count=rows, rejected=0)
        conn.commit()
    return ChunkResult(chunk.index, "loaded", rows, 0, method, time.perf_counter() - started)


def _copy_statement(target: LoadTarget) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(target.schema, target.table),
        sql.SQL(", ").join(sql.Identifier(c.name) for c in target.columns),
    )


def _copy_as_is(
    conn: psycopg.Connection, target: LoadTarget, chunk: ChunkPlan, data: bytes
) -> int | None:
    """COPY the raw bytes inside a savepoint; the row count if PostgreSQL and polars agree."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        parsed = pool.submit(_count_rows, data, len(target.columns))
        try:
            with conn.transaction(), conn.cursor() as cursor:
                with cursor.copy(_copy_statement(target)) as copy:
                    view = memoryview(data)
                    for offset in range(0, len(data), COPY_BLOCK_BYTES):
                        copy.write(view[offset : offset + COPY_BLOCK_BYTES])
                copied = cursor.rowcount
                if parsed.result() != copied:
                    raise _Disagreement
        except (
            psycopg.errors.DataError,
            psycopg.errors.IntegrityConstraintViolation,
            _Disagreement,
        ):
            return None
        except psycopg.errors.ProgramLimitExceeded:
            return None
    return copied


class _Disagreement(Exception):
    """polars and PostgreSQL read a different number of rows from the same bytes."""


def _count_rows(data: bytes, width: int) -> int:
    try:
        frame = pl.read_csv(
            data,
            has_header=False,
            infer_schema=False,
            new_columns=[f"c{i}" for i in range(width)],
            raise_if_empty=False,
            missing_columns="raise",
        )
    except (pl.exceptions.PolarsError, ValueError):
        return -1
    return frame.height if frame.width == width else -1


def _copy_frame(conn: psycopg.Connection, target: LoadTarget, frame: pl.DataFrame) -> int:
    """COPY a parsed frame; a value PostgreSQL cannot type is reported with its line and column."""
    payload = frame.drop(LINE_COLUMN).write_csv(include_header=False).encode()
    try:
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(_copy_statement(target)) as copy:
                copy.write(payload)
            return cursor.rowcount
    except psycopg.errors.DataError as exc:
        raise _located_error(exc, target, frame) from exc


_COPY_CONTEXT = re.compile(r"line (\d+)(?:, column ([^:]+))?")


def _located_error(
    exc: psycopg.errors.DataError, target: LoadTarget, frame: pl.DataFrame
) -> BadInputError:
    """Turn PostgreSQL's `COPY t, line 3, column x` into the source file's line and header name."""
    message = exc.diag.message_primary or str(exc)
    match = _COPY_CONTEXT.search(exc.diag.context or "")
    if not match:
        return BadInputError(message)
    record = int(match.group(1)) - 1
    line = int(frame[LINE_COLUMN][record]) if 0 <= record < frame.height else None
    by_name = {c.name: c.source_name for c in target.columns}
    column = by_name.get(match.group(2) or "", match.group(2))
    return BadInputError(message, line=line, column=column)
