"""The one-time schema upgrade per process, cheap when the schema is already current."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg

from granula_pipeline.settings import Settings

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"
_migrated: set[str] = set()
_lock = threading.Lock()


def latest_revision() -> str:
    """Revisions are numbered files (`0001_control_tables.py`): the highest number is the head."""
    return max(path.name.split("_", 1)[0] for path in VERSIONS_DIR.glob("[0-9]*_*.py"))


def current_revision(conninfo: str) -> str | None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('granula.alembic_version')").fetchone()
        if not exists or exists[0] is None:
            return None
        row = conn.execute("SELECT version_num FROM granula.alembic_version").fetchone()
        return row[0] if row else None


def ensure_migrated(settings: Settings) -> None:
    """Run the Alembic migrations once per process and database, only when behind."""
    url = settings.sqlalchemy_url
    with _lock:
        if url in _migrated:
            return
        if current_revision(settings.psycopg_conninfo) != latest_revision():
            from granula_pipeline.lib.db.upgrade import upgrade_database  # Alembic loads slowly

            upgrade_database(url)
        _migrated.add(url)
