"""The control schema's version: upgraded where Granula starts, checked cheaply elsewhere."""

from __future__ import annotations

import threading
from pathlib import Path

from granula_pipeline.lib.db import connect
from granula_pipeline.settings import Settings

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"
_current: set[str] = set()
_lock = threading.Lock()


class SchemaBehind(RuntimeError):
    """The database's control tables are missing or older than this Granula."""


def latest_revision() -> str:
    """Revisions are numbered files (`0001_control_tables.py`): the highest number is the head."""
    return max(path.name.split("_", 1)[0] for path in VERSIONS_DIR.glob("[0-9]*_*.py"))


def current_revision(conninfo: str) -> str | None:
    with connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('granula.alembic_version')").fetchone()
        if not exists or exists[0] is None:
            return None
        row = conn.execute("SELECT version_num FROM granula.alembic_version").fetchone()
        return row[0] if row else None


def ensure_migrated(settings: Settings) -> None:
    """Apply the migrations this database lacks, once per process and database.

    Called where Granula starts: `granula up` and `migrate`, the commands and the API that write,
    and the Dagster resource when a run or sensor sets it up.
    """
    conninfo = settings.psycopg_conninfo
    with _lock:
        if conninfo in _current:
            return
        if current_revision(conninfo) != latest_revision():
            from granula_pipeline.lib.db.upgrade import upgrade_database  # Alembic loads slowly

            upgrade_database(settings.sqlalchemy_url)
        _current.add(conninfo)


def check_migrated(settings: Settings) -> None:
    """Raise SchemaBehind, saying what to run, unless the control tables are current."""
    conninfo = settings.psycopg_conninfo
    if conninfo in _current:
        return
    found = current_revision(conninfo)
    if found != latest_revision():
        state = "missing" if found is None else f"at revision {found}, {latest_revision()} needed"
        raise SchemaBehind(
            f"Granula's control tables are {state} in this database: run `granula migrate`"
        )
    _current.add(conninfo)
