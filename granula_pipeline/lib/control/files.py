"""The control table `granula.files`: what Granula knows of each file, recounted from its chunks."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from granula_pipeline.lib.model import LOADED_STATUSES_SQL, FileIdentity, FileRecord, FileStatus


def register_file(
    conn: psycopg.Connection,
    *,
    partition_key: str,
    path: str,
    dataset: str,
    priority: int,
    size_bytes: int | None,
) -> FileRecord:
    """Record a file as queued (idempotent per partition key: a file that ended is queued again)
    and return its row."""
    conn.execute(
        """
        INSERT INTO granula.files (partition_key, filename, path, dataset, priority, size_bytes)
        VALUES (%(key)s, %(filename)s, %(path)s, %(dataset)s, %(priority)s, %(size)s)
        ON CONFLICT (partition_key) DO UPDATE SET queued_at = now()
            WHERE granula.files.finished_at IS NOT NULL  -- ended, and asked for again
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


# A file's row with the progress, duration and wait that the `granula.file_status` view computes.
SELECT_FILES = """
    SELECT f.*, s.progress_percent, s.duration_seconds, s.wait_seconds
    FROM granula.files AS f JOIN granula.file_status AS s USING (file_id)
"""


def files_where(
    conn: psycopg.Connection, condition: str, params: tuple[object, ...]
) -> list[FileRecord]:
    """The files that `condition` (SQL over the alias `f`) selects, in file_id order."""
    cursor = conn.cursor(row_factory=class_row(FileRecord))
    query = f"{SELECT_FILES} WHERE {condition} ORDER BY f.file_id"
    return cursor.execute(query, params).fetchall()


def file_by_key(conn: psycopg.Connection, partition_key: str) -> FileRecord | None:
    return next(iter(files_where(conn, "f.partition_key = %s", (partition_key,))), None)


def files_by_keys(conn: psycopg.Connection, partition_keys: list[str]) -> list[FileRecord]:
    return files_where(conn, "f.partition_key = ANY(%s)", (partition_keys,))


def file_by_id(conn: psycopg.Connection, file_id: int) -> FileRecord | None:
    return next(iter(files_where(conn, "f.file_id = %s", (file_id,))), None)


def start_file(conn: psycopg.Connection, file_id: int, run_id: str) -> None:
    conn.execute(
        """
        UPDATE granula.files
        SET status = %s, run_id = %s, started_at = now(),
            finished_at = NULL, error_message = NULL, updated_at = now()
        WHERE file_id = %s
        """,
        (FileStatus.PROCESSING.value, run_id, file_id),
    )


def mark_duplicate(
    conn: psycopg.Connection, file_id: int, original: int, content_hash: str
) -> None:
    """The same content was loaded before into the dataset: record that, load nothing."""
    conn.execute(
        """
        UPDATE granula.files
        SET status = %(completed)s, duplicate_of = %(original)s, content_hash = %(hash)s,
            total_chunks = 0, total_rows = 0, finished_at = now(), updated_at = now(),
            error_message = format('not loaded: same content as file %%s, loaded already; '
                                   'use `granula ingest --force` to load it again', %(original)s)
        WHERE file_id = %(file_id)s
        """,
        {
            "original": original,
            "hash": content_hash,
            "file_id": file_id,
            "completed": FileStatus.COMPLETED.value,
        },
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
        UPDATE granula.files SET status = %s, failed_chunks = 0, finished_at = NULL,
               error_message = NULL, queued_at = now(), updated_at = now()
        WHERE file_id = %s AND status <> %s
        """,
        (FileStatus.QUEUED.value, file_id, FileStatus.COMPLETED.value),
    )


def refresh_file(conn: psycopg.Connection, file_id: int, *, final: bool = False) -> None:
    """Recount the file from its chunks; once every chunk has ended, settle a failed outcome.

    A file every chunk of which loaded stays `processing` until `final` (what `settle_file` asks
    once it has checked and moved the file): `completed` is never seen while the file is still in
    the inbox. A failed outcome is written as soon as it is known, for whoever handles it. The
    file's `finished_at` is set once, when its status first becomes final, at that moment (not at
    the start of the chunk's transaction).
    """
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
        ), first_rejected AS (
            SELECT coalesce(': ' || string_agg(format('line %%s: %%s', line_number, reason), '; '
                                               ORDER BY line_number), '') AS lines
            FROM (SELECT line_number, reason FROM granula.rejected_rows
                  WHERE file_id = %(file_id)s ORDER BY line_number LIMIT 3) AS firsts
        ), outcome AS (
            SELECT CASE
                WHEN counts.processed + counts.failed < f.total_chunks THEN %(processing)s
                WHEN counts.rejected * 100.0 > f.max_rejected_percent * f.total_rows THEN %(failed)s
                WHEN counts.failed > 0 THEN %(completed_with_errors)s
                WHEN NOT %(final)s THEN %(processing)s
                WHEN counts.rejected > 0 THEN %(completed_with_errors)s
                ELSE %(completed)s END AS status
            FROM granula.files AS f, counts WHERE f.file_id = %(file_id)s
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
                    '%%s of %%s rows were rejected, over MAX_REJECTED_PERCENT=%%s%%s; '
                    'see granula.rejected_rows for each line and why',
                    counts.rejected, f.total_rows, f.max_rejected_percent, first_rejected.lines)
                WHEN counts.rejected > 0 THEN format(
                    '%%s rows were rejected%%s; see granula.rejected_rows for each line and why',
                    counts.rejected, first_rejected.lines)
                ELSE f.error_message END,
            status = outcome.status,
            finished_at = CASE WHEN outcome.status = %(processing)s THEN NULL
                               ELSE coalesce(f.finished_at, clock_timestamp()) END,
            updated_at = now()
        FROM counts, first_rejected, outcome
        WHERE f.file_id = %(file_id)s AND f.total_chunks IS NOT NULL
        """,
        {
            "file_id": file_id,
            "final": final,
            **{status.name.lower(): status.value for status in FileStatus},
        },
    )


def record_dialect(conn: psycopg.Connection, file_id: int, dialect: dict[str, object]) -> None:
    """Remember how the CSV file is written (`Dialect.facts()`), as its plan read it."""
    conn.execute(
        "UPDATE granula.files SET dialect = %s, updated_at = now() WHERE file_id = %s",
        (Jsonb(dialect), file_id),
    )


def fail_file(conn: psycopg.Connection, file_id: int, error: str) -> None:
    """The whole file could not be loaded (refused, unreadable): say why."""
    conn.execute(
        """
        UPDATE granula.files
        SET status = %s, error_message = %s, finished_at = now(), updated_at = now()
        WHERE file_id = %s
        """,
        (FileStatus.FAILED.value, error, file_id),
    )


def record_identity(conn: psycopg.Connection, file_id: int, identity: FileIdentity) -> None:
    """Remember the file as planned, to check that it still is whenever it is read or moved."""
    conn.execute(
        """
        UPDATE granula.files
        SET st_dev = %s, st_ino = %s, st_size = %s, st_mtime_ns = %s, st_ctime_ns = %s,
            updated_at = now()
        WHERE file_id = %s
        """,
        (
            identity.device,
            identity.inode,
            identity.size,
            identity.mtime_ns,
            identity.ctime_ns,
            file_id,
        ),
    )


def planned_identity(conn: psycopg.Connection, file_id: int) -> FileIdentity | None:
    """The file as planned (kept current across our own moves); None if not recorded."""
    row = conn.execute(
        "SELECT st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns FROM granula.files "
        "WHERE file_id = %s",
        (file_id,),
    ).fetchone()
    return FileIdentity.stored(*row) if row else None


def forget_load(conn: psycopg.Connection, file_id: int) -> None:
    """Undo a file's load, in the caller's transaction: the rows it loaded, those set aside, its
    chunk plan, its content hash and identity. For a file that is no longer what was planned;
    it is planned afresh when it is loaded again."""
    row = conn.execute(
        "SELECT table_name, to_regclass(table_name) FROM granula.files "
        "WHERE file_id = %s FOR UPDATE",
        (file_id,),
    ).fetchone()
    if row is not None and row[1] is not None:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE _granula_file_id = %s").format(
                sql.Identifier(*str(row[0]).split(".", 1))
            ),
            (file_id,),
        )
    conn.execute("DELETE FROM granula.rejected_rows WHERE file_id = %s", (file_id,))
    conn.execute("DELETE FROM granula.chunks WHERE file_id = %s", (file_id,))  # and chunk_parts
    conn.execute(
        """
        UPDATE granula.files
        SET total_chunks = NULL, total_rows = NULL, processed_chunks = 0, failed_chunks = 0,
            loaded_rows = 0, rejected_rows = 0, content_hash = NULL, st_dev = NULL,
            st_ino = NULL, st_size = NULL, st_mtime_ns = NULL, st_ctime_ns = NULL,
            updated_at = now()
        WHERE file_id = %s
        """,
        (file_id,),
    )


def discard_load(conn: psycopg.Connection, file_id: int, error: str) -> None:
    """The file changed, or went, while it was loading: keep nothing of it and say why."""
    forget_load(conn, file_id)
    fail_file(conn, file_id, error)


def move_file(conn: psycopg.Connection, file_id: int, path: str) -> None:
    conn.execute(
        "UPDATE granula.files SET path = %s, updated_at = now() WHERE file_id = %s",
        (path, file_id),
    )


def previous_columns(conn: psycopg.Connection, record: FileRecord) -> list[dict[str, str]] | None:
    """The columns of the dataset's last file loaded before this one, if any."""
    row = conn.execute(
        f"""
        SELECT columns FROM granula.files
        WHERE dataset = %s AND file_id < %s AND columns IS NOT NULL
              AND status IN ({LOADED_STATUSES_SQL})
        ORDER BY file_id DESC LIMIT 1
        """,
        (record.dataset, record.file_id),
    ).fetchone()
    return row[0] if row else None


def loaded_copy(conn: psycopg.Connection, record: FileRecord, content_hash: str) -> int | None:
    """The first file of the same dataset whose same content is loaded already, if any."""
    row = conn.execute(
        f"""
        SELECT file_id FROM granula.files
        WHERE dataset = %s AND content_hash = %s AND file_id <> %s AND duplicate_of IS NULL
              AND status IN ({LOADED_STATUSES_SQL})
        ORDER BY file_id LIMIT 1
        """,
        (record.dataset, content_hash, record.file_id),
    ).fetchone()
    return int(row[0]) if row else None
