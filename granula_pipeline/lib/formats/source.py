"""Which format a file is in (from its name), its CSV delimiter, and its bytes, decompressed;
a file opened once, so that what is read is that very file whatever becomes of its name."""

from __future__ import annotations

import gzip
import io
import json
import mimetypes
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.csv.dialect import sniff_delimiter
from granula_pipeline.lib.model import (
    BACKSLASH,
    CR,
    CRLF,
    CSV,
    DIALECT_HINTS,
    DOUBLED,
    LF,
    MIXED,
    NDJSON,
    NO_ESCAPE,
    PARQUET,
    ChunkPlan,
    FileIdentity,
    ReadLimits,
    SourceFormat,
)

GZIP = "gzip"
TSV_TYPE = "text/tab-separated-values"
# Python's table lacks these. Registered for anyone asking mimetypes, but looked up here first:
# `mimetypes.init()` (which dagster-webserver calls on import) forgets registrations.
OWN_CONTENT_TYPES = {
    ".parquet": "application/vnd.apache.parquet",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/jsonl",
}
for _suffix, _type in OWN_CONTENT_TYPES.items():
    mimetypes.add_type(_type, _suffix)

FORMAT_BY_CONTENT_TYPE: dict[str, str] = {
    "text/csv": CSV,
    "application/csv": CSV,
    "text/plain": CSV,
    TSV_TYPE: CSV,
    "application/x-ndjson": NDJSON,
    "application/jsonl": NDJSON,
    "application/vnd.apache.parquet": PARQUET,
}
# How much of a file's start is read to judge it: its encoding, delimiter and header.
HEAD_BYTES = 1024 * 1024


def content_type(path: Path) -> tuple[str, str | None]:
    """The content type that the file's name says, and its compression (`gzip` or None)."""
    guessed, encoding = mimetypes.guess_type(path.name)
    stem = path.name.lower().removesuffix(".gz") if encoding == GZIP else path.name.lower()
    guessed = OWN_CONTENT_TYPES.get(Path(stem).suffix, guessed)
    return guessed or "application/octet-stream", encoding


def identify(path: Path, *, csv_delimiter: str = "", read_at: Path | None = None) -> SourceFormat:
    """The file's format from its name; for a CSV, the dialect facts set for it (`hints`: its
    `.granula-dialect.json`, then `.tsv`'s tab or `csv_delimiter`) and a first guess of its
    delimiter, which the survey's sniffer may correct unless it was set.

    The guess is the most frequent of `, ; | tab` outside quotes on the first line, read at
    `read_at` (the opened file's `OpenedFile.path`) if given, else at `path`.
    """
    guessed, encoding = content_type(path)
    kind = FORMAT_BY_CONTENT_TYPE.get(guessed)
    if kind is None:
        raise BadInputError(
            f"content type {guessed} (from the name {path.name!r}) is not a format Granula reads: "
            "CSV, TSV, NDJSON/JSONL, Parquet, or gzip'd CSV/TSV"
        )
    if encoding is not None and (encoding != GZIP or kind != CSV):
        raise BadInputError(
            f"{path.name!r} is {encoding}-compressed; only CSV and TSV may be gzip'd "
            "(.csv.gz, .tsv.gz): decompress it and drop it again"
        )
    compression = GZIP if encoding == GZIP else None
    if kind != CSV:
        return SourceFormat(kind)
    hints = dialect_hints(path)
    if guessed == TSV_TYPE:
        hints["delimiter"] = "\t"
    elif csv_delimiter and "delimiter" not in hints:
        hints["delimiter"] = csv_delimiter
    delimiter = hints.get("delimiter") or sniff_delimiter(read_head(read_at or path, compression))
    return SourceFormat(CSV, compression, delimiter, tuple(sorted(hints.items())))


# A file's dialect may be set rather than sniffed: in `.<file name>.dialect.json` beside it, or
# for every file of its folder (its dataset) in `.granula-dialect.json`; the first found wins.
DATASET_DIALECT = ".granula-dialect.json"
_DELIMITER_WORDS = {"tab": "\t", "space": " ", "comma-space": ", ", "comma": ",", "semicolon": ";"}
_HINT_VALUES: dict[str, tuple[object, ...]] = {
    "quote": ('"', "'"),
    "escape": (DOUBLED, BACKSLASH, NO_ESCAPE),
    "terminator": (LF, CRLF, CR, MIXED),
}


def dialect_hints(path: Path) -> dict[str, Any]:
    """The dialect facts set for the file at `path` (`DIALECT_HINTS`), checked; {} if none."""
    for candidate in (path.parent / f".{path.name}.dialect.json", path.parent / DATASET_DIALECT):
        try:
            text = candidate.read_text()
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        try:
            hints = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInputError(
                f"{candidate.name} is not valid JSON (line {exc.lineno}, column {exc.colno}): "
                f"{exc.msg}; fix it or remove it"
            ) from exc
        return _checked(hints, candidate.name)
    return {}


def _checked(hints: object, name: str) -> dict[str, Any]:
    if not isinstance(hints, dict) or set(hints) - set(DIALECT_HINTS):
        unknown = sorted(set(hints) - set(DIALECT_HINTS)) if isinstance(hints, dict) else hints
        raise BadInputError(
            f"{name}: unknown dialect settings {unknown!r}; known: {', '.join(DIALECT_HINTS)}"
        )
    checked = dict(hints)
    if "delimiter" in checked:
        delimiter = _DELIMITER_WORDS.get(str(checked["delimiter"]), checked["delimiter"])
        if not isinstance(delimiter, str) or not (len(delimiter) == 1 or delimiter == ", "):
            raise BadInputError(
                f"{name}: delimiter {checked['delimiter']!r} must be one character, "
                "`tab`, `space` or `comma-space`"
            )
        checked["delimiter"] = delimiter
    for key, allowed in _HINT_VALUES.items():
        if key in checked and checked[key] not in allowed:
            raise BadInputError(f"{name}: {key} must be one of {', '.join(map(str, allowed))}")
    for key in ("header_rows", "skip_lines"):
        if key in checked and (not isinstance(checked[key], int) or checked[key] < 0):
            raise BadInputError(f"{name}: {key} must be a whole number, 0 or more")
    return checked


# A file opened here can be opened again by this name of its descriptor: the same file, even once
# it is renamed, deleted, or its name given to another. Linux has it; elsewhere the name opened.
DESCRIPTOR_NAMES = Path("/proc/self/fd")


class NotRegularFile(BadInputError):
    """The name leads to a directory, a pipe, a device: nothing Granula reads."""


@dataclass(frozen=True)
class OpenedFile:
    """A file opened for reading: its identity then, how many names (hard links) it has, and
    `path`, which reads this very file, not whatever its name leads to by then."""

    descriptor: int
    identity: FileIdentity
    links: int
    path: Path

    def identity_now(self) -> FileIdentity:
        return FileIdentity.of(os.fstat(self.descriptor))


@contextmanager
def open_file(path: Path) -> Iterator[OpenedFile]:
    """Open `path` itself once, never a symbolic link's target, never waiting on a pipe; anything
    but a regular file is refused. Raises FileNotFoundError, or OSError (ELOOP) for a link."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode):
            raise NotRegularFile(f"{path} is not a regular file; copy the file itself in")
        own_name = DESCRIPTOR_NAMES / str(descriptor)
        yield OpenedFile(
            descriptor,
            FileIdentity.of(found),
            found.st_nlink,
            own_name if DESCRIPTOR_NAMES.is_dir() else path,
        )
    finally:
        os.close(descriptor)


def read_head(path: Path, compression: str | None = None) -> bytes:
    """The first HEAD_BYTES of the file's (decompressed) bytes."""
    with open_source(path, compression) as source:
        return source.read(HEAD_BYTES)


@contextmanager
def open_source(
    path: Path, compression: str | None = None, limits: ReadLimits | None = None
) -> Iterator[BinaryIO]:
    """The file's bytes as a stream, decompressed as it is read; gzip damage is bad input, and
    so is a gzip'd file that expands past `limits`, raised by the read that passes them."""
    with gzip_errors(), path.open("rb") as raw:
        if compression != GZIP:
            yield raw
            return
        with _BoundedGzip(raw, limits or ReadLimits()) as stream:
            yield stream  # type: ignore[misc]


# A gzip'd file is judged on its ratio only once it has expanded this far: a small file of
# repeated values can be very compressible and is no threat.
RATIO_APPLIES_FROM = 8 * 1024 * 1024
# How often the limits are checked as a stream expands: a bomb is stopped within this much.
CHECK_BYTES = 1024 * 1024


class _BoundedGzip(gzip.GzipFile):
    """A gzip stream that counts the bytes it expands to as they are read, and raises
    BadInputError as soon as they pass the cap or the ratio to the compressed bytes read."""

    def __init__(self, raw: BinaryIO, limits: ReadLimits):
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw
        self._limits = limits

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all, if negative), checked every CHECK_BYTES as they expand."""
        wanted = None if size is None or size < 0 else size
        pieces = []
        cap = self._limits.max_decompressed_bytes
        while wanted is None or wanted > 0:
            step = CHECK_BYTES if wanted is None else min(wanted, CHECK_BYTES)
            if cap is not None:  # stop one byte past the cap: enough to know it is passed
                step = min(step, cap + 1 - self.tell())
            piece = super().read(step)
            self._check(self.tell())
            if not piece:
                break
            pieces.append(piece)
            wanted = None if wanted is None else wanted - len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = super().seek(offset, whence)
        self._check(position)
        return position

    def _check(self, expanded: int) -> None:
        cap, ratio = self._limits.max_decompressed_bytes, self._limits.max_gzip_ratio
        compressed = max(self._raw.tell(), 1)
        if cap is not None and expanded > cap:
            raise self._refused(expanded, compressed, f"MAX_DECOMPRESSED_MB={cap // 2**20}")
        if ratio is not None and expanded > max(RATIO_APPLIES_FROM, ratio * compressed):
            raise self._refused(expanded, compressed, f"MAX_GZIP_RATIO={ratio:g}")

    def _refused(self, expanded: int, compressed: int, limit: str) -> BadInputError:
        return BadInputError(
            f"the gzip file expands to more than {expanded // 2**20} MiB "
            f"({expanded // compressed}:1 over its first {_size(compressed)} compressed), "
            f"over {limit}; decompress it and check it, split it, or raise the limit"
        )


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 2**10:.0f} KiB"


@contextmanager
def gzip_errors() -> Iterator[None]:
    """Turn the gzip module's errors (raised as the stream is read) into a clear BadInputError."""
    try:
        yield
    except EOFError as exc:
        raise BadInputError(f"the gzip file is truncated ({exc}); copy it again in full") from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise BadInputError(f"the gzip file is corrupt: {exc}; copy it again") from exc


def read_chunk_bytes(path: Path, chunk: ChunkPlan, compression: str | None = None) -> bytes:
    """The chunk's own bytes, and nothing before or after them.

    In a gzip'd file the range is in the decompressed stream: seeking there decompresses the
    bytes before it and throws them away, so memory holds the chunk only.
    """
    # That makes loading a gzip'd file of D bytes in chunks of S decompress about D²/2S bytes:
    # at MAX_DECOMPRESSED_MB's default cap (5000 MiB) in 64 MiB chunks some 190 GiB, about
    # 12 minutes at the 280 MiB/s gzip manages on one core; 1 GiB costs 8 GiB, some 30 s.
    # Bounded by the cap; a gzip index (zran-style access points) would make it linear.
    with open_source(path, compression) as source:
        source.seek(chunk.byte_start)
        data = source.read(chunk.byte_count)
    if len(data) != chunk.byte_count:
        raise BadInputError(
            f"the file changed after it was planned: expected {chunk.byte_count} bytes at offset "
            f"{chunk.byte_start}, found {len(data)}; drop it into the inbox again",
            line=chunk.first_line,
        )
    return data
