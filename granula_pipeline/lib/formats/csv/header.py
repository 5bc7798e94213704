"""Find a CSV file's table: preamble lines before it, its header (or none) told from data by types,
header rows joined, a header of the wrong width fixed, a second table after it; the header's names
become column names a SQL user can type."""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.csv.tokens import Record, records, runs_on_unclosed
from granula_pipeline.lib.formats.names import column_names
from granula_pipeline.lib.formats.source import HEAD_BYTES, read_head
from granula_pipeline.lib.formats.types import NULL_TOKENS
from granula_pipeline.lib.model import Dialect

UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Header:
    """The header record: names as written, column names as loaded, where the data starts."""

    source_names: list[str]
    columns: list[str]
    data_offset: int
    first_data_line: int


def read_header(
    path: Path, codec: str = "utf-8", *, delimiter: str = ",", compression: str | None = None
) -> Header:
    """The header of `path` read as plain CSV with `delimiter` (`detect_layout` on its head);
    raise BadInputError if it has none that can be read. Offsets are in the decompressed bytes
    when the file is compressed."""
    head = read_head(path, compression)
    dialect = Dialect(delimiter=delimiter)
    return detect_layout(head, dialect, codec, whole=len(head) < HEAD_BYTES).header


@dataclass(frozen=True)
class Layout:
    """Where a file's table is: its header (as `Header`), and the dialect with what was found
    before it (preamble lines, header rows, a header fixed) and after it (a second table)."""

    header: Header
    dialect: Dialect


NUMBER = re.compile(r"^[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?%?$")
DATE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T].*)?$")
LAYOUT_RECORDS = 500
LAYOUT_BYTES = 128 * 1024  # read first for the layout; the whole head if it holds too few
MAX_HEADER_ROWS = 3
TYPED_SHARE = 0.8


def detect_layout(head: bytes, dialect: Dialect, codec: str, *, whole: bool) -> Layout:
    """Find the table in `head` (the file's start; `whole` if it is the whole file): lines of a
    preamble skipped, the header told from data by types (or set by the dialect's hints), header
    rows joined, a header whose width is off fixed, a second table found."""
    if not head.strip():
        raise BadInputError("the file is empty: it has no header and no rows")
    offset = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
    found = _records(head, (offset, LAYOUT_BYTES), dialect, codec)
    if len(head) > LAYOUT_BYTES:
        if len(found) > 2:
            whole = False  # enough records in the head's start: the rest is not read
        else:
            found = _records(head, (offset, len(head)), dialect, codec)
    if not whole and len(found) > 1:
        found = found[:-1]  # the last record may be cut by the end of the head
    if len(found) == 1 and runs_on_unclosed(head[offset:], found[0], dialect):
        raise BadInputError(
            f"no complete header line in the first {HEAD_BYTES // 1024} KiB", line=1
        )
    table = _table_start(found, dialect)
    header_at, rows, fix = _header(found, table, dialect)
    names = _names(found, header_at, rows, fix, dialect)
    if rows:
        start, end = offset + found[header_at].start, offset + found[header_at + rows - 1].end
        _check_header(head[start:end], names, codec, start, found[header_at].line)
    elif not found or all(not f.strip() for f in found[table].fields):
        raise BadInputError("the header line is blank", line=found[table].line if found else 1)
    data_at = header_at + rows if rows else table
    data_offset, first_line = _data_start(found, data_at)
    data_offset += offset
    preamble = tuple(
        head[offset + r.start : offset + r.end].decode(codec, errors="replace").strip()
        for r in found[: header_at if rows else table]
    )
    skip = found[header_at if rows else table].line - 1 if found else 0
    second = _second_table(found, data_at, len(names), names)
    return Layout(
        Header(names, column_names(names), data_offset, first_line),
        replace(
            dialect,
            header_rows=rows,
            skip_lines=skip,
            preamble=tuple(line for line in preamble if line),
            header_fix=fix,
            second_table_line=second,
        ),
    )


def _records(head: bytes, span: tuple[int, int], dialect: Dialect, codec: str) -> list[Record]:
    """The first LAYOUT_RECORDS records of bytes [start, end) of the head."""
    start, end = span
    return list(
        itertools.islice(records(memoryview(head)[start:end], dialect, codec), LAYOUT_RECORDS)
    )


def _check_header(raw: bytes, names: list[str], codec: str, offset: int, line: int) -> None:
    """The header's bytes (from `offset` in the file) are text in `codec`, and name something."""
    if b"\x00" in raw:
        raise BadInputError(
            "the header contains a NUL byte: this looks like a binary file", line=line
        )
    try:
        raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"the header is not {codec} (byte 0x{raw[exc.start]:02x} at offset "
            f"{offset + exc.start}); save the file as UTF-8",
            line=line,
        ) from exc
    if not any(name.strip() for name in names):
        raise BadInputError("the header line is blank", line=line)


def _data_start(found: list[Record], data_at: int) -> tuple[int, int]:
    """The offset and line where the table's rows start (past the end if it has none)."""
    if data_at < len(found):
        return found[data_at].start, found[data_at].line
    if not data_at:
        return 0, 1
    last = found[data_at - 1]
    return last.end, last.line + last.lines


def _runs(found: list[Record]) -> list[tuple[int, int, int]]:
    """(start, length, width) of each run of consecutive non-blank records of one width."""
    runs: list[tuple[int, int, int]] = []
    for index, record in enumerate(found):
        if record.blank:
            continue
        width = len(record.fields)
        if runs and runs[-1][0] + runs[-1][1] == index and runs[-1][2] == width:
            start, length, _ = runs[-1]
            runs[-1] = (start, length + 1, width)
        else:
            runs.append((index, 1, width))
    return runs


def _table_start(found: list[Record], dialect: Dialect) -> int:
    """The first record of the table: a hint's line, else the first long run of one width."""
    if dialect.skip_lines:
        return next((i for i, r in enumerate(found) if r.line > dialect.skip_lines), len(found))
    runs = [run for run in _runs(found) if run[2] >= 2] or _runs(found)
    if not runs:
        return len(found)
    wanted = min(3, max(length for _, length, _ in runs))
    start, _, width = next(run for run in runs if run[1] >= wanted)
    first = next(i for i, r in enumerate(found) if not r.blank)
    if len(found[first].fields) == width and not any(r.blank for r in found[first:start]):
        return first  # a few ragged rows under the header are not a preamble
    return start


def _kind(value: str) -> str:
    value = value.strip()
    if not value or value in NULL_TOKENS:
        return ""
    if NUMBER.match(value):
        return "number"
    return "date" if DATE.match(value) else "text"


def _column_kinds(rows: list[Record], width: int) -> list[str]:
    """Each column's kind (number, date or text) where most of the rows' values are one."""
    kinds = []
    for position in range(width):
        seen = Counter(_kind(r.fields[position]) for r in rows if position < len(r.fields))
        seen.pop("", None)
        total = sum(seen.values())
        kind, count = seen.most_common(1)[0] if seen else ("text", 0)
        kinds.append(kind if total and count >= TYPED_SHARE * total else "text")
    return kinds


def _looks_like_names(record: Record, kinds: list[str]) -> bool:
    """A row that is not data: in some typed column a value not of its type, and none that is."""
    clash = fits = False
    for value, kind in zip(record.fields, kinds, strict=False):
        if kind == "text" or not value.strip():
            continue
        if _kind(value) == kind:
            fits = True
        else:
            clash = True
    return clash and not fits


def _header(found: list[Record], table: int, dialect: Dialect) -> tuple[int, int, str]:
    """(index of the header's first record, how many records it spans, how it was fixed)."""
    if table >= len(found):
        return table, 0, ""
    width = len(found[table].fields)
    rows = [r for r in found[table + 1 :] if not r.blank and len(r.fields) == width][:200]
    kinds = _column_kinds(rows, width)
    before = found[table - 1] if table and not found[table - 1].blank else None
    if dialect.header_rows != 1 or dialect.skip_lines:  # set by a hint
        return table, dialect.header_rows, ""
    first = found[table]
    typed = any(kind != "text" for kind in kinds)
    fix = _refit(before, width, dialect) if before is not None else ""
    if fix and not _looks_like_names(first, kinds) and (typed or fix.startswith("delimited")):
        return table - 1, 1, fix
    if _looks_like_names(first, kinds) or not typed or _counts_up(first):
        count = 1
        following = found[table + 1 : table + MAX_HEADER_ROWS]
        for record in following:
            if record.blank or len(record.fields) != width or not _looks_like_names(record, kinds):
                break
            count += 1
        return table, count, ""
    return table, 0, ""


def _counts_up(record: Record) -> bool:
    """Names that are consecutive whole numbers (years: 2024, 2025, 2026), as in a pivot table."""
    numbers = [int(v) for v in (f.strip() for f in record.fields) if v.isdigit()]
    return len(numbers) >= 2 and all(b - a == 1 for a, b in itertools.pairwise(numbers))


def _refit(record: Record, width: int, dialect: Dialect) -> str:
    """How a record just before the table, of another width, is its header: split on another
    delimiter, or one name short (named column_N); empty if it is not."""
    raw = dialect.delimiter.join(record.fields)
    if len(record.fields) == width:
        return ""
    for delimiter in (",", ";", "\t", "|"):
        if delimiter != dialect.delimiter[0]:
            fields = next(csv.reader([raw], delimiter=delimiter), [])
            if len(fields) == width:
                return f"delimited by {delimiter!r}, unlike the rows"
    if len(record.fields) == width - 1 and width > 2:
        spaced = [name for name in record.fields if len(name.split()) == 2]
        if len(spaced) == 1 and sum(1 for name in record.fields if " " in name.strip()) == 1:
            return f"one delimiter short: {spaced[0]!r} split in two"
        return "one name short: the last column is named column_N"
    if len(record.fields) > width and not any(f.strip() for f in record.fields[width:]):
        return "trailing empty names dropped"
    return ""


def _names(found: list[Record], at: int, rows: int, fix: str, dialect: Dialect) -> list[str]:
    if not rows:
        width = len(found[at].fields) if at < len(found) else 1
        return [f"column_{i}" for i in range(1, width + 1)]
    record = found[at]
    names = list(record.fields)
    width = len(found[at + 1].fields) if at + 1 < len(found) else len(names)
    if fix.startswith("delimited"):
        delimiter = fix.split("'")[1].encode().decode("unicode_escape")
        names = next(csv.reader([dialect.delimiter.join(record.fields)], delimiter=delimiter))
    elif fix.startswith("one delimiter short"):
        at_name = next(i for i, name in enumerate(names) if len(name.split()) == 2)
        names[at_name : at_name + 1] = names[at_name].split()
    elif fix.startswith("one name short"):
        names.append(f"column_{width}")
    elif fix.startswith("trailing"):
        names = names[:width]
    for extra in found[at + 1 : at + rows]:
        names = [
            " ".join(part.strip() for part in (name, more) if part.strip())
            for name, more in zip(names, extra.fields, strict=False)
        ]
    return names


def _second_table(found: list[Record], data_at: int, width: int, names: list[str]) -> int | None:
    """The line a second table starts on: after a blank line, a record of another width that
    the next one repeats, or the header again."""
    for index in range(max(data_at, 1), len(found)):
        record, previous = found[index], found[index - 1]
        if record.blank or not previous.blank:
            continue
        following = next((r for r in found[index + 1 :] if not r.blank), None)
        other = len(record.fields) != width and (
            following is None or len(following.fields) == len(record.fields)
        )
        if other or record.fields == names:
            return record.line
    return None
