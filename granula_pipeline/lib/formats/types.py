"""Infer a dataset's column types from a sample of the file, and map them to PostgreSQL types."""

from __future__ import annotations

import polars as pl

from granula_pipeline.lib.model import Column

# Tokens that mean "no value" in a typed (non-text) column. Text columns keep them as written.
NULL_TOKENS = ["NA", "N/A", "n/a", "#N/A", "null", "NULL", "None", "nan"]
TEXT = "text"


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


def infer_columns(
    sample: bytes, columns: list[str], source_names: list[str], separator: str = ","
) -> list[Column]:
    """Types that fit every value of `sample` (header-less CSV records); text when unsure.

    The sample is read as text once, then each column is tried against each type with a strict,
    vectorised cast: far cheaper than letting the CSV reader guess dates value by value.
    """
    frame = pl.read_csv(
        sample,
        has_header=False,
        separator=separator,
        new_columns=columns,
        infer_schema=False,
        truncate_ragged_lines=True,
        extra_columns="ignore",
        raise_if_empty=False,
        encoding="utf8-lossy",
    )
    return [
        Column(name, column_type(frame[name]) if name in frame.columns else TEXT, source_name)
        for name, source_name in zip(columns, source_names, strict=True)
    ]


INTEGER = r"^[+-]?\d+$"
LEADING_ZERO = r"^[+-]?0\d"
# Stricter than PostgreSQL's boolean input: 1/0 or yes/no columns are numbers or words.
INFERRED_BOOLEANS = ("true", "false")


def column_type(values: pl.Series) -> str:
    """The narrowest PostgreSQL type whose input syntax reads every non-null value."""
    values = values.str.strip_chars()
    values = values.filter(values.is_not_null() & (values != "") & ~values.is_in(NULL_TOKENS))
    if values.is_empty():
        return TEXT
    if values.str.contains(LEADING_ZERO).any():
        return TEXT  # "00123" is an identifier (zip code, account number), not a number
    if values.str.contains(INTEGER).all():
        fits = values.cast(pl.Int64, strict=False).null_count() == 0
        return "bigint" if fits else "numeric"
    if values.cast(pl.Float64, strict=False).null_count() == 0:
        return "double precision"
    if values.str.to_lowercase().is_in(INFERRED_BOOLEANS).all():
        return "boolean"
    return _temporal_type(values) or TEXT


def _temporal_type(values: pl.Series) -> str | None:
    if values.str.to_time("%H:%M:%S", strict=False).null_count() == 0:
        return "time without time zone"
    if not values.str.contains(r"^\d{4}-\d{2}-\d{2}").all():
        return None  # only ISO 8601 dates: 01/02/2026 is ambiguous between countries
    if values.str.to_date("%Y-%m-%d", strict=False).null_count() == 0:
        return "date"
    try:
        parsed = values.str.to_datetime(strict=True, time_unit="us")
    except (pl.exceptions.PolarsError, ValueError):
        return None
    zoned = isinstance(parsed.dtype, pl.Datetime) and parsed.dtype.time_zone is not None
    return "timestamp with time zone" if zoned else "timestamp without time zone"


def infer_record_columns(
    rows: list[list[str]], columns: list[str], source_names: list[str]
) -> list[Column]:
    """Types as `infer_columns` finds them, from records already split into fields."""
    width = len(columns)
    frame = pl.DataFrame(
        [(row + [""] * width)[:width] for row in rows],
        schema={name: pl.String for name in columns},
        orient="row",
    )
    return [
        Column(name, column_type(frame[name]), source_name)
        for name, source_name in zip(columns, source_names, strict=True)
    ]
