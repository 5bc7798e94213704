"""Each file's identity as planned: device, inode, size and times, checked whenever it is read.

Revision ID: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Device and inode numbers are unsigned 64-bit: numeric(20), as bigint stops at 2^63.
    op.execute(
        """
        ALTER TABLE granula.files
            ADD COLUMN st_dev numeric(20),
            ADD COLUMN st_ino numeric(20),
            ADD COLUMN st_size bigint,
            ADD COLUMN st_mtime_ns bigint,
            ADD COLUMN st_ctime_ns bigint
        """
    )
    op.execute(
        "COMMENT ON COLUMN granula.files.st_ino IS "
        "'With st_dev, st_size, st_mtime_ns and st_ctime_ns: the file as it was planned (fstat of "
        "the descriptor the plan read). Each chunk, and the move to processed/, checks the file "
        "is still that; NULL for files planned before Granula recorded it, or not planned.'"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE granula.files DROP COLUMN st_dev, DROP COLUMN st_ino, DROP COLUMN st_size, "
        "DROP COLUMN st_mtime_ns, DROP COLUMN st_ctime_ns"
    )
