"""The API application: its settings, its routes, and how refusals become answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from granula_pipeline.api.routes import OnUpload, router
from granula_pipeline.lib.db.migrate import ensure_migrated
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.settings import Settings

DESCRIPTION = """
Granula's HTTP API, with the contract of the service it replaces: upload a CSV file, follow its
status, page through its loaded rows. Uploaded files go into the inbox and are loaded by the
`ingest_file` job like any other file there.
"""


def create_app(settings: Settings, *, on_upload: OnUpload | None = None) -> FastAPI:
    """The API over these settings; `on_upload` is called with each file once registered."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(ensure_migrated, settings)
        settings.inbox.mkdir(parents=True, exist_ok=True)
        yield

    app = FastAPI(title="Granula", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.on_upload = on_upload
    app.include_router(router)
    app.add_exception_handler(BadInputError, _refused)
    return app


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)
