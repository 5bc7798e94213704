"""Load one chunk exactly once: its rows go to COPY with the chunk's bookkeeping.

A CSV chunk's bytes go to COPY as they are in the file (`copying.copy_as_is`), in parts over
several connections at once. When PostgreSQL refuses the bytes (a value it cannot read, a `NA` in
a number column, a ragged record), the part goes the careful way: parsed record by record, rows
that cannot be loaded set aside in `granula.rejected_rows` with their line and reason, the rest
written to COPY. NDJSON and Parquet chunks are read by their format's reader the careful way. A
chunk is marked loaded in the transaction that writes its (last) rows, and a chunk marked loaded
is never loaded again, so a retried chunk cannot duplicate rows.

A chunk is read from the file as planned, checked before and after its bytes are read: a file
that changed, was replaced, re-linked or deleted since it was planned fails as a whole, and what
its chunks loaded before is undone, so that nothing but the planned content ever loads.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

from granula_pipeline.lib.control import chunks as chunk_ledger
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.db import connect
from granula_pipeline.lib.formats import RecordFormat, format_of
from granula_pipeline.lib.formats.csv.parsing import normalise_nulls, parse_chunk
from granula_pipeline.lib.formats.csv.records import has_stray_quotes, split_records
from granula_pipeline.lib.formats.source import read_chunk_bytes
from granula_pipeline.lib.load.copying import copy_as_is, copy_checked
from granula_pipeline.lib.load.identity import FileChangedError, LoadUndone, open_planned
from granula_pipeline.lib.model import (
    ChunkPlan,
    ChunkResult,
    FileStatus,
    LoadTarget,
    ParsedChunk,
    Rejected,
)

MIN_PART_BYTES = 4 * 1024 * 1024


def load_chunk(
    conninfo: str,
    target: LoadTarget,
    chunk: ChunkPlan,
    *,
    streams: int = 1,
    min_part_bytes: int = MIN_PART_BYTES,
) -> ChunkResult:
    """Load `chunk` of `target` exactly once; a chunk already loaded is left as it is.

    With `streams` > 1, a chunk of more than `min_part_bytes` is cut into parts of whole records
    that go to COPY over that many connections at once, so PostgreSQL works on as many cores.
    Every part waits for the others to load; then they commit, the part that marks the chunk
    loaded last. A process that dies between those commits leaves the parts committed listed in
    `granula.chunk_parts`, and the chunk's next attempt deletes their rows before loading it.
    """
    started = time.perf_counter()
    with connect(conninfo, autocommit=True) as conn:
        _mark_started(conn, target, chunk)
    with connect(conninfo) as conn:
        path = _lock_unloaded(conn, target, chunk)
        if path is None:
            conn.rollback()
            return ChunkResult(chunk.index, "already_loaded", 0, 0, "none", 0.0)
        try:
            read = _read(conn, target, chunk, path)
        except FileChangedError as exc:
            conn.rollback()  # let go of the chunk: undoing the file's load deletes it
            with connect(conninfo, autocommit=True) as other, other.transaction():
                control.discard_load(other, target.file_id, str(exc))
            raise
        if isinstance(read, ParsedChunk):  # parsed in Python: one stream is enough
            loads = [_load_records(conn, target, chunk, read)]
        else:  # the file's bytes go to COPY, in parts over several connections
            count = max(1, min(streams, chunk.byte_count // min_part_bytes))
            if target.dialect is not None and not target.dialect.copyable:
                count = 1  # parts are cut by the plain record rule, which this dialect breaks
            loads = _load_csv_parts(conninfo, conn, target, chunk, read, count)
        rows = sum(load.rows for load in loads)
        rejected = sum(len(load.rejected) for load in loads)
        chunk_ledger.finish_chunk(
            conn, target.file_id, chunk.index, row_count=rows, rejected=rejected
        )
        conn.commit()
    method: Literal["copy", "parsed"] = (
        "parsed" if any(load.method == "parsed" for load in loads) else "copy"
    )
    seconds = time.perf_counter() - started
    return ChunkResult(chunk.index, "loaded", rows, rejected, method, seconds, len(loads))


def _mark_started(conn: psycopg.Connection, target: LoadTarget, chunk: ChunkPlan) -> None:
    """Flag the chunk as processing; a chunk whose file's load was undone fails saying why."""
    try:
        chunk_ledger.mark_chunk_started(conn, target.file_id, chunk.index)
    except LookupError:
        record = control.file_by_id(conn, target.file_id)
        if record is None or record.status != FileStatus.FAILED or record.total_chunks is not None:
            raise
        raise LoadUndone(record.error_message or "the file's load was undone") from None


def _read(
    conn: psycopg.Connection, target: LoadTarget, chunk: ChunkPlan, path: Path
) -> ParsedChunk | bytes:
    """The chunk's records (a record format's) or bytes (CSV's), read from the file at `path`
    (where it is now: it may have moved) if it is still the file planned."""
    reader = format_of(target.format)
    planned = control.planned_identity(conn, target.file_id)
    folders = [Path(folder) for folder in target.folders]
    with open_planned(path, planned, folders, file_id=target.file_id) as source:
        if isinstance(reader, RecordFormat):
            return reader.read_chunk(source, target, chunk)
        return read_chunk_bytes(source, chunk, target.compression)


def _load_csv_parts(
    conninfo: str,
    conn: psycopg.Connection,
    target: LoadTarget,
    chunk: ChunkPlan,
    data: bytes,
    count: int,
) -> list[_PartLoad]:
    """COPY the chunk's `data` in `count` parts at once, the first in `conn`; commit all but the
    first. The others commit only once every part has loaded, each noting itself in
    `granula.chunk_parts`; the caller's transaction, which marks the chunk loaded, commits last.
    """
    first, *others = _parts(data, chunk, count)
    with ExitStack() as stack:
        connections = [stack.enter_context(connect(conninfo)) for _ in others]
        with ThreadPoolExecutor(max_workers=max(1, len(others))) as pool:
            pending = [
                pool.submit(_load_part, other, target, chunk.index, data, part)
                for other, part in zip(connections, others, strict=True)
            ]
            try:
                loads = [_load_part(conn, target, chunk.index, data, first)]
                loads += [future.result() for future in pending]
            except BaseException:
                # Interrupted (SIGTERM, the run's time limit) or failed: stop the other parts'
                # COPYs now rather than wait for them, however long they would take.
                _cancel(connections)
                raise
        for other, part, load in zip(connections, others, loads[1:], strict=True):
            chunk_ledger.record_part(
                other, target.file_id, chunk.index, first_line=part.first_line, row_count=load.rows
            )
            other.commit()
    return loads


def _cancel(connections: list[psycopg.Connection]) -> None:
    """Cancel what each connection is running; their transactions then roll back."""
    for connection in connections:
        with contextlib.suppress(psycopg.Error):
            connection.cancel_safe(timeout=5)


@dataclass(frozen=True)
class _Part:
    """Bytes [start, end) of a chunk, whose first record is on line `first_line` of the file."""

    first_line: int
    start: int
    end: int


@dataclass(frozen=True)
class _PartLoad:
    rows: int
    rejected: list[Rejected]
    method: Literal["copy", "parsed"]


def _lock_unloaded(conn: psycopg.Connection, target: LoadTarget, chunk: ChunkPlan) -> Path | None:
    """Lock the chunk if it is still to load, with rows of an earlier, cut-short attempt gone."""
    status, path = chunk_ledger.lock_chunk(conn, target.file_id, chunk.index)
    if status != "loaded" and chunk_ledger.take_committed_parts(conn, target.file_id, chunk.index):
        conn.execute(
            sql.SQL(
                "DELETE FROM {} WHERE _granula_file_id = %s AND _granula_chunk_index = %s"
            ).format(sql.Identifier(target.schema, target.table)),
            (target.file_id, chunk.index),
        )
        chunk_ledger.forget_rejected(conn, target.file_id, chunk.index)
        conn.commit()  # before this attempt's parts write rejected rows at the same lines again
        status, path = chunk_ledger.lock_chunk(conn, target.file_id, chunk.index)
    return None if status == "loaded" else Path(path)


def _parts(data: bytes, chunk: ChunkPlan, count: int) -> list[_Part]:
    cuts = [0, *split_records(data, count), len(data)] if count > 1 else [0, len(data)]
    return [
        _Part(chunk.first_line + data.count(b"\n", 0, start), start, end)
        for start, end in itertools.pairwise(cuts)
    ]


def _set_lineage(conn: psycopg.Connection, target: LoadTarget, chunk_index: int) -> None:
    """The lineage columns' defaults for rows written in this transaction."""
    conn.execute("SELECT set_config('granula.file_id', %s, true)", (str(target.file_id),))
    conn.execute("SELECT set_config('granula.chunk_index', %s, true)", (str(chunk_index),))


def _load_part(
    conn: psycopg.Connection, target: LoadTarget, chunk_index: int, data: bytes, part: _Part
) -> _PartLoad:
    """COPY one part of a CSV chunk in `conn`'s open transaction; rows refused are quarantined."""
    _set_lineage(conn, target, chunk_index)
    rows = None
    copyable = target.dialect is None or target.dialect.copyable
    if copyable and not has_stray_quotes(data, target.delimiter, part.start, part.end):
        rows = copy_as_is(conn, target, chunk_index, data, part.start, part.end)
    if rows is not None:
        return _PartLoad(rows, [], "copy")
    parsed = parse_chunk(
        data[part.start : part.end],
        target.columns,
        part.first_line,
        target.encoding,
        target.delimiter,
        target.dialect,
    )
    frame = normalise_nulls(parsed.frame, target.columns)
    rows, rejected = copy_checked(conn, target, part.first_line, frame, parsed.rejected)
    chunk_ledger.quarantine(conn, target.file_id, chunk_index, rejected)
    return _PartLoad(rows, rejected, "parsed")


def _load_records(
    conn: psycopg.Connection, target: LoadTarget, chunk: ChunkPlan, parsed: ParsedChunk
) -> _PartLoad:
    """A chunk read by its format's reader into a frame, COPY'd; rows refused are quarantined."""
    _set_lineage(conn, target, chunk.index)
    rows, rejected = copy_checked(
        conn, target, chunk.first_line, parsed.frame, parsed.rejected, check_types=not parsed.typed
    )
    chunk_ledger.quarantine(conn, target.file_id, chunk.index, rejected)
    return _PartLoad(rows, rejected, "parsed")
