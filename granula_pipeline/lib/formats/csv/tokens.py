"""CSV records as a dialect reads them, with where each one is: the careful way.

Files that are not plain RFC 4180 (another quote character, a backslash escape, unescaped quotes
inside quotes, a comma-and-space or space delimiter, records ended by CR alone, stray quotes) are
planned, sampled and parsed here, by Python's csv reader fed one physical line at a time: a line
ends at LF, CRLF or CR, so every terminator is one, and the reader stops at a record's end, so
the byte offset just past each record is known. Lenient like the readers people use: a quote
that does not close a field is kept as part of the cell.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, NamedTuple

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.model import BACKSLASH, NO_ESCAPE, Dialect

csv.field_size_limit(2**31 - 1)


class Record(NamedTuple):
    """One record: bytes [start, end) of the data given, its first physical line, its fields,
    and how many physical lines it spans."""

    start: int
    end: int
    line: int
    fields: list[str]
    lines: int

    @property
    def blank(self) -> bool:
        return not self.fields or (len(self.fields) == 1 and not self.fields[0].strip())


def reader_options(dialect: Dialect) -> dict[str, Any]:
    """The csv module's options for the dialect."""
    spaced = dialect.delimiter in (" ", ", ") or len(dialect.delimiter) > 1
    return {
        "delimiter": dialect.delimiter[0],
        "quotechar": dialect.quote,
        "escapechar": "\\" if dialect.escape == BACKSLASH else None,
        "doublequote": dialect.escape != BACKSLASH,
        "skipinitialspace": spaced,
        "strict": False,
    }


@lru_cache(maxsize=16)
def _quoted_field(delimiter: str, quote: str) -> re.Pattern[str]:
    """A quoted field on one line, quotes inside it escaped or not: from a quote opening a field
    to the first quote that ends one (followed by the delimiter or the line's end)."""
    d, q = re.escape(delimiter), re.escape(quote)
    field_end = f" *(?:{d}|[\\r\\n]*$)"
    # A lone quote may stand before another only if that one closes the field: no two ways to
    # read `""`, so a line with many never backtracks far.
    lone = f"{q}(?!{q})(?!{field_end})|{q}(?={q}{field_end})"
    inner = f"(?:{q}{q}|[^{q}]|{lone})*?"
    return re.compile(f"(?:(?<=^)|(?<={d})) *{q}({inner}){q}(?={field_end})", re.M)


def _escape_inner_quotes(text: str, dialect: Dialect) -> str:
    """Unescaped quotes inside a quoted field doubled: `"say "hi" now"` read as RFC 4180."""
    q = dialect.quote
    lone = re.compile(f"(?<!{re.escape(q)}){re.escape(q)}(?!{re.escape(q)})")

    def doubled(match: re.Match[str]) -> str:
        return match.group(0).replace(
            f"{q}{match.group(1)}{q}", q + lone.sub(q + q, match.group(1)) + q, 1
        )

    return _quoted_field(dialect.delimiter[0], q).sub(doubled, text)


def unescaped_quotes(text: str, delimiter: str, quote: str) -> bool:
    """Whether a quoted field of `text` holds a quote neither doubled nor closing it."""
    lone = re.compile(f"(?<!{re.escape(quote)}){re.escape(quote)}(?!{re.escape(quote)})")
    return any(
        lone.search(match.group(1).replace(quote * 2, ""))
        for match in _quoted_field(delimiter, quote).finditer(text)
    )


def records(
    data: bytes | memoryview, dialect: Dialect, codec: str = "utf-8", first_line: int = 1
) -> Iterator[Record]:
    """Every record of `data` (a last one may lack its terminator), blank lines included."""
    # bytes.splitlines ends lines at LF, CRLF and CR only (str.splitlines would at more).
    lines = bytes(data).splitlines(keepends=True)
    ends = list(itertools.accumulate(map(len, lines)))
    fed = [0]  # physical lines handed to the reader so far
    unescaped = dialect.escape == NO_ESCAPE
    spaces = dialect.delimiter == " "

    def feed() -> Iterator[str]:
        for raw in lines:
            fed[0] += 1
            text = raw.decode(codec, errors="surrogateescape")
            if unescaped and dialect.quote in text:
                text = _escape_inner_quotes(text, dialect)
            if spaces:
                body = text.rstrip("\r\n")
                text = body.strip(" ") + text[len(body) :]
            yield text

    reader = csv.reader(feed(), **reader_options(dialect))
    start, line = 0, 0
    try:
        for fields in reader:
            yield Record(start, ends[fed[0] - 1], first_line + line, fields, fed[0] - line)
            start, line = ends[fed[0] - 1], fed[0]
    except csv.Error as exc:  # with strict=False, only a field over the size limit is left
        raise BadInputError(
            f"a field of the record at byte {start} of its chunk runs on for over 2 GiB; "
            "check for a stray quote",
            line=first_line + line,
        ) from exc


def runs_on_unclosed(raw: bytes, record: Record, dialect: Dialect) -> bool:
    """Whether the file's last record (`raw`, its bytes) is a quoted field opened and never
    closed: it spans lines and holds an odd number of quotes (escaped ones aside)."""
    quote = dialect.quote.encode()
    escaped = raw.count(b"\\" + quote) if dialect.escape == BACKSLASH else 0
    return record.lines > 1 and (raw.count(quote) - escaped) % 2 == 1
