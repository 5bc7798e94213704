"""`granula.files.queued_at` and `granula.file_status.wait_seconds`: when a file was last queued
(registered, or queued again by a retry or a repeated `granula ingest`), and how long it waited
from then to its load's start (so far, while it still waits), shown beside `duration_seconds`
(which counts from the start only).

Revision ID: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = """
    SELECT file_id, filename, dataset, priority, status, total_chunks, processed_chunks,
           failed_chunks, total_rows, loaded_rows, rejected_rows, table_name, error_message,
           CASE WHEN coalesce(total_chunks, 0) = 0 THEN
                    CASE WHEN status IN ('completed', 'completed_with_errors') THEN 100.0
                         ELSE 0.0 END
                ELSE round(100.0 * processed_chunks / total_chunks, 1) END
               AS progress_percent,
           created_at, started_at, finished_at,
           extract(epoch FROM coalesce(finished_at, now()) - started_at) AS duration_seconds
"""


def upgrade() -> None:
    op.execute("ALTER TABLE granula.files ADD COLUMN queued_at timestamptz")
    op.execute("UPDATE granula.files SET queued_at = created_at")
    op.execute(
        "ALTER TABLE granula.files ALTER COLUMN queued_at SET DEFAULT now(), "
        "ALTER COLUMN queued_at SET NOT NULL"
    )
    op.execute(
        f"""
        CREATE OR REPLACE VIEW granula.file_status AS
        {COLUMNS},
           extract(epoch FROM CASE WHEN started_at >= queued_at THEN started_at ELSE now() END
                              - queued_at) AS wait_seconds
        FROM granula.files
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW granula.file_status")
    op.execute("ALTER TABLE granula.files DROP COLUMN queued_at")
    op.execute(f"CREATE VIEW granula.file_status AS {COLUMNS} FROM granula.files")
    op.execute("GRANT SELECT ON granula.file_status TO granula_reader")
