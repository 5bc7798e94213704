"""Parquet: chunks are runs of whole row groups, columns are typed from the file's own schema.

A chunk op reads only its row groups (and the footer); nested values load as `jsonb`, binary as
`bytea`. A file whose footer cannot be read is refused when it is planned; a row group that cannot
be decoded fails its chunk, naming the row groups.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.chunking import BLOCK_BYTES
from granula_pipeline.lib.formats.names import column_names
from granula_pipeline.lib.formats.types import TEXT, pg_type_for
from granula_pipeline.lib.model import (
    LINE_COLUMN,
    ChunkPlan,
    Column,
    FilePlan,
    LoadTarget,
    ParsedChunk,
    Survey,
    SurveyRequest,
)

JSONB, BYTEA = "jsonb", "bytea"
_NESTED = (pl.Struct, pl.List, pl.Array)
_READ_ERRORS = (pa.ArrowException, OSError, ValueError)


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except _READ_ERRORS as exc:
        raise BadInputError(f"not a readable Parquet file: {exc}") from exc


def plan_row_groups(path: Path, *, chunk_rows: int, max_bytes: int) -> FilePlan:
    """Group consecutive row groups into chunks of at most `chunk_rows` rows and `max_bytes`
    (uncompressed); a row group larger than that is a chunk of its own."""
    metadata = _open(path).metadata
    chunks: list[ChunkPlan] = []
    first_group = rows = size = row_start = 0
    spans: list[tuple[int, int]] = []

    def close(end_group: int) -> None:
        nonlocal first_group, rows, size, row_start
        byte_start = min(start for start, _ in spans)
        byte_end = max(end for _, end in spans)
        chunks.append(
            ChunkPlan(
                len(chunks), byte_start, byte_end, row_start + 1, rows,
                row_start, first_group, end_group,
            )
        )  # fmt: skip
        first_group, row_start, rows, size = end_group, row_start + rows, 0, 0
        spans.clear()

    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        too_many = rows + row_group.num_rows > chunk_rows
        if group > first_group and (too_many or size + row_group.total_byte_size > max_bytes):
            close(group)
        rows += row_group.num_rows
        size += row_group.total_byte_size
        spans.append(_byte_span(row_group))
    if metadata.num_row_groups > first_group:
        close(metadata.num_row_groups)
    if not sum(chunk.planned_rows for chunk in chunks):
        raise BadInputError("the Parquet file has no rows")
    return FilePlan(chunks, path.stat().st_size, _content_hash(path))


def _byte_span(row_group: pq.RowGroupMetaData) -> tuple[int, int]:
    starts, ends = [], []
    for i in range(row_group.num_columns):
        column = row_group.column(i)
        start = column.data_page_offset
        if column.has_dictionary_page and column.dictionary_page_offset:
            start = min(start, column.dictionary_page_offset)
        starts.append(start)
        ends.append(start + column.total_compressed_size)
    return min(starts), max(ends)


def _content_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with path.open("rb") as source:
        while block := source.read(BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def parquet_columns(path: Path) -> list[Column]:
    """The file's columns, typed from its schema: no sampling, no guessing."""
    try:
        schema = pl.read_parquet_schema(path)
    except (pl.exceptions.PolarsError, *_READ_ERRORS) as exc:
        raise BadInputError(f"not a readable Parquet file: {exc}") from exc
    names = list(schema)
    return [
        Column(name, _pg_type(schema[source]), source)
        for name, source in zip(column_names(names), names, strict=True)
    ]


def _pg_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, _NESTED):
        return JSONB
    if dtype == pl.Binary:
        return BYTEA
    return pg_type_for(dtype)


def read_row_groups(path: Path, columns: list[Column], chunk: ChunkPlan) -> pl.DataFrame:
    """The chunk's row groups as a frame COPY can take, with each row's number in the file."""
    assert chunk.row_group_start is not None and chunk.row_group_end is not None
    groups = range(chunk.row_group_start, chunk.row_group_end)
    where = f"row groups {groups.start}-{groups.stop - 1} (rows {chunk.first_line}+)"
    try:
        table = _open(path).read_row_groups(groups, columns=[c.source_name for c in columns])
    except _READ_ERRORS as exc:
        raise BadInputError(f"{where} of the Parquet file cannot be read: {exc}") from exc
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if frame.height != chunk.planned_rows:
        raise BadInputError(
            f"{where}: the file changed after it was planned ({frame.height} rows, "
            f"{chunk.planned_rows} planned); drop it into the inbox again"
        )
    return frame.select(
        *(_as_copy_text(frame.schema[c.source_name], c).alias(c.name) for c in columns),
        pl.int_range(chunk.first_line, chunk.first_line + frame.height).alias(LINE_COLUMN),
    )


def _as_copy_text(dtype: pl.DataType, column: Column) -> pl.Expr:
    """Types polars cannot write as CSV, written the way PostgreSQL reads them."""
    value = pl.col(column.source_name)
    if isinstance(dtype, _NESTED):
        # json_encode only exists for structs: wrap the value as {"v":...} and unwrap the text.
        encoded = pl.struct(value.alias("v")).struct.json_encode().str.slice(5).str.head(-1)
        return pl.when(value.is_null()).then(None).otherwise(encoded)
    if dtype == pl.Binary:
        return pl.lit("\\x") + value.bin.encode("hex")
    if column.pg_type == TEXT and dtype != pl.String:
        return value.cast(pl.String)
    return value


class ParquetFormat:
    def survey(self, request: SurveyRequest) -> Survey:
        path, planned = request.path, request.planned
        plan = None
        if not planned:
            plan = plan_row_groups(path, chunk_rows=request.chunk_rows, max_bytes=request.max_bytes)
        return Survey("UTF8", plan.chunks if plan else planned, plan, parquet_columns(path))

    def read_chunk(self, path: Path, target: LoadTarget, chunk: ChunkPlan) -> ParsedChunk:
        return ParsedChunk(read_row_groups(path, target.columns, chunk), typed=True)
