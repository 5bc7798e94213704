"""What the text formats (CSV, NDJSON) share before a load: the chunk plan and a sample."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.chunking import plan_file
from granula_pipeline.lib.formats.source import open_source
from granula_pipeline.lib.model import ChunkPlan, FilePlan, SurveyRequest

SAMPLE_CHUNKS = 16
SAMPLE_BYTES_PER_CHUNK = 512 * 1024
SAMPLE_BYTES_FIRST_CHUNK = 4 * 1024 * 1024


def plan_text(
    request: SurveyRequest,
    *,
    data_offset: int,
    first_line: int,
    quoting: bool,
    empty: BadInputError | None,
) -> tuple[list[ChunkPlan], FilePlan | None]:
    """The file's chunks: those planned before if any, else a new plan (raising `empty`, if
    given, when it holds no records)."""
    if request.planned:
        return request.planned, None
    plan = plan_file(
        request.path,
        data_offset=data_offset,
        first_line=first_line,
        chunk_rows=request.chunk_rows,
        max_bytes=request.max_bytes,
        compression=request.source.compression,
        quoting=quoting,
        limits=request.limits,
    )
    if plan.planned_rows == 0 and empty is not None:
        raise empty
    return plan.chunks, plan


def sample(
    path: Path, chunks: list[ChunkPlan], compression: str | None, cut: Callable[[bytes], bytes]
) -> bytes:
    """Whole records (as `cut` trims them) from the start of the file and of chunks spread
    through it. Read through one stream in ascending order, so a gzip'd file is decompressed once.
    """
    step = max(1, len(chunks) // SAMPLE_CHUNKS)
    parts = []
    with open_source(path, compression) as source:
        for position, chunk in enumerate(chunks[::step]):
            limit = SAMPLE_BYTES_FIRST_CHUNK if position == 0 else SAMPLE_BYTES_PER_CHUNK
            source.seek(chunk.byte_start)
            head = source.read(min(chunk.byte_count, limit))
            parts.append(head if chunk.byte_count <= limit else cut(head))
    return b"".join(part if part.endswith(b"\n") else part + b"\n" for part in parts if part)
