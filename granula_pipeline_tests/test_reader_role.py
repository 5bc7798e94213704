"""`granula_reader`, the BI role: reads loaded tables and the status view, nothing else."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from dagster_postgres import PostgresRunStorage
from sqlalchemy.engine import make_url

from granula_pipeline.lib.db.migrate import ensure_migrated
from granula_pipeline.runs import ingest
from granula_pipeline.settings import Settings
from granula_pipeline_tests.factories import write_orders

pytestmark = pytest.mark.slow


@pytest.fixture
def reader(settings):
    """A session acting as granula_reader."""
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        conn.execute("SET ROLE granula_reader")
        yield conn


def test_reader_selects_loaded_rows_and_status(instance, granula, settings, reader):
    record, _ = ingest(instance, granula, write_orders(settings.inbox / "bi.csv", 12))
    assert reader.execute("SELECT count(*) FROM datasets.bi").fetchone() == (12,)
    status = reader.execute(
        "SELECT status, progress_percent FROM granula.file_status WHERE file_id = %s",
        (record.file_id,),
    ).fetchone()
    assert status == ("completed", 100.0)


FORBIDDEN = [
    "INSERT INTO datasets.bi_write (id) VALUES (1)",
    "UPDATE datasets.bi_write SET id = 2",
    "DELETE FROM datasets.bi_write",
    "DROP TABLE datasets.bi_write",
    "SELECT * FROM granula.files",
    "SELECT * FROM granula.rejected_rows",
    "CREATE TABLE datasets.mine (id int)",
]


def test_reader_cannot_write_or_read_control_tables(instance, granula, settings, reader):
    ingest(instance, granula, write_orders(settings.inbox / "bi_write.csv", 1))
    for statement in FORBIDDEN:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(statement)


def test_reader_cannot_read_dagster_storage(settings, reader):
    storage_url = settings.dagster_storage_url
    PostgresRunStorage.create_clean_storage(storage_url)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("SELECT * FROM public.runs")


def test_reader_cannot_create_temporary_tables(settings, reader):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("CREATE TEMPORARY TABLE mine (id int)")


@pytest.fixture
def owned_cluster(database_url):
    """Granula as deployed: a role that is no superuser owns Granula's database and another one;
    a BI login is a member of granula_reader. Everything is dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    owner, login = f"granula_owner_{suffix}", f"bi_login_{suffix}"
    granula_db, other_db = f"granula_owned_{suffix}", f"other_owned_{suffix}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'granula_reader') "
            "THEN CREATE ROLE granula_reader NOLOGIN; END IF; END $$"
        )
        admin.execute(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER NOCREATEROLE')
        admin.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE granula_reader')
        for name in (granula_db, other_db):
            admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    base = make_url(database_url)
    urls = {
        (role, db): base.set(username=role, database=db).render_as_string(hide_password=False)
        for role in (owner, login)
        for db in (granula_db, other_db)
    }
    try:
        yield owner, login, granula_db, other_db, urls
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            for name in (granula_db, other_db):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{login}"')
            admin.execute(f'DROP ROLE IF EXISTS "{owner}"')


def test_migrating_as_a_plain_owner_keeps_the_reader_to_granulas_database(owned_cluster):
    owner, login, granula_db, other_db, urls = owned_cluster
    ensure_migrated(Settings(database_url=urls[owner, granula_db]))

    with psycopg.connect(urls[login, granula_db], autocommit=True) as bi:
        assert bi.execute("SELECT count(*) FROM granula.file_status").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("CREATE TEMPORARY TABLE mine (id int)")
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(urls[login, other_db]).close()
    # The owner itself keeps what it owns.
    psycopg.connect(urls[owner, other_db]).close()
