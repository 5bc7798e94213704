"""Quarantine for rows that cannot be loaded; per-file encoding, duplicate and reject limit.

Revision ID: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE granula.rejected_rows (
            file_id     bigint NOT NULL REFERENCES granula.files (file_id) ON DELETE CASCADE,
            chunk_index integer NOT NULL,
            line_number bigint NOT NULL,
            raw_text    text NOT NULL,
            reason      text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (file_id, line_number)
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE granula.rejected_rows IS "
        "'Rows Granula could not load: the line where each starts, its text and why.'"
    )
    op.execute("ALTER TABLE granula.files ADD COLUMN encoding text NOT NULL DEFAULT 'UTF8'")
    op.execute(
        "ALTER TABLE granula.files ADD COLUMN duplicate_of bigint "
        "REFERENCES granula.files (file_id) ON DELETE SET NULL"
    )
    op.execute("ALTER TABLE granula.files ADD COLUMN max_rejected_percent real NOT NULL DEFAULT 10")
    op.execute("CREATE INDEX files_content_hash_idx ON granula.files (dataset, content_hash)")


def downgrade() -> None:
    op.execute("DROP INDEX granula.files_content_hash_idx")
    op.execute("ALTER TABLE granula.files DROP COLUMN max_rejected_percent")
    op.execute("ALTER TABLE granula.files DROP COLUMN duplicate_of")
    op.execute("ALTER TABLE granula.files DROP COLUMN encoding")
    op.execute("DROP TABLE granula.rejected_rows")
