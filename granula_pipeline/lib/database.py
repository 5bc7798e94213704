"""Connections to Granula's PostgreSQL, and the one-time schema upgrade per process."""

from __future__ import annotations

import threading

from granula_pipeline.lib.migrate import upgrade_database
from granula_pipeline.settings import Settings

_migrated: set[str] = set()
_lock = threading.Lock()


def ensure_migrated(settings: Settings) -> None:
    """Run the migrations once per process and database (they are a no-op when current)."""
    url = settings.sqlalchemy_url
    with _lock:
        if url not in _migrated:
            upgrade_database(url)
            _migrated.add(url)
