"""Parse a chunk record by record when its bytes cannot go to COPY as they are.

This careful way knows each record's line number, so every problem is reported where it is: bytes
that are not UTF-8, a NUL byte, a record with too many or too few fields. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import io

import polars as pl

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.schema import NULL_TOKENS, TEXT, Column

LINE_COLUMN = "_granula_line"
csv.field_size_limit(2**31 - 1)


def decode_chunk(data: bytes, first_line: int) -> str:
    """The chunk as text; BadInputError naming the line and byte when it is not UTF-8."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise BadInputError(
            f"a NUL byte (0x00) at byte {nul} of the chunk: the file looks binary, not CSV",
            line=first_line + data.count(b"\n", 0, nul),
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        raise BadInputError(
            f"byte 0x{data[exc.start]:02x} is not valid UTF-8; save the file as UTF-8 "
            "(it may be Latin-1 or Windows-1252)",
            line=line,
        ) from exc


def parse_chunk(data: bytes, columns: list[Column], first_line: int) -> pl.DataFrame:
    """Every record of the chunk as text columns, plus the line each record starts on."""
    text = decode_chunk(data, first_line)
    width = len(columns)
    values: list[list[str]] = [[] for _ in range(width)]
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    record_line = first_line
    try:
        for record in reader:
            if record:
                if len(record) != width:
                    raise BadInputError(
                        f"this record has {len(record)} fields but the header has {width}",
                        line=record_line,
                    )
                for column_values, value in zip(values, record, strict=True):
                    column_values.append(value)
                lines.append(record_line)
            record_line = first_line + reader.line_num
    except csv.Error as exc:
        raise BadInputError(f"the CSV is malformed here: {exc}", line=record_line) from exc
    frame = pl.DataFrame(
        {column.name: column_values for column, column_values in zip(columns, values, strict=True)},
        schema={column.name: pl.String for column in columns},
    )
    return frame.with_columns(pl.Series(LINE_COLUMN, lines, dtype=pl.Int64))


def normalise_nulls(frame: pl.DataFrame, columns: list[Column]) -> pl.DataFrame:
    """Empty fields become NULL; `NA`-like tokens too, except in text columns, which keep them."""
    return frame.with_columns(
        pl.when(pl.col(c.name) == "").then(None).otherwise(pl.col(c.name)).alias(c.name)
        if c.pg_type == TEXT
        else pl.when(pl.col(c.name).str.strip_chars().is_in(["", *NULL_TOKENS]))
        .then(None)
        .otherwise(pl.col(c.name))
        .alias(c.name)
        for c in columns
    )
