"""Control tables: one row per file, one per chunk, and the live status view.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

FILE_STATUSES = "'queued','processing','completed','completed_with_errors','failed'"
CHUNK_STATUSES = "'pending','processing','loaded','failed'"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE granula.files (
            file_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            partition_key    text NOT NULL UNIQUE,
            filename         text NOT NULL,
            path             text NOT NULL,
            dataset          text NOT NULL,
            priority         smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 10),
            size_bytes       bigint,
            content_hash     text,
            status           text NOT NULL DEFAULT 'queued' CHECK (status IN ({FILE_STATUSES})),
            total_chunks     integer,
            processed_chunks integer NOT NULL DEFAULT 0,
            failed_chunks    integer NOT NULL DEFAULT 0,
            total_rows       bigint,
            loaded_rows      bigint NOT NULL DEFAULT 0,
            rejected_rows    bigint NOT NULL DEFAULT 0,
            error_message    text,
            table_name       text,
            run_id           text,
            created_at       timestamptz NOT NULL DEFAULT now(),
            started_at       timestamptz,
            finished_at      timestamptz,
            updated_at       timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE granula.chunks (
            file_id       bigint NOT NULL REFERENCES granula.files (file_id) ON DELETE CASCADE,
            chunk_index   integer NOT NULL,
            byte_start    bigint NOT NULL,
            byte_end      bigint NOT NULL,
            first_line    bigint NOT NULL,
            planned_rows  bigint NOT NULL,
            status        text NOT NULL DEFAULT 'pending' CHECK (status IN ({CHUNK_STATUSES})),
            attempts      integer NOT NULL DEFAULT 0,
            row_count     bigint,
            rejected_rows bigint NOT NULL DEFAULT 0,
            error_message text,
            started_at    timestamptz,
            finished_at   timestamptz,
            updated_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (file_id, chunk_index)
        )
        """
    )
    op.execute("CREATE INDEX files_status_idx ON granula.files (status)")
    op.execute(
        """
        CREATE VIEW granula.file_status AS
        SELECT file_id, filename, dataset, priority, status, total_chunks, processed_chunks,
               failed_chunks, total_rows, loaded_rows, rejected_rows, table_name, error_message,
               CASE WHEN coalesce(total_chunks, 0) = 0 THEN
                        CASE WHEN status IN ('completed', 'completed_with_errors') THEN 100.0
                             ELSE 0.0 END
                    ELSE round(100.0 * processed_chunks / total_chunks, 1) END
                   AS progress_percent,
               created_at, started_at, finished_at,
               extract(epoch FROM coalesce(finished_at, now()) - started_at) AS duration_seconds
        FROM granula.files
        """
    )
    op.execute("COMMENT ON TABLE granula.files IS 'One row per file Granula was asked to load.'")
    op.execute("COMMENT ON TABLE granula.chunks IS 'One row per chunk of a file; flips on commit.'")


def downgrade() -> None:
    op.execute("DROP VIEW granula.file_status")
    op.execute("DROP TABLE granula.chunks")
    op.execute("DROP TABLE granula.files")
