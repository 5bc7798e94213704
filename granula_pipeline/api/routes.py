"""The old service's endpoints: upload a file into the inbox, ask for its status, read its rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Annotated, Any
from uuid import UUID

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.requests import ClientDisconnect

from granula_pipeline.api.database import in_database
from granula_pipeline.api.schemas import (
    FileStatus,
    Problem,
    ResultRow,
    ResultsPage,
    Uploaded,
    json_value,
)
from granula_pipeline.api.security import Caller, Reader, Uploader
from granula_pipeline.api.transport import BodyTooLarge, too_large_detail
from granula_pipeline.api.upload import (
    FILE_FIELD,
    UploadMissing,
    UploadReceiver,
    UploadTooLarge,
    UploadTooSlow,
    paced,
)
from granula_pipeline.lib.control.files import file_by_id, files_where
from granula_pipeline.lib.control.results import MAX_LIMIT, Cursor, TableGone, file_results
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.inbox.scan import MAX_PRIORITY, dataset_from_filename
from granula_pipeline.lib.inbox.submission import (
    inbox_folder,
    publish,
    register_in_inbox,
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


FileId = Annotated[
    str,
    Path(
        pattern=r"^([0-9]{1,19}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
        r"[0-9a-fA-F]{12})$",
        description="The upload's `public_id` (a UUID), or its `file_id`.",
    ),
]

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

Needs a key with the `upload` scope (and, if the key is limited to datasets, the dataset the
file's name gives).

Refused with 400: a part Content-Type outside ALLOWED_CONTENT_TYPES, a name whose type (from
its suffix: `.csv`, `.tsv`, `.csv.gz`, `.ndjson`, `.parquet`...) is not accepted or that the
sensor would ignore, an empty file, a malformed multipart body. 413: a body over
MAX_UPLOAD_MB (and 1 MiB of framing): reading stops at the limit, nothing is kept. 408: an
upload that stalls or trickles (API_IDLE_TIMEOUT_SECONDS, API_MIN_UPLOAD_KIB_PER_SECOND). 409: a
file of that name is still waiting in that inbox folder.
422: no `file` part, or a priority outside 0..10.
"""


@router.post(
    "/upload",
    status_code=201,
    response_model=Uploaded,
    summary="Upload a file into the inbox",
    description=UPLOAD_DESCRIPTION,
    responses={
        400: {"model": Problem},
        401: {"model": Problem},
        403: {"model": Problem},
        408: {"model": Problem},
        409: {"model": Problem},
        413: {"model": Problem},
    },
    openapi_extra=UPLOAD_BODY,
)
async def upload(
    request: Request,
    caller: Uploader,
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
        caller.check_dataset(dataset_from_filename(name))
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name, staging_path(folder, name)

    receiver = UploadReceiver(
        stage, max_bytes=settings.max_upload_bytes, max_mb=settings.max_upload_mb
    )
    body = paced(
        request.stream(),
        idle_seconds=settings.api_idle_timeout_seconds,
        min_bytes_per_second=settings.api_min_upload_kib_per_second * 1024,
    )
    try:
        staged = await receiver.receive(request.headers.get("content-type", ""), body)
    except UploadTooLarge as exc:
        raise HTTPException(413, str(exc), headers={"Connection": "close"}) from exc
    except BodyTooLarge as exc:
        raise HTTPException(
            413, too_large_detail(exc.limit), headers={"Connection": "close"}
        ) from exc
    except UploadTooSlow as exc:
        raise HTTPException(
            408, f"the upload was dropped: {exc}; nothing was kept", headers={"Connection": "close"}
        ) from exc
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
    destination = staged.destination
    record = await in_database(
        request, lambda conn: register_in_inbox(conn, settings.inbox, destination)[0]
    )
    on_upload: OnUpload | None = request.app.state.on_upload
    if on_upload is not None:
        on_upload(record)
    return Uploaded.of(record)


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem},
    403: {"model": Problem},
    404: {"model": Problem},
}


@router.get(
    "/status/{file_id}",
    response_model=FileStatus,
    summary="A file's status and progress",
    description="Needs a key with the `read` scope that covers the file's dataset.",
    responses=ERRORS,
)
async def status(request: Request, file_id: FileId, caller: Reader) -> FileStatus:
    record = await in_database(request, lambda conn: _record(conn, file_id, caller))
    return FileStatus.of(record)


@router.get(
    "/results/{file_id}",
    response_model=ResultsPage,
    summary="A file's loaded rows, a page at a time",
    description="Rows in file order (chunk, then line), numbered from 1 by `id`. "
    f"`limit` is 1..{MAX_LIMIT}; a larger one is refused (422). Page with `after` (the `next` "
    "of the page before): every page then costs the same; `offset` works too, and finds a deep "
    "page's first row in an index. A file not loaded yet has none; one whose table was dropped "
    "since is 410. Needs a key with the `read` scope that covers the file's dataset.",
    responses={**ERRORS, 410: {"model": Problem}},
)
async def results(
    request: Request,
    file_id: FileId,
    caller: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
    after: Annotated[
        str | None,
        Query(max_length=64, description="The `next` of the page before; `offset` is ignored."),
    ] = None,
) -> ResultsPage:
    try:
        cursor = None if after is None else Cursor.parse(after)
    except ValueError as exc:
        raise HTTPException(422, f"after: {exc}") from exc

    def read(conn: psycopg.Connection) -> dict[str, Any]:
        record = _record(conn, file_id, caller)
        return file_results(conn, record, limit=limit, offset=offset, after=cursor)

    try:
        page = await in_database(request, read)
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
    return ResultsPage(
        items=items,
        total=page["total"],
        limit=limit,
        offset=page["offset"],
        next=page["next"],
    )


def _record(conn: psycopg.Connection, file_id: str, caller: Caller) -> FileRecord:
    """The file by its public id or file id: 404 if none, 403 if the key does not cover its
    dataset."""
    if file_id.isdigit():
        number = int(file_id)
        record = file_by_id(conn, number) if 0 < number <= MAX_BIGINT else None
    else:
        found = files_where(conn, "f.public_id = %s", (UUID(file_id),))
        record = found[0] if found else None
    if record is None:
        raise HTTPException(404, f"no file with id {file_id}")
    caller.check_dataset(record.dataset)
    return record
