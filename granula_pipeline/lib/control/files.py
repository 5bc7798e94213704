"""The control table `granula.files`: what Granula knows of each file, recounted from its chunks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

FINAL_STATUSES = frozenset({"completed", "completed_with_errors", "failed"})


@dataclass
class FileRecord:
    file_id: int
    partition_key: str
    filename: str
    path: str
    dataset: str
    priority: int
    size_bytes: int | None
    content_hash: str | None
    status: str
    total_chunks: int | None
    processed_chunks: int
    failed_chunks: int
    total_rows: int | None
    loaded_rows: int
    rejected_rows: int
    error_message: str | None
    table_name: str | None
    run_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    encoding: str = "UTF8"
    duplicate_of: int | None = None
    max_rejected_percent: float = 10.0
    columns: list[dict[str, str]] | None = None
    format: str = "csv"
    compression: str | None = None
    delimiter: str = ","

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return ((self.finished_at or self.updated_at) - self.started_at).total_seconds()

    @property
    def progress_percent(self) -> float:
        if not self.total_chunks:
            return 100.0 if self.status in FINAL_STATUSES - {"failed"} else 0.0
        return round(100.0 * self.processed_chunks / self.total_chunks, 1)

    def summary(self) -> dict[str, Any]:
        """The JSON a user sees from `granula status` and `granula ingest`."""
        record = asdict(self)
        for key in ("created_at", "started_at", "finished_at", "updated_at"):
            value = record[key]
            record[key] = value.isoformat() if value else None
        record["table"] = record["table_name"]
        record["error"] = record["error_message"]
        record["progress_percent"] = self.progress_percent
        record["duration_seconds"] = self.duration_seconds
        return record


def register_file(
    conn: psycopg.Connection,
    *,
    partition_key: str,
    path: str,
    dataset: str,
    priority: int,
    size_bytes: int | None,
) -> FileRecord:
    """Record a file as queued (idempotent per partition key) and return its row."""
    conn.execute(
        """
        INSERT INTO granula.files (partition_key, filename, path, dataset, priority, size_bytes)
        VALUES (%(key)s, %(filename)s, %(path)s, %(dataset)s, %(priority)s, %(size)s)
        ON CONFLICT (partition_key) DO NOTHING
        """,
        {
            "key": partition_key,
            "filename": path.rsplit("/", 1)[-1],
            "path": path,
            "dataset": dataset,
            "priority": priority,
            "size": size_bytes,
        },
    )
    record = file_by_key(conn, partition_key)
    assert record is not None
    return record


def file_by_key(conn: psycopg.Connection, partition_key: str) -> FileRecord | None:
    cursor = conn.cursor(row_factory=class_row(FileRecord))
    return cursor.execute(
        "SELECT * FROM granula.files WHERE partition_key = %s", (partition_key,)
    ).fetchone()


def file_by_id(conn: psycopg.Connection, file_id: int) -> FileRecord | None:
    cursor = conn.cursor(row_factory=class_row(FileRecord))
    return cursor.execute("SELECT * FROM granula.files WHERE file_id = %s", (file_id,)).fetchone()


def start_file(conn: psycopg.Connection, file_id: int, run_id: str) -> None:
    conn.execute(
        """
        UPDATE granula.files
        SET status = 'processing', run_id = %s, started_at = now(),
            finished_at = NULL, error_message = NULL, updated_at = now()
        WHERE file_id = %s
        """,
        (run_id, file_id),
    )


def mark_duplicate(
    conn: psycopg.Connection, file_id: int, original: int, content_hash: str
) -> None:
    """The same content was loaded before into the dataset: record that, load nothing."""
    conn.execute(
        """
        UPDATE granula.files
        SET status = 'completed', duplicate_of = %(original)s, content_hash = %(hash)s,
            total_chunks = 0, total_rows = 0, finished_at = now(), updated_at = now(),
            error_message = format('not loaded: same content as file %%s, loaded already; '
                                   'use `granula ingest --force` to load it again', %(original)s)
        WHERE file_id = %(file_id)s
        """,
        {"original": original, "hash": content_hash, "file_id": file_id},
    )


def reopen_file(conn: psycopg.Connection, file_id: int) -> None:
    """Make a file's unfinished chunks loadable again (after a failure or a killed run)."""
    conn.execute(
        """
        UPDATE granula.chunks SET status = 'pending', error_message = NULL, updated_at = now()
        WHERE file_id = %s AND status IN ('failed', 'processing')
        """,
        (file_id,),
    )
    conn.execute(
        """
        UPDATE granula.files SET status = 'queued', failed_chunks = 0, finished_at = NULL,
               error_message = NULL, updated_at = now()
        WHERE file_id = %s AND status <> 'completed'
        """,
        (file_id,),
    )


def refresh_file(conn: psycopg.Connection, file_id: int) -> None:
    """Recount the file from its chunks; once every chunk has ended, settle its final status."""
    # Lock first, in its own statement: under READ COMMITTED the UPDATE below then takes a fresh
    # snapshot and counts every chunk committed by concurrent loaders before us.
    conn.execute("SELECT 1 FROM granula.files WHERE file_id = %s FOR UPDATE", (file_id,))
    conn.execute(
        """
        WITH counts AS (
            SELECT count(*) FILTER (WHERE status = 'loaded') AS processed,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   coalesce(sum(row_count) FILTER (WHERE status = 'loaded'), 0) AS loaded,
                   coalesce(sum(rejected_rows) FILTER (WHERE status = 'loaded'), 0) AS rejected,
                   string_agg(format('chunk %%s (lines from %%s): %%s', chunk_index, first_line,
                                     error_message), E'\n' ORDER BY chunk_index)
                       FILTER (WHERE status = 'failed') AS errors
            FROM granula.chunks WHERE file_id = %(file_id)s
        )
        UPDATE granula.files AS f
        SET processed_chunks = counts.processed,
            failed_chunks = counts.failed,
            loaded_rows = counts.loaded,
            rejected_rows = counts.rejected,
            error_message = CASE
                WHEN counts.failed > 0 THEN counts.errors
                WHEN counts.processed + counts.failed < f.total_chunks THEN f.error_message
                WHEN counts.rejected * 100.0 > f.max_rejected_percent * f.total_rows THEN format(
                    '%%s of %%s rows were rejected, over MAX_REJECTED_PERCENT=%%s; '
                    'see granula.rejected_rows for each line and why',
                    counts.rejected, f.total_rows, f.max_rejected_percent)
                WHEN counts.rejected > 0 THEN format(
                    '%%s rows were rejected; see granula.rejected_rows for each line and why',
                    counts.rejected)
                ELSE f.error_message END,
            status = CASE
                WHEN counts.processed + counts.failed < f.total_chunks THEN 'processing'
                WHEN counts.rejected * 100.0 > f.max_rejected_percent * f.total_rows THEN 'failed'
                WHEN counts.failed > 0 OR counts.rejected > 0 THEN 'completed_with_errors'
                ELSE 'completed' END,
            finished_at = CASE WHEN counts.processed + counts.failed < f.total_chunks THEN NULL
                               ELSE now() END,
            updated_at = now()
        FROM counts
        WHERE f.file_id = %(file_id)s AND f.total_chunks IS NOT NULL
        """,
        {"file_id": file_id},
    )


def fail_file(conn: psycopg.Connection, file_id: int, error: str) -> None:
    """The whole file could not be loaded (refused, unreadable): say why."""
    conn.execute(
        """
        UPDATE granula.files
        SET status = 'failed', error_message = %s, finished_at = now(), updated_at = now()
        WHERE file_id = %s
        """,
        (error, file_id),
    )


def move_file(conn: psycopg.Connection, file_id: int, path: str) -> None:
    conn.execute(
        "UPDATE granula.files SET path = %s, updated_at = now() WHERE file_id = %s",
        (path, file_id),
    )


def previous_columns(conn: psycopg.Connection, record: FileRecord) -> list[dict[str, str]] | None:
    """The columns of the dataset's last file loaded before this one, if any."""
    row = conn.execute(
        """
        SELECT columns FROM granula.files
        WHERE dataset = %s AND file_id < %s AND columns IS NOT NULL
              AND status IN ('completed', 'completed_with_errors')
        ORDER BY file_id DESC LIMIT 1
        """,
        (record.dataset, record.file_id),
    ).fetchone()
    return row[0] if row else None
