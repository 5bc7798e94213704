"""The database: the one way Granula opens a connection, and its control schema's version."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import pq

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


@contextlib.contextmanager
def cancelled_if_interrupted(conn: psycopg.Connection) -> Iterator[None]:
    """Cancel, in the server, what `conn` is running when the block is interrupted: by SIGTERM
    as Dagster raises it, a BaseException that psycopg (which cancels on Ctrl-C) lets through.

    Leaving a COPY block waits for the server to end the COPY: without the cancel, a COPY that
    hangs (a lock, a slow trigger) would keep the process from stopping.
    """
    try:
        yield
    except Exception:
        raise
    except BaseException:
        if conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe(timeout=5)
        raise
