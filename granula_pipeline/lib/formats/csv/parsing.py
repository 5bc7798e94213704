"""Parse a chunk record by record when its bytes cannot go to COPY as they are.

This careful way knows the line each record starts on, so every problem is reported where it is.
A record that cannot be loaded (too many fields, bytes that are not text in the file's
encoding, a NUL byte) is set aside with its line, raw text and reason; the rest of the chunk loads.
Blank lines are skipped.
"""

from __future__ import annotations

import csv
import io
import re

import polars as pl

from granula_pipeline.lib.formats.csv.tokens import records
from granula_pipeline.lib.formats.types import NULL_TOKENS, TEXT
from granula_pipeline.lib.model import LINE_COLUMN, Column, Dialect, ParsedChunk, Rejected

UNDECODABLE = re.compile("[\udc80-\udcff]")
csv.field_size_limit(2**31 - 1)


class _Lines:
    """Raw text of physical lines, indexed lazily (only when a record must be quoted back)."""

    def __init__(self, text: str):
        self.text = text
        self.starts: list[int] | None = None

    def between(self, first: int, end: int) -> str:
        if self.starts is None:
            self.starts = [0, *(m.end() for m in re.finditer("\n", self.text))]
        stop = self.starts[end] if end < len(self.starts) else len(self.text)
        return self.text[self.starts[first] : stop].rstrip("\r\n")


def python_codec(pg_encoding: str) -> str:
    return {"UTF8": "utf-8", "WIN1252": "cp1252", "LATIN1": "latin-1"}.get(pg_encoding, "utf-8")


def parse_chunk(
    data: bytes,
    columns: list[Column],
    first_line: int,
    encoding: str = "UTF8",
    delimiter: str = ",",
    dialect: Dialect | None = None,
) -> ParsedChunk:
    """Every loadable record of the chunk as text columns, with the line it starts on.

    A short record is padded with NULLs; a long one is set aside (its fields past the header's
    have no column, and a stray delimiter has likely shifted the others), unless its extra
    fields are all empty (a trailing delimiter): those are dropped.
    """
    if dialect is not None and not dialect.copyable:
        return _parse_careful(data, columns, first_line, encoding, dialect)
    text = data.decode(python_codec(encoding), errors="surrogateescape")
    lines = _Lines(text)
    width = len(columns)
    values: list[list[str | None]] = [[] for _ in range(width)]
    record_lines: list[int] = []
    rejected: list[Rejected] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 0  # physical line (0-based, within the chunk) where the next record starts
    for record in reader:
        end = reader.line_num
        if record:
            record = _trimmed(record, width)
            reason = _problem(record, width, columns)
            if reason:
                rejected.append(Rejected(first_line + start, lines.between(start, end), reason))
            else:
                fields: list[str | None] = list(record)
                if "" in record:
                    fields = _empty_as_null(record, lines.between(start, end), delimiter)
                _add(values, fields, width)
                record_lines.append(first_line + start)
        start = end
    return ParsedChunk(_frame(columns, values, record_lines), rejected)


def _parse_careful(
    data: bytes, columns: list[Column], first_line: int, encoding: str, dialect: Dialect
) -> ParsedChunk:
    """`parse_chunk` for a dialect other than plain RFC 4180: empty fields are NULL."""
    codec = python_codec(encoding)
    width = len(columns)
    values: list[list[str | None]] = [[] for _ in range(width)]
    record_lines: list[int] = []
    rejected: list[Rejected] = []
    for found in records(data, dialect, codec, first_line):
        if found.blank:
            continue
        record = _trimmed(found.fields, width)
        reason = _problem(record, width, columns)
        if reason:
            raw = data[found.start : found.end].decode(codec, errors="surrogateescape")
            rejected.append(Rejected(found.line, raw.rstrip("\r\n"), reason))
        else:
            _add(values, [value or None for value in record], width)
            record_lines.append(found.line)
    return ParsedChunk(_frame(columns, values, record_lines), rejected)


def _trimmed(record: list[str], width: int) -> list[str]:
    """A record without the empty fields a trailing delimiter adds past the header's width."""
    if len(record) > width and not any(value.strip() for value in record[width:]):
        return record[:width]
    return record


def _add(values: list[list[str | None]], fields: list[str | None], width: int) -> None:
    """Append a record's fields to the columns, NULL for those a short record lacks."""
    for position, column_values in enumerate(values):
        column_values.append(fields[position] if position < len(fields) else None)


def _frame(
    columns: list[Column], values: list[list[str | None]], record_lines: list[int]
) -> pl.DataFrame:
    return pl.DataFrame(
        {column.name: column_values for column, column_values in zip(columns, values, strict=True)},
        schema={column.name: pl.String for column in columns},
    ).with_columns(pl.Series(LINE_COLUMN, record_lines, dtype=pl.Int64))


def _problem(record: list[str], width: int, columns: list[Column]) -> str | None:
    if len(record) > width:
        return f"this record has {len(record)} fields but the header has {width}"
    for column, value in zip(columns, record, strict=False):
        if "\x00" in value:
            return f"a NUL byte (0x00) in column {column.source_name!r}: binary data is not CSV"
        if bad := UNDECODABLE.search(value):
            byte = ord(bad.group()) - 0xDC00
            return (
                f"byte 0x{byte:02x} in column {column.source_name!r} is not valid text in the "
                "file's encoding; save the file as UTF-8"
            )
    return None


def _empty_as_null(record: list[str], raw: str, delimiter: str = ",") -> list[str | None]:
    """PostgreSQL's CSV rule, which COPY applies too: an empty field is NULL, `""` is ""."""
    opens_quoted = _fields_opening_with_quote(raw, delimiter) if '""' in raw else []
    if len(opens_quoted) != len(record):  # no `""` in the record, or stray quotes: all NULL
        opens_quoted = [False] * len(record)
    return [
        value if value or was_quoted else None
        for value, was_quoted in zip(record, opens_quoted, strict=True)
    ]


def _fields_opening_with_quote(raw: str, delimiter: str = ",") -> list[bool]:
    """For each field of one record's raw text, whether it opens with a quote."""
    opens = [raw.startswith('"')]
    in_quotes = False
    for match in re.finditer(f'["{re.escape(delimiter)}]', raw):
        if match.group() == '"':
            in_quotes = not in_quotes
        elif not in_quotes:
            opens.append(raw.startswith('"', match.end()))
    return opens


def normalise_nulls(frame: pl.DataFrame, columns: list[Column]) -> pl.DataFrame:
    """Empty and `NA`-like values become NULL in typed columns; text columns keep their values."""
    return frame.with_columns(
        pl.col(c.name)
        if c.pg_type == TEXT
        else pl.when(pl.col(c.name).str.strip_chars().is_in(["", *NULL_TOKENS]))
        .then(None)
        .otherwise(pl.col(c.name).str.strip_chars())
        .alias(c.name)
        for c in columns
    )


def type_problems(frame: pl.DataFrame, columns: list[Column]) -> dict[int, str]:
    """Rows whose value in a number or boolean column cannot be read as one, with the reason.

    Checked vectorised with polars before COPY, so one bad value costs no COPY round trip; dates
    and timestamps are left to PostgreSQL, whose parser accepts more forms than polars'.
    """
    problems: dict[int, str] = {}
    for column in columns:
        value = pl.col(column.name)
        if column.pg_type in ("bigint", "integer"):
            parsed = value.cast(pl.Int64, strict=False)
        elif column.pg_type == "double precision":
            parsed = value.cast(pl.Float64, strict=False)
        elif column.pg_type == "boolean":
            parsed = value.str.to_lowercase().replace_strict(
                BOOLEAN_WORDS, BOOLEAN_VALUES, default=None, return_dtype=pl.Boolean
            )
        else:
            continue
        bad = frame.select((value.is_not_null() & parsed.is_null()).alias("bad")).to_series()
        for index in bad.arg_true().to_list():
            problems.setdefault(
                index,
                f"{frame[column.name][index]!r} in column {column.source_name!r} "
                f"is not a valid {column.pg_type}",
            )
    return problems


def quoted(record: dict[str, object], columns: list[Column]) -> str:
    """A parsed record written back as one CSV line (for the quarantine)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(
        ["" if record[c.name] is None else record[c.name] for c in columns]
    )
    return buffer.getvalue()


def storable(text: str) -> str:
    """Text PostgreSQL can store: undecodable bytes as \\xNN, NUL as \\0."""
    return (
        text.encode("utf-8", "surrogateescape")
        .decode("utf-8", "backslashreplace")
        .replace("\x00", "\\0")
    )


BOOLEAN_WORDS = ["true", "t", "yes", "y", "1", "on", "false", "f", "no", "n", "0", "off"]
BOOLEAN_VALUES = [True] * 6 + [False] * 6
