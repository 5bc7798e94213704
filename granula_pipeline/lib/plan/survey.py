"""Survey a file before it loads, whatever its format: chunk plan, encoding, typed columns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.csv.header import UTF8_BOM, read_header
from granula_pipeline.lib.formats.csv.parsing import python_codec
from granula_pipeline.lib.formats.csv.records import whole_records
from granula_pipeline.lib.formats.encoding import detect_encoding
from granula_pipeline.lib.formats.ndjson import infer_ndjson_columns
from granula_pipeline.lib.formats.parquet import parquet_columns, plan_row_groups
from granula_pipeline.lib.formats.source import open_source
from granula_pipeline.lib.formats.types import infer_columns
from granula_pipeline.lib.model import NDJSON, PARQUET, ChunkPlan, SourceFormat, Survey
from granula_pipeline.lib.plan.chunks import plan_file

SAMPLE_CHUNKS = 16
SAMPLE_BYTES_PER_CHUNK = 512 * 1024
SAMPLE_BYTES_FIRST_CHUNK = 4 * 1024 * 1024


def survey_file(
    path: Path,
    source: SourceFormat,
    planned: list[ChunkPlan],
    *,
    chunk_rows: int,
    max_bytes: int,
) -> Survey:
    """Plan the file (unless `planned`), and type its columns from its schema or a sample."""
    if source.kind == PARQUET:
        plan = (
            None if planned else plan_row_groups(path, chunk_rows=chunk_rows, max_bytes=max_bytes)
        )
        return Survey("UTF8", plan.chunks if plan else planned, plan, parquet_columns(path))
    encoding = detect_encoding(path, source.compression)
    if source.kind == NDJSON:
        with path.open("rb") as head:
            data_offset = len(UTF8_BOM) if head.read(len(UTF8_BOM)) == UTF8_BOM else 0
        first_line = 1
    else:
        header = read_header(
            path,
            python_codec(encoding),
            delimiter=source.delimiter,
            compression=source.compression,
        )
        data_offset, first_line = header.data_offset, header.first_data_line
    plan = None
    chunks = planned
    if not chunks:
        plan = plan_file(
            path,
            data_offset=data_offset,
            first_line=first_line,
            chunk_rows=chunk_rows,
            max_bytes=max_bytes,
            compression=source.compression,
            quoting=source.kind != NDJSON,
        )
        if plan.planned_rows == 0 and source.kind == NDJSON:
            raise BadInputError("the file is empty: it has no JSON lines")
        if plan.planned_rows == 0:
            raise BadInputError("the file has a header but no data rows", line=2)
        chunks = plan.chunks
    cut = _whole_lines if source.kind == NDJSON else whole_records
    sample = _sample(path, chunks, source.compression, cut)
    if source.kind == NDJSON:
        return Survey(encoding, chunks, plan, infer_ndjson_columns(sample, encoding))
    if encoding != "UTF8":
        sample = sample.decode(python_codec(encoding), errors="replace").encode()
    columns = infer_columns(sample, header.columns, header.source_names, source.delimiter)
    return Survey(encoding, chunks, plan, columns)


def _sample(
    path: Path, chunks: list[ChunkPlan], compression: str | None, cut: Callable[[bytes], bytes]
) -> bytes:
    """Whole records from the start of the file and of chunks spread through it.

    Read through one stream in ascending order, so a gzip'd file is decompressed once.
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


def _whole_lines(data: bytes) -> bytes:
    return data[: data.rfind(b"\n") + 1]
