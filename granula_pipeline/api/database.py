"""The API's connections: a pool, a statement timeout, and queries cancelled when the client goes.

Every query runs in a worker thread on a pooled connection while the request's task watches the
client: if it disconnects, the query is cancelled in the server at once rather than left running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import psycopg
from fastapi import HTTPException, Request
from psycopg_pool import ConnectionPool, PoolTimeout

from granula_pipeline.lib.db import CONNECT_TIMEOUT_SECONDS
from granula_pipeline.settings import Settings

APPLICATION_NAME = "granula-api"
DISCONNECT_POLL_SECONDS = 0.2
T = TypeVar("T")


def open_pool(settings: Settings) -> ConnectionPool:
    timeout_ms = int(settings.api_statement_timeout_seconds * 1000)
    pool = ConnectionPool(
        settings.psycopg_conninfo,
        min_size=1,
        max_size=settings.api_pool_size,
        timeout=settings.api_pool_wait_seconds,
        kwargs={
            "autocommit": True,
            "application_name": APPLICATION_NAME,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "options": f"-c statement_timeout={timeout_ms}",
        },
        open=False,
        name="granula-api",
    )
    pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
    return pool


class ClientGone(Exception):
    """The client disconnected before its answer was ready; the query was cancelled."""


async def in_database(request: Request, work: Callable[[psycopg.Connection], T]) -> T:
    """`work(conn)` on a pooled connection in a thread, cancelled if the client disconnects.

    The client is watched on requests without a body only: watching reads the request's messages,
    and an upload's body must reach its parser untouched.
    """
    watch = request.method in ("GET", "HEAD")
    pool: ConnectionPool = request.app.state.pool
    # The connection while `work` runs on it. A cancelled connection is closed, never handed back
    # to the pool: a cancel that reached the server late must not stop another request's query.
    running: list[psycopg.Connection] = []
    cancelled: list[bool] = []
    lock = threading.Lock()

    def job() -> T:
        with pool.connection() as conn:
            with lock:
                running.append(conn)
            try:
                return work(conn)
            finally:
                with lock:
                    running.clear()
                    if cancelled:
                        conn.close()  # the pool drops it and opens another

    def cancel() -> None:
        with lock:
            for conn in running:
                cancelled.append(True)
                conn.cancel_safe(timeout=5)

    outcome: list[T] = []
    failure: list[BaseException] = []
    gone = False

    async def query() -> None:
        try:
            outcome.append(await anyio.to_thread.run_sync(job))
        except Exception as exc:
            failure.append(exc)
        group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(query)
        while watch:
            await anyio.sleep(DISCONNECT_POLL_SECONDS)
            if await request.is_disconnected():
                gone = True
                await anyio.to_thread.run_sync(cancel)
                break
    if failure:
        _raise(failure[0], gone=gone)
    if not outcome:
        raise ClientGone
    return outcome[0]


def _raise(exc: BaseException, *, gone: bool) -> None:
    if isinstance(exc, PoolTimeout):
        raise HTTPException(503, "the database is busy; try again in a moment") from exc
    if isinstance(exc, psycopg.errors.QueryCanceled):
        if gone:
            raise ClientGone from exc
        raise HTTPException(
            503,
            "the query took longer than API_STATEMENT_TIMEOUT_SECONDS; ask for a smaller page",
        ) from exc
    raise exc
