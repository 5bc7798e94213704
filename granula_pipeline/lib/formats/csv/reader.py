"""CSV and TSV (plain or gzip'd): the dialect sniffed, the table found (preamble, header rows),
records planned, columns typed from a sample.

A file in plain RFC 4180 CSV keeps the fast path: chunks planned by the record rule on byte
offsets go to COPY as the file's bytes; the loader parses what PostgreSQL refuses. A file in any
other dialect (or with a stray quote) is planned and parsed record by record in its dialect.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from granula_pipeline.lib.errors import UnclosedQuote
from granula_pipeline.lib.formats.chunking import plan_careful
from granula_pipeline.lib.formats.csv.dialect import sniff
from granula_pipeline.lib.formats.csv.header import Layout, detect_layout
from granula_pipeline.lib.formats.csv.parsing import python_codec
from granula_pipeline.lib.formats.csv.records import has_stray_quotes, whole_records
from granula_pipeline.lib.formats.csv.tokens import records
from granula_pipeline.lib.formats.encoding import detect_encoding
from granula_pipeline.lib.formats.sampling import plan_text, sample
from granula_pipeline.lib.formats.source import HEAD_BYTES, read_head
from granula_pipeline.lib.formats.types import infer_columns, infer_record_columns
from granula_pipeline.lib.model import (
    DOUBLED,
    NO_ESCAPE,
    ChunkPlan,
    Column,
    Dialect,
    FilePlan,
    Survey,
    SurveyRequest,
)

# A sample this small (a small file) is typed from the careful parse, which leaves long records
# out; a larger one by polars (typing 1 MiB the careful way costs ~150 ms, polars ~5 ms).
CAREFUL_SAMPLE_BYTES = 64 * 1024


class CsvFormat:
    def survey(self, request: SurveyRequest) -> Survey:
        path, source = request.path, request.source
        encoding = detect_encoding(path, source.compression)
        codec = python_codec(encoding)
        head = read_head(path, source.compression)
        whole = len(head) < HEAD_BYTES
        dialect = source.dialect or sniff(head, codec, dict(source.hints), source.delimiter)
        layout = detect_layout(head, dialect, codec, whole=whole)
        dialect, header = layout.dialect, layout.header
        if dialect.copyable and has_stray_quotes(
            whole_records(head[header.data_offset :]), dialect.delimiter
        ):
            dialect = _careful(dialect)
        chunks: list[ChunkPlan] = []
        plan: FilePlan | None = None
        if dialect.copyable:
            try:
                chunks, plan = plan_text(
                    request,
                    data_offset=header.data_offset,
                    first_line=header.first_data_line,
                    quoting=True,
                    empty=None,
                )
            except UnclosedQuote:
                dialect = _careful(dialect)  # a stray quote past the head: the careful way
        if not dialect.copyable:
            chunks, plan, dialect = _plan_careful(request, layout, dialect, codec)
        if not request.planned and sum(chunk.planned_rows for chunk in chunks) == 0:
            at = header.data_offset  # no rows: one empty chunk, so the file completes
            chunks = [ChunkPlan(0, at, at, header.first_data_line, 0)]
            plan = replace(plan, chunks=chunks) if plan else None
        columns = _columns(request, chunks, dialect, codec, encoding, layout)
        surveyed = replace(source, delimiter=dialect.delimiter, dialect=dialect)
        return Survey(encoding, chunks, plan, columns, surveyed)


def _careful(dialect: Dialect) -> Dialect:
    """The dialect read the careful way because of stray quotes: a quote that does not end a
    quoted field is kept in the cell (`NO_ESCAPE` leaves doubled quotes as they are)."""
    escape = NO_ESCAPE if dialect.escape == DOUBLED else dialect.escape
    return replace(dialect, careful=True, escape=escape)


def _plan_careful(
    request: SurveyRequest, layout: Layout, dialect: Dialect, codec: str
) -> tuple[list[ChunkPlan], FilePlan | None, Dialect]:
    if request.planned:
        return request.planned, None, dialect
    plan, second = plan_careful(
        request.path,
        dialect,
        codec,
        data_offset=layout.header.data_offset,
        first_line=layout.header.first_data_line,
        chunk_rows=request.chunk_rows,
        max_bytes=request.max_bytes,
        names=layout.header.source_names,
        compression=request.source.compression,
        limits=request.limits,
    )
    return plan.chunks, plan, replace(dialect, second_table_line=second)


def _columns(
    request: SurveyRequest,
    chunks: list[ChunkPlan],
    dialect: Dialect,
    codec: str,
    encoding: str,
    layout: Layout,
) -> list[Column]:
    """The columns typed from a sample of the chunks, read as the dialect says."""
    path, compression = request.path, request.source.compression
    names, source_names = layout.header.columns, layout.header.source_names
    rows = sample(path, chunks, compression, whole_records) if dialect.copyable else b""
    if dialect.copyable and len(rows) > CAREFUL_SAMPLE_BYTES:
        if encoding != "UTF8":
            rows = rows.decode(codec, errors="replace").encode()
        try:
            return infer_columns(rows, names, source_names, dialect.delimiter)
        except pl.exceptions.PolarsError:
            pass  # values polars cannot read as CSV: typed from the careful parse below

    def cut(data: bytes) -> bytes:
        found = list(records(data, dialect, codec))
        return data[: found[-2].end] if len(found) > 1 else b""

    rows = rows or sample(path, chunks, compression, cut)
    width = len(names)
    fields = [
        r.fields
        for r in records(rows, dialect, codec)
        if not r.blank and (len(r.fields) <= width or not any(r.fields[width:]))
    ]  # a long record's values are likely shifted: no evidence of the columns' types
    return infer_record_columns(fields, names, source_names)
