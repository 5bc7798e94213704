"""A CSV file's dialect as its plan read it: delimiter, quote, escape, record terminator, header
rows, preamble lines skipped (kept as written), a second table not loaded.

Revision ID: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE granula.files ADD COLUMN dialect jsonb")
    op.execute(
        "COMMENT ON COLUMN granula.files.dialect IS "
        "'CSV only: how the file is written (delimiter, quote, escape, terminator, header_rows, "
        "skip_lines, preamble, second_table_line, header_fix, copyable), sniffed or set by a "
        ".granula-dialect.json; a retry reads the file as its plan did.'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE granula.files DROP COLUMN dialect")
