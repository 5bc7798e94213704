"""The file formats Granula reads, one module each behind the `Format` protocol."""

from __future__ import annotations

from granula_pipeline.lib.formats.base import Format, RecordFormat
from granula_pipeline.lib.formats.csv.reader import CsvFormat
from granula_pipeline.lib.formats.ndjson import NdjsonFormat
from granula_pipeline.lib.formats.parquet import ParquetFormat
from granula_pipeline.lib.model import CSV, NDJSON, PARQUET

FORMATS: dict[str, Format] = {CSV: CsvFormat(), NDJSON: NdjsonFormat(), PARQUET: ParquetFormat()}


def format_of(kind: str) -> Format:
    """The reader of files of `kind` (`SourceFormat.kind`)."""
    return FORMATS[kind]


__all__ = ["FORMATS", "Format", "RecordFormat", "format_of"]
