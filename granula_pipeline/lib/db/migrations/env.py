"""Alembic environment: runs Granula's migrations under an advisory lock, one process at a time."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

CONTROL_SCHEMA = "granula"
MIGRATION_LOCK_ID = 7_461_201  # arbitrary, fixed: serialises concurrent start-ups


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by granula_pipeline.lib.db.upgrade"
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {CONTROL_SCHEMA}"))
        connection.commit()
        try:
            context.configure(
                connection=connection,
                version_table_schema=CONTROL_SCHEMA,
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
    engine.dispose()


run_migrations_online()
