"""File formats: each file's format, compression and delimiter; Parquet chunks as row ranges.

Revision ID: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE granula.files
            ADD COLUMN format text NOT NULL DEFAULT 'csv'
                CHECK (format IN ('csv', 'ndjson', 'parquet')),
            ADD COLUMN compression text CHECK (compression IN ('gzip')),
            ADD COLUMN delimiter text NOT NULL DEFAULT ','
        """
    )
    op.execute(
        "COMMENT ON COLUMN granula.files.format IS 'How the file is read: csv, ndjson or parquet.'"
    )
    op.execute(
        "COMMENT ON COLUMN granula.files.compression IS "
        "'gzip: chunk byte ranges are offsets in the decompressed stream.'"
    )
    op.execute(
        "COMMENT ON COLUMN granula.files.delimiter IS "
        "'The CSV field delimiter, kept so a retry reads the file as its plan did.'"
    )
    op.execute(
        """
        ALTER TABLE granula.chunks
            ADD COLUMN row_start bigint,
            ADD COLUMN row_group_start integer,
            ADD COLUMN row_group_end integer
        """
    )
    op.execute(
        "COMMENT ON COLUMN granula.chunks.row_start IS "
        "'Parquet only: offset of the chunk''s first row (first_line is row_start + 1).'"
    )
    op.execute(
        "COMMENT ON COLUMN granula.chunks.row_group_start IS "
        "'Parquet only: the chunk is the row groups [row_group_start, row_group_end).'"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE granula.chunks DROP COLUMN row_start, DROP COLUMN row_group_start, "
        "DROP COLUMN row_group_end"
    )
    op.execute(
        "ALTER TABLE granula.files DROP COLUMN format, DROP COLUMN compression, "
        "DROP COLUMN delimiter"
    )
