"""Load a file through the real job with small chunks, and read back what landed where."""

from __future__ import annotations

from pathlib import Path

import psycopg
from dagster import DagsterInstance

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.lib.load.tables import ROW_COLUMN
from granula_pipeline.lib.model import FileRecord
from granula_pipeline.runs import ingest
from granula_pipeline.settings import Settings


def load(
    instance: DagsterInstance, settings: Settings, path: Path, *, chunk_size: int = 0
) -> FileRecord:
    """Run `ingest_file` for `path` (chunks of `chunk_size` rows when above 0); its final record."""
    granula = GranulaResource.from_settings(
        settings.model_copy(update={"chunk_size": chunk_size}) if chunk_size else settings
    )
    record, _ = ingest(instance, granula, path, log_level="WARNING")
    return record


def chunks(db: psycopg.Connection, record: FileRecord) -> list[tuple]:
    """(chunk_index, status, planned_rows, row_count) of each of the file's chunks."""
    return db.execute(
        "SELECT chunk_index, status, planned_rows, row_count FROM granula.chunks "
        "WHERE file_id = %s ORDER BY chunk_index",
        (record.file_id,),
    ).fetchall()


def column_types(db: psycopg.Connection, record: FileRecord) -> dict[str, str]:
    """The table's data and lineage columns with their types; not the row-order column that
    results are paged by (ROW_COLUMN), the same in every table."""
    schema, table = (record.table_name or "").split(".")
    return dict(
        db.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s AND column_name <> %s "
            "ORDER BY ordinal_position",
            (schema, table, ROW_COLUMN),
        ).fetchall()
    )


def rejected(db: psycopg.Connection, record: FileRecord) -> list[tuple[int, str]]:
    """(line_number, reason) of each row set aside, in line order."""
    return db.execute(
        "SELECT line_number, reason FROM granula.rejected_rows WHERE file_id = %s "
        "ORDER BY line_number",
        (record.file_id,),
    ).fetchall()


def failed_copy(settings: Settings, record: FileRecord) -> Path:
    [moved] = list(settings.failed_dir.rglob(f"{record.file_id}-*"))
    return moved
