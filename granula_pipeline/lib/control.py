"""The control tables: what Granula knows of each file and chunk, kept live as chunks commit."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from granula_pipeline.lib.chunk_parsing import Rejected, storable
from granula_pipeline.lib.planning import ChunkPlan

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


def planned_chunks(
    conn: psycopg.Connection, file_id: int, *, statuses: tuple[str, ...] | None = None
) -> list[ChunkPlan]:
    """The file's chunk plan, or the part of it whose chunks are in one of `statuses`."""
    rows = conn.execute(
        """
        SELECT chunk_index, byte_start, byte_end, first_line, planned_rows
        FROM granula.chunks
        WHERE file_id = %s AND (%s::text[] IS NULL OR status = ANY(%s::text[]))
        ORDER BY chunk_index
        """,
        (file_id, list(statuses) if statuses else None, list(statuses) if statuses else None),
    ).fetchall()
    return [ChunkPlan(*row) for row in rows]


def record_plan(
    conn: psycopg.Connection,
    file_id: int,
    chunks: list[ChunkPlan],
    *,
    table_name: str,
    size_bytes: int,
    content_hash: str,
    encoding: str,
    max_rejected_percent: float,
    columns: list[dict[str, str]],
) -> None:
    """Store the chunk plan and the file's expected row count, in the caller's transaction."""
    with conn.cursor() as cursor:
        cursor.executemany(
            """
            INSERT INTO granula.chunks
                (file_id, chunk_index, byte_start, byte_end, first_line, planned_rows)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (file_id, chunk_index) DO NOTHING
            """,
            [
                (file_id, c.index, c.byte_start, c.byte_end, c.first_line, c.planned_rows)
                for c in chunks
            ],
        )
    conn.execute(
        """
        UPDATE granula.files
        SET total_chunks = %s, total_rows = %s, table_name = %s, size_bytes = %s,
            content_hash = %s, encoding = %s, max_rejected_percent = %s, columns = %s,
            updated_at = now()
        WHERE file_id = %s
        """,
        (
            len(chunks),
            sum(c.planned_rows for c in chunks),
            table_name,
            size_bytes,
            content_hash,
            encoding,
            max_rejected_percent,
            Jsonb(columns),
            file_id,
        ),
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


def mark_chunk_started(conn: psycopg.Connection, file_id: int, chunk_index: int) -> str:
    """Flag a chunk as processing (committed at once, so progress is visible); return its status."""
    row = conn.execute(
        """
        UPDATE granula.chunks
        SET status = CASE WHEN status = 'loaded' THEN status ELSE 'processing' END,
            attempts = attempts + CASE WHEN status = 'loaded' THEN 0 ELSE 1 END,
            started_at = now(), updated_at = now()
        WHERE file_id = %s AND chunk_index = %s
        RETURNING status
        """,
        (file_id, chunk_index),
    ).fetchone()
    if row is None:
        raise LookupError(f"chunk {chunk_index} of file {file_id} was never planned")
    return str(row[0])


def lock_chunk(conn: psycopg.Connection, file_id: int, chunk_index: int) -> tuple[str, str]:
    """Lock a chunk's row for this transaction; return its status and where the file is now."""
    row = conn.execute(
        """
        SELECT c.status, f.path FROM granula.chunks AS c JOIN granula.files AS f USING (file_id)
        WHERE c.file_id = %s AND c.chunk_index = %s
        FOR UPDATE OF c
        """,
        (file_id, chunk_index),
    ).fetchone()
    if row is None:
        raise LookupError(f"chunk {chunk_index} of file {file_id} was never planned")
    return str(row[0]), str(row[1])


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


def finish_chunk(
    conn: psycopg.Connection, file_id: int, chunk_index: int, *, row_count: int, rejected: int
) -> None:
    """Mark a chunk loaded, in the transaction that wrote its rows; refresh the file's counts."""
    conn.execute(
        """
        UPDATE granula.chunks
        SET status = 'loaded', row_count = %s, rejected_rows = %s, error_message = NULL,
            finished_at = now(), updated_at = now()
        WHERE file_id = %s AND chunk_index = %s
        """,
        (row_count, rejected, file_id, chunk_index),
    )
    refresh_file(conn, file_id)


def quarantine(
    conn: psycopg.Connection, file_id: int, chunk_index: int, rejected: list[Rejected]
) -> None:
    """Set rows aside with their line and reason, in the chunk's own transaction."""
    if not rejected:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            """
            INSERT INTO granula.rejected_rows (file_id, chunk_index, line_number, raw_text, reason)
            VALUES (%s, %s, %s, %s, %s)
            """,
            [(file_id, chunk_index, r.line, storable(r.raw_text), r.reason) for r in rejected],
        )


def fail_chunk(conn: psycopg.Connection, file_id: int, chunk_index: int, error: str) -> None:
    conn.execute(
        """
        UPDATE granula.chunks
        SET status = 'failed', error_message = %s, finished_at = now(), updated_at = now()
        WHERE file_id = %s AND chunk_index = %s AND status <> 'loaded'
        """,
        (error, file_id, chunk_index),
    )
    refresh_file(conn, file_id)


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
