"""The migrations build the control schema from nothing, and running them again changes nothing."""

from __future__ import annotations

import psycopg
import pytest

from granula_pipeline.lib.db.migrate import current_revision, latest_revision
from granula_pipeline.lib.db.upgrade import upgrade_database
from granula_pipeline.settings import sqlalchemy_url

CATALOG = """
    SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname = 'granula'
    ORDER BY c.relname, a.attnum
"""


def relations(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'granula' AND c.relkind IN ('r', 'v')"
    ).fetchall()
    return dict(rows)


def test_migrations_create_the_control_tables_in_an_empty_database(empty_database):
    assert current_revision(empty_database) is None
    upgrade_database(sqlalchemy_url(empty_database, "psycopg"))

    assert current_revision(empty_database) == latest_revision()
    with psycopg.connect(empty_database, autocommit=True) as conn:
        found = relations(conn)
        assert found["files"] == "r"
        assert found["chunks"] == "r"
        assert found["rejected_rows"] == "r"
        assert found["file_status"] == "v"
        conn.execute(
            "INSERT INTO granula.files (partition_key, filename, path, dataset) "
            "VALUES ('k', 'a.csv', '/in/a.csv', 'a')"
        )
        status = conn.execute(
            "SELECT filename, status, progress_percent FROM granula.file_status"
        ).fetchall()
        assert status == [("a.csv", "queued", 0.0)]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE granula.files SET status = 'lost'")


def test_running_the_migrations_twice_changes_nothing(empty_database):
    url = sqlalchemy_url(empty_database, "psycopg")
    upgrade_database(url)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO granula.files (partition_key, filename, path, dataset) "
            "VALUES ('k', 'a.csv', '/in/a.csv', 'a')"
        )
        catalog = conn.execute(CATALOG).fetchall()

    upgrade_database(url)

    assert current_revision(empty_database) == latest_revision()
    with psycopg.connect(empty_database, autocommit=True) as conn:
        assert conn.execute(CATALOG).fetchall() == catalog
        assert conn.execute("SELECT partition_key FROM granula.files").fetchall() == [("k",)]
        assert conn.execute("SELECT count(*) FROM granula.alembic_version").fetchone() == (1,)
