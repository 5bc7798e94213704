"""The data Granula's stages hand each other: a file's format and plan, a table's columns, where a
chunk loads to, what a load did, and a file's record in the control tables."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import polars as pl

CSV, NDJSON, PARQUET = "csv", "ndjson", "parquet"


DOUBLED, BACKSLASH, NO_ESCAPE = "doubled", "backslash", "none"
LF, CRLF, CR, MIXED = "LF", "CRLF", "CR", "mixed"
# The facts of a CSV dialect a user may set (settings, a `.granula-dialect.json` in the folder).
DIALECT_HINTS = ("delimiter", "quote", "escape", "terminator", "header_rows", "skip_lines")


@dataclass(frozen=True)
class Dialect:
    """How a CSV file is written, as sniffed from its start (or set): how its fields and records
    are delimited, where its table starts, and whether its bytes can go to COPY as they are.

    `delimiter` is one character, `", "` (a comma and spaces) or `" "` (runs of spaces);
    `escape` is how a quote is written inside a quoted field: doubled (`""`, RFC 4180), after a
    backslash (`\\"`) or not at all (`"say "hi""`). `skip_lines` physical lines come before the
    header (the `preamble`, kept as written), `header_rows` records form the header (0: none,
    columns named column_1..N). `careful`: the bytes must go through the parser (a stray quote).
    """

    delimiter: str = ","
    quote: str = '"'
    escape: str = DOUBLED
    terminator: str = LF
    header_rows: int = 1
    skip_lines: int = 0
    preamble: tuple[str, ...] = ()
    second_table_line: int | None = None
    header_fix: str = ""
    careful: bool = False

    @property
    def copyable(self) -> bool:
        """Plain RFC 4180 records (what PostgreSQL's CSV COPY reads): the fast path."""
        return (
            not self.careful
            and len(self.delimiter) == 1
            and self.delimiter != " "
            and (self.quote, self.escape) == ('"', DOUBLED)
            and self.terminator in (LF, CRLF)
            and self.second_table_line is None
        )

    def facts(self) -> dict[str, Any]:
        """As `granula.files.dialect` stores it."""
        facts = asdict(self)
        facts["preamble"] = list(self.preamble)
        facts["copyable"] = self.copyable
        return facts

    @classmethod
    def stored(cls, facts: dict[str, Any] | None) -> Dialect | None:
        if not facts:
            return None
        known = {k: v for k, v in facts.items() if k in cls.__dataclass_fields__}
        known["preamble"] = tuple(known.get("preamble") or ())
        return cls(**known)


@dataclass(frozen=True)
class SourceFormat:
    """How a file's bytes are read: its format, its compression and, for CSV, its delimiter and
    dialect. `hints` are the dialect facts set rather than sniffed (`DIALECT_HINTS`); `dialect`
    is the whole dialect once known (a retry reads the file as its plan did)."""

    kind: str = CSV  # csv, ndjson or parquet
    compression: str | None = None  # gzip or None
    delimiter: str = ","
    hints: tuple[tuple[str, Any], ...] = ()
    dialect: Dialect | None = None


@dataclass(frozen=True)
class FileIdentity:
    """What identifies the bytes of a file as they were planned: the file they are in (device and
    inode) and its size and times. Every write changes the size or the modification time and the
    change time; setting the modification time back changes the change time, which no program
    can set back."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileIdentity:
        return cls(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

    @classmethod
    def stored(cls, *values: int | Decimal | None) -> FileIdentity | None:
        """From the columns st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns; None if unset."""
        numbers = [int(value) for value in values if value is not None]
        return cls(*numbers) if len(numbers) == len(values) == 5 else None

    def same_file(self, other: FileIdentity) -> bool:
        """Whether `other` is the same file (device and inode), whatever happened to it."""
        return (self.device, self.inode) == (other.device, other.inode)


@dataclass(frozen=True)
class ChunkPlan:
    """One chunk: the bytes [byte_start, byte_end) of the file, holding whole records only.

    For a compressed file the offsets are in the decompressed stream. A Parquet chunk is the row
    groups [row_group_start, row_group_end), rows from `row_start`; its bytes are those groups'
    and its `first_line` is the number of its first row.
    """

    index: int
    byte_start: int
    byte_end: int
    first_line: int
    planned_rows: int
    row_start: int | None = None
    row_group_start: int | None = None
    row_group_end: int | None = None

    @property
    def byte_count(self) -> int:
        return self.byte_end - self.byte_start


@dataclass(frozen=True)
class FilePlan:
    chunks: list[ChunkPlan]
    size_bytes: int
    content_hash: str

    @property
    def planned_rows(self) -> int:
        return sum(chunk.planned_rows for chunk in self.chunks)


@dataclass(frozen=True)
class Column:
    """A data column of a result table: SQL name, PostgreSQL type and the header it came from."""

    name: str
    pg_type: str
    source_name: str


@dataclass(frozen=True)
class ReadLimits:
    """The most that reading one file may cost (None: no limit): the bytes a gzip'd file expands
    to, in all and per compressed byte, and the length of its longest record."""

    max_decompressed_bytes: int | None = None
    max_gzip_ratio: float | None = None
    max_record_bytes: int | None = None


@dataclass(frozen=True)
class SurveyRequest:
    """A file to survey, read as `source` says; `planned` is its plan if it was planned before
    (a retry keeps it), and a new plan has chunks of at most `chunk_rows` and `max_bytes`, and
    refuses the file past `limits`."""

    path: Path
    source: SourceFormat
    planned: list[ChunkPlan]
    chunk_rows: int
    max_bytes: int
    limits: ReadLimits = ReadLimits()


@dataclass(frozen=True)
class Survey:
    """What loading a file needs to know; `plan` is None when the file was planned before."""

    encoding: str
    chunks: list[ChunkPlan]
    plan: FilePlan | None
    columns: list[Column]
    source: SourceFormat | None = None  # as surveyed: a CSV's delimiter and dialect sniffed


@dataclass(frozen=True)
class LoadTarget:
    """Where a file's chunks go: the file's id and encoding, its table and columns, and how its
    bytes are read (format, compression, CSV delimiter)."""

    file_id: int
    schema: str
    table: str
    columns: list[Column] = field(default_factory=list)
    encoding: str = "UTF8"
    format: str = CSV
    compression: str | None = None
    delimiter: str = ","
    # Our folders (inbox, failed/): where the file is a link, it must lead into one of them.
    folders: tuple[str, ...] = ()
    dialect: Dialect | None = None  # a CSV's dialect; None: plain RFC 4180


LINE_COLUMN = "_granula_line"


@dataclass(frozen=True)
class Rejected:
    """A record that cannot be loaded: where it starts, what it says, and why."""

    line: int
    raw_text: str
    reason: str


@dataclass
class ParsedChunk:
    """A chunk's records as columns with their lines (LINE_COLUMN), and those set aside;
    `typed` when the values are typed by the file itself (Parquet), so need no checking."""

    frame: pl.DataFrame
    rejected: list[Rejected] = field(default_factory=list)
    typed: bool = False


@dataclass(frozen=True)
class ChunkResult:
    chunk_index: int
    outcome: Literal["loaded", "already_loaded"]
    row_count: int
    rejected_rows: int
    method: Literal["copy", "parsed", "none"]
    seconds: float
    parts: int = 1


class FileStatus(StrEnum):
    """Where a file's load stands, as `granula.files.status` holds it."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """The load has ended: nothing more happens to the file unless it is retried."""
        return self in _FINAL

    @property
    def loaded(self) -> bool:
        """The load ended with the file's rows in its table (some may have been rejected)."""
        return self in (FileStatus.COMPLETED, FileStatus.COMPLETED_WITH_ERRORS)

    @classmethod
    def sql(cls, *statuses: FileStatus) -> str:
        """The statuses as a SQL list, for `status IN (...)` in a query text."""
        return ", ".join(f"'{status.value}'" for status in statuses)


_FINAL = frozenset({FileStatus.COMPLETED, FileStatus.COMPLETED_WITH_ERRORS, FileStatus.FAILED})
FINAL_STATUSES_SQL = FileStatus.sql(*_FINAL)
LOADED_STATUSES_SQL = FileStatus.sql(FileStatus.COMPLETED, FileStatus.COMPLETED_WITH_ERRORS)


@dataclass
class FileRecord:
    file_id: int
    partition_key: str
    filename: str
    path: str
    dataset: str
    priority: int
    size_bytes: int | None
    content_hash: str | None
    status: FileStatus
    total_chunks: int | None
    processed_chunks: int
    failed_chunks: int
    total_rows: int | None
    loaded_rows: int
    rejected_rows: int
    error_message: str | None
    table_name: str | None
    run_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    encoding: str = "UTF8"
    duplicate_of: int | None = None
    max_rejected_percent: float = 10.0
    columns: list[dict[str, str]] | None = None
    format: str = CSV
    compression: str | None = None
    delimiter: str = ","
    dialect: dict[str, Any] | None = None  # `Dialect.facts()`, once planned (CSV)
    # The file's identity when it was planned (`FileIdentity`), None before it is planned.
    st_dev: int | None = None
    st_ino: int | None = None
    st_size: int | None = None
    st_mtime_ns: int | None = None
    st_ctime_ns: int | None = None
    # The unguessable id the API hands out (migration 0008); the int file_id stays internal.
    public_id: UUID | None = None
    queued_at: datetime | None = None  # registered, or queued again (retry, a repeated ingest)
    # Computed by the `granula.file_status` view, the one place that says how.
    progress_percent: float = 0.0
    duration_seconds: float | None = None
    wait_seconds: float | None = None  # queued (registered) -> load started

    def __post_init__(self) -> None:
        self.status = FileStatus(self.status)
        self.progress_percent = float(self.progress_percent)
        if self.duration_seconds is not None:
            self.duration_seconds = float(self.duration_seconds)
        if self.wait_seconds is not None:
            self.wait_seconds = float(self.wait_seconds)
        if self.st_dev is not None and self.st_ino is not None:  # numeric(20) columns: Decimal
            self.st_dev, self.st_ino = int(self.st_dev), int(self.st_ino)

    @property
    def identity(self) -> FileIdentity | None:
        """The file as it was planned; None if not planned, or planned without it recorded."""
        return FileIdentity.stored(
            self.st_dev, self.st_ino, self.st_size, self.st_mtime_ns, self.st_ctime_ns
        )

    @property
    def done_folder(self) -> str | None:
        """Where the file goes once its load has ended: `processed` when every chunk loaded,
        `failed` otherwise; None while it is still loading."""
        if not self.status.is_final:
            return None
        return "processed" if self.status.loaded and not self.failed_chunks else "failed"

    def summary(self) -> dict[str, Any]:
        """The JSON a user sees from `granula status` and `granula ingest`."""
        record = asdict(self)
        for key in ("created_at", "queued_at", "started_at", "finished_at", "updated_at"):
            value = record[key]
            record[key] = value.isoformat() if value else None
        record["table"] = record["table_name"]
        record["error"] = record["error_message"]
        record["status"] = self.status.value
        return record


def readable_size(size_bytes: int) -> str:
    """A size as people read it: `812 B`, `4.2 KiB`, `150.7 MiB`, `1.3 GiB`."""
    if size_bytes < 1024:
        return f"{size_bytes} B"
    exponent = min(int(math.log(size_bytes, 1024)), 3)
    return f"{size_bytes / 1024**exponent:.1f} {('KiB', 'MiB', 'GiB')[exponent - 1]}"
