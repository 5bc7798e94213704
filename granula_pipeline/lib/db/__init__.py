"""The database: the one way Granula opens a connection, and its control schema's version."""

from __future__ import annotations

import psycopg

APPLICATION_NAME = "granula"
CONNECT_TIMEOUT_SECONDS = 10


def connect(conninfo: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to Granula's database, named `granula` in `pg_stat_activity`, given up on
    after CONNECT_TIMEOUT_SECONDS if the server does not answer."""
    return psycopg.connect(
        conninfo,
        autocommit=autocommit,
        application_name=APPLICATION_NAME,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )
