"""A file's load from start to end: plan it and prepare its table, then settle its outcome."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg

from granula_pipeline.lib import control
from granula_pipeline.lib.control import FileRecord
from granula_pipeline.lib.database import ensure_migrated
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.header import read_header
from granula_pipeline.lib.loading import LoadTarget, read_chunk_bytes
from granula_pipeline.lib.planning import ChunkPlan, plan_file
from granula_pipeline.lib.schema import infer_columns, whole_records
from granula_pipeline.lib.tables import ensure_table, table_name_for
from granula_pipeline.settings import Settings

SAMPLE_CHUNKS = 16
SAMPLE_BYTES_PER_CHUNK = 512 * 1024
SAMPLE_BYTES_FIRST_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class PreparedLoad:
    file: FileRecord
    target: LoadTarget
    chunks: list[ChunkPlan]


def prepare_load(settings: Settings, partition_key: str, run_id: str) -> PreparedLoad:
    """Plan the file of `partition_key` into chunks and make its table ready to receive them.

    A file planned before (a retried or re-executed run) keeps its plan, so chunks already loaded
    are recognised as such. Bad input fails the file with a message saying what and where.
    """
    ensure_migrated(settings)
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        record = control.file_by_key(conn, partition_key)
        if record is None:
            raise LookupError(
                f"no file is registered for partition {partition_key!r}; "
                "drop the file into the inbox or use `granula submit`"
            )
        control.start_file(conn, record.file_id, run_id)
        try:
            return _prepare(settings, conn, record)
        except BadInputError as exc:
            control.fail_file(conn, record.file_id, str(exc))
            raise


def _prepare(settings: Settings, conn: psycopg.Connection, record: FileRecord) -> PreparedLoad:
    path = Path(record.path)
    _check_readable(settings, path)
    header = read_header(path)
    chunks = control.planned_chunks(conn, record.file_id)
    plan = None
    with conn.transaction():
        if not chunks:
            plan = plan_file(
                path,
                data_offset=header.data_offset,
                first_line=header.first_data_line,
                chunk_rows=settings.chunk_size,
                max_bytes=settings.chunk_max_bytes,
            )
            chunks = plan.chunks
        columns = infer_columns(_sample(path, chunks), header.columns, header.source_names)
        table = table_name_for(record.dataset)
        columns = ensure_table(conn, settings.results_schema, table, columns, record.filename)
        if plan is not None:
            control.record_plan(
                conn,
                record.file_id,
                chunks,
                table_name=f"{settings.results_schema}.{table}",
                size_bytes=plan.size_bytes,
                content_hash=plan.content_hash,
            )
    refreshed = control.file_by_id(conn, record.file_id)
    assert refreshed is not None
    target = LoadTarget(record.file_id, str(path), settings.results_schema, table, columns)
    return PreparedLoad(refreshed, target, chunks)


def _check_readable(settings: Settings, path: Path) -> None:
    if not path.is_file():
        raise BadInputError(f"the file {path} is gone; was it moved or deleted?")
    size = path.stat().st_size
    if size > settings.max_upload_bytes:
        raise BadInputError(
            f"the file is {size / 2**20:.1f} MiB, over MAX_UPLOAD_MB={settings.max_upload_mb}; "
            "split it or raise the limit"
        )


def _sample(path: Path, chunks: list[ChunkPlan]) -> bytes:
    """Whole records from the start of the file and of chunks spread through it."""
    step = max(1, len(chunks) // SAMPLE_CHUNKS)
    parts = []
    for position, chunk in enumerate(chunks[::step]):
        limit = SAMPLE_BYTES_FIRST_CHUNK if position == 0 else SAMPLE_BYTES_PER_CHUNK
        head = read_chunk_bytes(path, _prefix(chunk, limit))
        parts.append(head if chunk.byte_count <= limit else whole_records(head))
    return b"".join(part if part.endswith(b"\n") else part + b"\n" for part in parts if part)


def _prefix(chunk: ChunkPlan, limit: int) -> ChunkPlan:
    return ChunkPlan(
        chunk.index,
        chunk.byte_start,
        min(chunk.byte_end, chunk.byte_start + limit),
        chunk.first_line,
        0,
    )


def settle_file(settings: Settings, file_id: int) -> FileRecord:
    """Recount the file; once completed, move it out of the inbox (or delete it, if so set)."""
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        with conn.transaction():
            control.refresh_file(conn, file_id)
        record = control.file_by_id(conn, file_id)
        assert record is not None
        if record.status == "completed":
            _retire(settings, conn, record)
            record = control.file_by_id(conn, file_id) or record
    return record


def _retire(settings: Settings, conn: psycopg.Connection, record: FileRecord) -> None:
    path = Path(record.path)
    inbox = settings.inbox.resolve()
    if not path.exists() or not path.resolve().is_relative_to(inbox):
        return  # a file loaded from elsewhere (`granula ingest PATH`) stays where it is
    if settings.delete_file_on_complete:
        path.unlink()
        return
    destination = settings.processed_dir / path.resolve().relative_to(inbox)
    destination = destination.with_name(f"{record.file_id}-{destination.name}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, destination)
    control.move_file(conn, record.file_id, str(destination))
