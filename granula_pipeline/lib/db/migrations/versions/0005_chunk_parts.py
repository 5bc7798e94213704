"""`granula.chunk_parts`: a chunk loaded over several connections commits part by part.

Revision ID: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE granula.chunk_parts (
            file_id      bigint NOT NULL,
            chunk_index  integer NOT NULL,
            first_line   bigint NOT NULL,
            row_count    bigint NOT NULL,
            committed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (file_id, chunk_index, first_line),
            FOREIGN KEY (file_id, chunk_index)
                REFERENCES granula.chunks (file_id, chunk_index) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE granula.chunk_parts IS "
        "'Parts of a chunk committed ahead of the chunk itself. A row here outlives its chunk''s "
        "load only if that load was cut short between commits: the next attempt removes the "
        "part''s rows before loading the chunk again.'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE granula.chunk_parts")
