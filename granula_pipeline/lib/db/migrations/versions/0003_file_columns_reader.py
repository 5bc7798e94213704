"""Each file's columns (to see a dataset's schema change), and the read-only `granula_reader` role.

Revision ID: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE granula.files ADD COLUMN columns jsonb")
    op.execute("COMMENT ON COLUMN granula.files.columns IS 'The file''s columns: name and type.'")
    # Roles belong to the cluster, not the database: create it once, grant in every database.
    op.execute(
        """
        DO $$ BEGIN
            -- Made beforehand where Granula's role may not create roles (deploy/postgres/).
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'granula_reader') THEN
                CREATE ROLE granula_reader NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object THEN NULL;
        END $$
        """
    )
    op.execute("GRANT USAGE ON SCHEMA granula TO granula_reader")
    op.execute("GRANT SELECT ON granula.file_status TO granula_reader")


def downgrade() -> None:
    op.execute("REVOKE ALL ON granula.file_status FROM granula_reader")
    op.execute("REVOKE ALL ON SCHEMA granula FROM granula_reader")
    op.execute("ALTER TABLE granula.files DROP COLUMN columns")
