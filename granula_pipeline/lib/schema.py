"""Infer a dataset's column types from a sample of the file, and map them to PostgreSQL types."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from granula_pipeline.lib.planning import NEWLINE, QUOTE

# Tokens that mean "no value" in a typed (non-text) column. Text columns keep them as written.
NULL_TOKENS = ["NA", "N/A", "n/a", "#N/A", "null", "NULL", "None", "nan"]
TEXT = "text"


@dataclass(frozen=True)
class Column:
    """A data column of a result table: SQL name, PostgreSQL type and the header it came from."""

    name: str
    pg_type: str
    source_name: str

    @property
    def polars_type(self) -> pl.DataType:
        return POLARS_TYPES.get(self.pg_type, pl.String())


POLARS_TYPES: dict[str, pl.DataType] = {
    "bigint": pl.Int64(),
    "integer": pl.Int32(),
    "double precision": pl.Float64(),
    "boolean": pl.Boolean(),
    "date": pl.Date(),
    "timestamp without time zone": pl.Datetime("us"),
    "timestamp with time zone": pl.Datetime("us", "UTC"),
    "time without time zone": pl.Time(),
    TEXT: pl.String(),
}


def pg_type_for(dtype: pl.DataType) -> str:
    """The PostgreSQL type that holds every value of a polars type exactly."""
    if dtype.is_integer():
        # polars reads integers beyond 64 bits as Int128, which bigint cannot hold
        return "numeric" if dtype in (pl.UInt64, pl.Int128, pl.UInt128) else "bigint"
    if dtype.is_float():
        return "double precision"
    if isinstance(dtype, pl.Decimal):
        return "numeric"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "timestamp with time zone" if dtype.time_zone else "timestamp without time zone"
    if dtype == pl.Time:
        return "time without time zone"
    return TEXT


def infer_columns(sample: bytes, columns: list[str], source_names: list[str]) -> list[Column]:
    """Types that fit every value of `sample` (header-less CSV records); text when unsure."""
    if not sample.strip():
        return [Column(c, TEXT, s) for c, s in zip(columns, source_names, strict=True)]
    as_text = _read(sample, columns, infer=False)
    typed = _read(sample, columns, infer=True)
    result = []
    for column, source_name in zip(columns, source_names, strict=True):
        pg_type = pg_type_for(typed.schema[column])
        if pg_type in ("bigint", "numeric", "double precision") and _has_leading_zeros(
            as_text[column]
        ):
            pg_type = TEXT  # "00123" is an identifier (zip code, account number), not a number
        result.append(Column(column, pg_type, source_name))
    return result


def _read(sample: bytes, columns: list[str], *, infer: bool) -> pl.DataFrame:
    return pl.read_csv(
        sample,
        has_header=False,
        new_columns=columns,
        infer_schema=infer,
        infer_schema_length=None,
        try_parse_dates=infer,
        null_values=NULL_TOKENS if infer else None,
        truncate_ragged_lines=True,
        extra_columns="ignore",
        raise_if_empty=False,
        encoding="utf8-lossy",
    )


def _has_leading_zeros(values: pl.Series) -> bool:
    return bool(values.str.contains(r"^\s*[+-]?0\d").any())


def whole_records(data: bytes) -> bytes:
    """The longest prefix of `data` that ends at a record boundary (a newline outside quotes)."""
    array = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(array == NEWLINE)
    if not len(newlines):
        return b""
    quotes = np.flatnonzero(array == QUOTE)
    even = (np.searchsorted(quotes, newlines) & 1) == 0
    ends = newlines[even]
    return data[: int(ends[-1]) + 1] if len(ends) else b""
