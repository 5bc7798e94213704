"""What the API answers, as pydantic models, so that OpenAPI documents every field."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from granula_pipeline.lib.model import FileRecord

JsonValue = str | int | float | bool | None


class Problem(BaseModel):
    """Why a request was refused, in words meant for the person who sent it."""

    detail: str


class Uploaded(BaseModel):
    file_id: int = Field(description="Granula's internal id (`granula status` takes it).")
    public_id: UUID | None = Field(
        description="The id to hand out: ask `/status/{id}` and `/results/{id}` with it."
    )
    filename: str = Field(description="The name the file got in the inbox.")
    status: str = Field(description="`queued` until a run starts loading it.")
    priority: int = Field(ge=0, le=10)
    partition: str = Field(description="The file's partition of `ingest_file` in Dagster.")

    @classmethod
    def of(cls, record: FileRecord) -> Uploaded:
        return cls(
            file_id=record.file_id,
            public_id=record.public_id,
            filename=record.filename,
            status=record.status,
            priority=record.priority,
            partition=record.partition_key,
        )


class FileStatus(BaseModel):
    file_id: int
    public_id: UUID | None
    filename: str
    status: str = Field(
        description="queued, processing, completed, completed_with_errors or failed."
    )
    total_chunks: int | None = Field(description="Unknown (null) until the file is planned.")
    processed_chunks: int
    failed_chunks: int
    progress_percent: float = Field(ge=0, le=100)
    error_message: str | None

    model_config = ConfigDict(from_attributes=True)  # read from a FileRecord

    @classmethod
    def of(cls, record: FileRecord) -> FileStatus:
        return cls.model_validate(record)


class ResultRow(BaseModel):
    id: int = Field(description="The row's position in the file's results, from 1.")
    chunk_index: int
    data: dict[str, JsonValue] = Field(
        description="The row keyed by column. Dates and times are ISO 8601 strings; "
        "non-finite numbers are the strings NaN, Infinity, -Infinity."
    )


class ResultsPage(BaseModel):
    items: list[ResultRow]
    total: int = Field(description="Rows loaded from the file, all pages together.")
    limit: int
    offset: int = Field(description="Rows before this page.")
    next: str | None = Field(
        default=None, description="Pass as `after` for the page after this one; null at the end."
    )


def json_value(value: Any) -> JsonValue:
    """A value read from a typed table, as JSON can carry it without losing what it says."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _non_finite(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "NaN" if value.is_nan() else _non_finite(float(value))
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def _non_finite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
