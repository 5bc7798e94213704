"""The chunk ledger, `granula.chunks` and `granula.rejected_rows`: each chunk's plan and fate,
written in the same transaction as the chunk's rows."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from granula_pipeline.lib.control.files import refresh_file
from granula_pipeline.lib.formats.csv.parsing import storable
from granula_pipeline.lib.model import ChunkPlan, Rejected, SourceFormat


def planned_chunks(
    conn: psycopg.Connection, file_id: int, *, statuses: tuple[str, ...] | None = None
) -> list[ChunkPlan]:
    """The file's chunk plan, or the part of it whose chunks are in one of `statuses`."""
    rows = conn.execute(
        """
        SELECT chunk_index, byte_start, byte_end, first_line, planned_rows,
               row_start, row_group_start, row_group_end
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
    source: SourceFormat,
    max_rejected_percent: float,
    columns: list[dict[str, str]],
) -> None:
    """Store the chunk plan and the file's expected row count, in the caller's transaction."""
    with conn.cursor() as cursor:
        cursor.executemany(
            """
            INSERT INTO granula.chunks
                (file_id, chunk_index, byte_start, byte_end, first_line, planned_rows,
                 row_start, row_group_start, row_group_end)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (file_id, chunk_index) DO NOTHING
            """,
            [
                (
                    file_id,
                    c.index,
                    c.byte_start,
                    c.byte_end,
                    c.first_line,
                    c.planned_rows,
                    c.row_start,
                    c.row_group_start,
                    c.row_group_end,
                )
                for c in chunks
            ],
        )
    conn.execute(
        """
        UPDATE granula.files
        SET total_chunks = %s, total_rows = %s, table_name = %s, size_bytes = %s,
            content_hash = %s, encoding = %s, max_rejected_percent = %s, columns = %s,
            format = %s, compression = %s, delimiter = %s, updated_at = now()
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
            source.kind,
            source.compression,
            source.delimiter,
            file_id,
        ),
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
    """Lock a chunk's row for this transaction; return its status and where the file is now.

    The lock keeps a second attempt at the chunk waiting, yet lets this attempt's other
    connections record their parts (`record_part`).
    """
    row = conn.execute(
        """
        SELECT c.status, f.path FROM granula.chunks AS c JOIN granula.files AS f USING (file_id)
        WHERE c.file_id = %s AND c.chunk_index = %s
        FOR NO KEY UPDATE OF c
        """,
        (file_id, chunk_index),
    ).fetchone()
    if row is None:
        raise LookupError(f"chunk {chunk_index} of file {file_id} was never planned")
    return str(row[0]), str(row[1])


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
    take_committed_parts(conn, file_id, chunk_index)
    refresh_file(conn, file_id)


def record_part(
    conn: psycopg.Connection, file_id: int, chunk_index: int, *, first_line: int, row_count: int
) -> None:
    """Note, in the transaction that wrote them, rows of a chunk committed ahead of the chunk."""
    conn.execute(
        """
        INSERT INTO granula.chunk_parts (file_id, chunk_index, first_line, row_count)
        VALUES (%s, %s, %s, %s)
        """,
        (file_id, chunk_index, first_line, row_count),
    )


def take_committed_parts(conn: psycopg.Connection, file_id: int, chunk_index: int) -> int:
    """Forget the chunk's committed parts; return how many there were."""
    cursor = conn.execute(
        "DELETE FROM granula.chunk_parts WHERE file_id = %s AND chunk_index = %s",
        (file_id, chunk_index),
    )
    return cursor.rowcount


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


def forget_rejected(conn: psycopg.Connection, file_id: int, chunk_index: int) -> None:
    """Drop the rows an earlier attempt at this chunk set aside, before it is loaded again."""
    conn.execute(
        "DELETE FROM granula.rejected_rows WHERE file_id = %s AND chunk_index = %s",
        (file_id, chunk_index),
    )
