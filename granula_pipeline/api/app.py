"""The API application: its settings, its routes, and how refusals become answers."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from granula_pipeline.api.database import ClientGone, open_pool
from granula_pipeline.api.routes import OnUpload, router
from granula_pipeline.api.transport import (
    BodyLimit,
    BodyTooLarge,
    SameOriginWrites,
    allowed_hosts,
    too_large_detail,
)
from granula_pipeline.lib.db.migrate import ensure_migrated
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.settings import Settings

DESCRIPTION = """
Granula's HTTP API, with the contract of the service it replaces: upload a CSV file, follow its
status, page through its loaded rows. Uploaded files go into the inbox and are loaded by the
`ingest_file` job like any other file there.

Send `Authorization: Bearer <token>` with a key from `granula keys create`: `upload` scope to
upload, `read` to ask for a status or rows, limited to some datasets if the key was made so.
An API bound to loopback with no key configured answers without one.
"""
STAGING_GLOB = ".*.granula-tmp"
_log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    on_upload: OnUpload | None = None,
    on_start: Callable[[], object] | None = None,
    bind_host: str = "127.0.0.1",
    open_without_keys: bool = True,
) -> FastAPI:
    """The API over these settings; `on_upload` is called with each file once registered, and
    `on_start` once the database is ready. Without a key configured, the API answers everyone
    if `open_without_keys` (a loopback API), else no one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(ensure_migrated, settings)
        settings.inbox.mkdir(parents=True, exist_ok=True)
        await run_in_threadpool(remove_dead_uploads, settings.inbox, settings)
        app.state.pool = await run_in_threadpool(open_pool, settings)
        if on_start is not None:
            await run_in_threadpool(on_start)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_sweep, settings)
                yield
                group.cancel_scope.cancel()
        finally:
            await run_in_threadpool(app.state.pool.close)

    app = FastAPI(title="Granula", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.on_upload = on_upload
    app.state.open_without_keys = open_without_keys
    app.include_router(router)
    app.add_exception_handler(BadInputError, _refused)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(ClientGone, _client_gone)
    # The last added runs first: the Host, then the Origin, then the body's size.
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    app.add_middleware(SameOriginWrites, allowed_origins=settings.api_allowed_origins)
    app.add_middleware(
        TrustedHostMiddleware, allowed_hosts=allowed_hosts(bind_host, settings.api_allowed_hosts)
    )
    return app


def remove_dead_uploads(inbox: Path, settings: Settings) -> list[Path]:
    """Delete the staging files of uploads that died (a killed API): any written to less
    recently than an upload may stay silent, so a live upload of another process is kept."""
    cutoff = time.time() - 2 * settings.api_idle_timeout_seconds
    removed = []
    for staging in inbox.rglob(STAGING_GLOB):
        try:
            if staging.is_file() and staging.stat().st_mtime < cutoff:
                staging.unlink()
                removed.append(staging)
        except FileNotFoundError:
            continue  # finished or removed meanwhile
    if removed:
        _log.info("removed %d staging file(s) of uploads that died", len(removed))
    return removed


async def _sweep(settings: Settings) -> None:
    """Now and then, the dead uploads of a process killed since this one started."""
    while True:
        await anyio.sleep(settings.api_idle_timeout_seconds)
        await run_in_threadpool(remove_dead_uploads, settings.inbox, settings)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


async def _too_large(request: Request, exc: Exception) -> JSONResponse:
    limit = exc.limit if isinstance(exc, BodyTooLarge) else 0
    return JSONResponse(
        {"detail": too_large_detail(limit)}, status_code=413, headers={"Connection": "close"}
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # nginx's "client closed request": no one reads it
