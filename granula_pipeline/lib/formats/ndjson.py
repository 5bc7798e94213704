"""NDJSON / JSON Lines: one JSON object per line, typed from a sample, parsed line by line.

A JSON string cannot hold a raw newline, so every newline ends a record and chunks are planned as
plain byte ranges. Each line is parsed on its own, so a line that is not a JSON object, or holds a
key the sample did not show, is set aside with its line number while the rest of the chunk loads,
as a bad CSV record is. Objects and arrays load as `jsonb`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.csv.header import UTF8_BOM
from granula_pipeline.lib.formats.csv.parsing import UNDECODABLE, python_codec
from granula_pipeline.lib.formats.encoding import detect_encoding
from granula_pipeline.lib.formats.names import column_names
from granula_pipeline.lib.formats.sampling import plan_text, sample
from granula_pipeline.lib.formats.source import read_chunk_bytes
from granula_pipeline.lib.formats.types import TEXT, column_type
from granula_pipeline.lib.model import (
    LINE_COLUMN,
    ChunkPlan,
    Column,
    LoadTarget,
    ParsedChunk,
    Rejected,
    Survey,
    SurveyRequest,
)

JSONB = "jsonb"
TEMPORAL = ("date", "time without time zone", "timestamp without time zone")
TEMPORAL_TZ = "timestamp with time zone"


def infer_ndjson_columns(sample: bytes, encoding: str = "UTF8") -> list[Column]:
    """One column per key seen in the sample's objects (first seen first), typed by its values.

    Lines that are not JSON objects are left out here; loading rejects them with their line.
    """
    values: dict[str, list[Any]] = {}
    for line in sample.decode(python_codec(encoding), errors="replace").splitlines():
        record = _object(line)
        for key, value in (record or {}).items():
            values.setdefault(key, []).append(value)
    if not values:
        raise BadInputError("no line of the file's sample holds a JSON object", line=1)
    keys = list(values)
    return [
        Column(name, _pg_type(values[key]), key)
        for name, key in zip(column_names(keys), keys, strict=True)
    ]


def _object(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _pg_type(values: list[Any]) -> str:
    present = [value for value in values if value is not None]
    kinds = {type(value) for value in present}
    if not kinds:
        return TEXT
    if kinds & {dict, list}:
        return JSONB
    if kinds == {bool}:
        return "boolean"
    if kinds == {int}:
        return "bigint" if all(-(2**63) <= v < 2**63 for v in present) else "numeric"
    if kinds <= {int, float}:
        return "double precision"
    if kinds == {str}:
        # JSON has no dates: ISO 8601 strings are typed as such; "123" stays text, as written.
        guessed = column_type(pl.Series(present, dtype=pl.String))
        return guessed if guessed in (*TEMPORAL, TEMPORAL_TZ) else TEXT
    return TEXT


def parse_ndjson_chunk(
    data: bytes, columns: list[Column], first_line: int, encoding: str = "UTF8"
) -> ParsedChunk:
    """Every object of the chunk as text values (JSON text for jsonb columns), with its line."""
    text = data.decode(python_codec(encoding), errors="surrogateescape")
    position = {column.source_name: i for i, column in enumerate(columns)}
    values: list[list[str | None]] = [[] for _ in columns]
    record_lines: list[int] = []
    rejected: list[Rejected] = []
    for offset, raw in enumerate(text.split("\n")):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        number = first_line + offset
        record, reason = _record(line, position)
        if record is None:
            rejected.append(Rejected(number, line, reason))
            continue
        for column, column_values in zip(columns, values, strict=True):
            column_values.append(_text(record.get(column.source_name), column.pg_type))
        record_lines.append(number)
    frame = pl.DataFrame(
        {column.name: column_values for column, column_values in zip(columns, values, strict=True)},
        schema={column.name: pl.String for column in columns},
    ).with_columns(pl.Series(LINE_COLUMN, record_lines, dtype=pl.Int64))
    return ParsedChunk(frame, rejected)


def _record(line: str, position: dict[str, int]) -> tuple[dict[str, Any] | None, str]:
    if bad := UNDECODABLE.search(line):
        byte = ord(bad.group()) - 0xDC00
        return None, f"byte 0x{byte:02x} is not valid text in the file's encoding (UTF-8)"
    try:
        record = json.loads(line)
    except ValueError as exc:
        where = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        return None, f"not valid JSON{where}: {getattr(exc, 'msg', exc)}"
    if not isinstance(record, dict):
        return None, f"a JSON {type(record).__name__} where each line must hold an object"
    unknown = [key for key in record if key not in position]
    if unknown:
        return None, (
            f"key {unknown[0]!r} is not one of the file's columns (taken from a sample of the "
            "file); put every key in the file's first lines"
        )
    return record, ""


def _text(value: Any, pg_type: str) -> str | None:
    """A JSON value as the text COPY reads for its column's type."""
    if value is None:
        return None
    if pg_type == JSONB or isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


class NdjsonFormat:
    def survey(self, request: SurveyRequest) -> Survey:
        path, source = request.path, request.source
        encoding = detect_encoding(path, source.compression)
        with path.open("rb") as head:
            data_offset = len(UTF8_BOM) if head.read(len(UTF8_BOM)) == UTF8_BOM else 0
        chunks, plan = plan_text(
            request,
            data_offset=data_offset,
            first_line=1,
            quoting=False,  # a JSON string cannot hold a raw newline
            empty=BadInputError("the file is empty: it has no JSON lines"),
        )
        lines = sample(path, chunks, source.compression, _whole_lines)
        return Survey(encoding, chunks, plan, infer_ndjson_columns(lines, encoding))

    def read_chunk(self, path: Path, target: LoadTarget, chunk: ChunkPlan) -> ParsedChunk:
        data = read_chunk_bytes(path, chunk)
        return parse_ndjson_chunk(data, target.columns, chunk.first_line, target.encoding)


def _whole_lines(data: bytes) -> bytes:
    return data[: data.rfind(b"\n") + 1]
