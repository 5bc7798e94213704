"""The old service's endpoints: upload a file into the inbox, ask for its status, read its rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path as FilePath
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from starlette.requests import ClientDisconnect

from granula_pipeline.api.schemas import (
    FileStatus,
    Problem,
    ResultRow,
    ResultsPage,
    Uploaded,
    json_value,
)
from granula_pipeline.api.upload import FILE_FIELD, UploadMissing, UploadReceiver
from granula_pipeline.lib.control.files import file_by_id
from granula_pipeline.lib.control.results import MAX_LIMIT, TableGone, file_results
from granula_pipeline.lib.db import connect
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.inbox.scan import MAX_PRIORITY
from granula_pipeline.lib.inbox.submission import (
    inbox_folder,
    publish,
    register_file,
    staging_path,
    upload_name,
)
from granula_pipeline.lib.model import FileRecord
from granula_pipeline.settings import Settings

MAX_BIGINT = 2**63 - 1
OnUpload = Callable[[FileRecord], object]

router = APIRouter(prefix="/api/v1")


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def connection(request: Request) -> Iterator[psycopg.Connection]:
    """One connection per request, closed when the answer is sent."""
    with connect(settings_of(request).psycopg_conninfo, autocommit=True) as conn:
        yield conn


Connection = Annotated[psycopg.Connection, Depends(connection)]
FileId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="From the upload's answer.")]

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "The file (CSV, TSV, NDJSON, Parquet...), its part's "
                            "Content-Type one of ALLOWED_CONTENT_TYPES, at most MAX_UPLOAD_MB MiB.",
                        }
                    },
                },
                "encoding": {FILE_FIELD: {"contentType": "text/csv"}},
            }
        },
    }
}
UPLOAD_DESCRIPTION = """
Streams the file into the inbox (`inbox/priority-N/NAME`, `inbox/NAME` for priority 0) under a
temporary name, then gives it its real name at once, and registers it as `queued`.

The file is loaded by the inbox sensor of the Dagster daemon that `granula up` starts (within
`SENSOR_INTERVAL_SECONDS` + `SETTLE_SECONDS`), or right away in this process when the API was
started with `granula api --load`. Follow it with `/status/{file_id}`.

Refused with 400: a part Content-Type outside ALLOWED_CONTENT_TYPES, a name whose type (from
its suffix: `.csv`, `.tsv`, `.csv.gz`, `.ndjson`, `.parquet`...) is not accepted or that the
sensor would ignore, an empty file, a file over MAX_UPLOAD_MB (reading stops at the
limit; nothing is kept). 409: a file of that name is still waiting in that inbox folder.
422: no `file` part, or a priority outside 0..10.
"""


@router.post(
    "/upload",
    status_code=201,
    response_model=Uploaded,
    summary="Upload a file into the inbox",
    description=UPLOAD_DESCRIPTION,
    responses={400: {"model": Problem}, 409: {"model": Problem}},
    openapi_extra=UPLOAD_BODY,
)
async def upload(
    request: Request,
    priority: Annotated[
        int, Query(ge=0, le=MAX_PRIORITY, description="0 (default) to 10; higher loads first.")
    ] = 0,
) -> Uploaded:
    settings = settings_of(request)
    folder = inbox_folder(settings.inbox, priority=priority)

    def stage(filename: str, content_type: str) -> tuple[FilePath, FilePath]:
        if content_type not in settings.content_types:
            raise BadInputError(
                f"content type {content_type or '(none)'} is not accepted; "
                f"ALLOWED_CONTENT_TYPES is {','.join(sorted(settings.content_types))}"
            )
        name = upload_name(filename, settings.content_types)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name, staging_path(folder, name)

    receiver = UploadReceiver(
        stage, max_bytes=settings.max_upload_bytes, max_mb=settings.max_upload_mb
    )
    try:
        staged = await receiver.receive(request.headers.get("content-type", ""), request.stream())
    except UploadMissing as exc:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body", FILE_FIELD), "msg": "Field required"}]
        ) from exc
    except ClientDisconnect as exc:
        raise HTTPException(400, "the upload was interrupted; nothing was kept") from exc
    try:
        publish(staged.staging, staged.destination)
    except FileExistsError as exc:
        where = staged.destination.relative_to(settings.inbox).as_posix()
        raise HTTPException(
            409,
            f"{where} is already waiting in the inbox; wait until it is loaded or rename yours",
        ) from exc
    record = await run_in_threadpool(_register, settings, staged.destination)
    on_upload: OnUpload | None = request.app.state.on_upload
    if on_upload is not None:
        on_upload(record)
    return Uploaded.of(record)


def _register(settings: Settings, path: FilePath) -> FileRecord:
    return register_file(settings, path)[0]


@router.get(
    "/status/{file_id}",
    response_model=FileStatus,
    summary="A file's status and progress",
    responses={404: {"model": Problem}},
)
def status(file_id: FileId, conn: Connection) -> FileStatus:
    return FileStatus.of(_record(conn, file_id))


@router.get(
    "/results/{file_id}",
    response_model=ResultsPage,
    summary="A file's loaded rows, a page at a time",
    description="Rows in file order (chunk, then line), numbered from 1 by `id`. "
    f"`limit` is 1..{MAX_LIMIT}; a larger one is refused (422). A file not loaded yet has none; "
    "one whose table was dropped since is 410.",
    responses={404: {"model": Problem}, 410: {"model": Problem}},
)
def results(
    file_id: FileId,
    conn: Connection,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
) -> ResultsPage:
    try:
        page = file_results(conn, _record(conn, file_id), limit=limit, offset=offset)
    except TableGone as exc:
        raise HTTPException(410, str(exc)) from exc
    items = [
        ResultRow(
            id=item["id"],
            chunk_index=item["chunk_index"],
            data={column: json_value(value) for column, value in item["data"].items()},
        )
        for item in page["items"]
    ]
    return ResultsPage(items=items, total=page["total"], limit=limit, offset=offset)


def _record(conn: psycopg.Connection, file_id: int) -> FileRecord:
    record = file_by_id(conn, file_id)
    if record is None:
        raise HTTPException(404, f"no file with id {file_id}")
    return record
