"""Where a CSV record ends: the one rule every reader of Granula's applies.

A newline ends a record when an even number of quote characters precede it in the data (RFC 4180:
quotes only ever come in pairs inside a quoted field). That is the rule PostgreSQL's own CSV reader
applies, so a boundary found here is one `COPY` agrees with, whatever the quoted fields hold.
Everything else in this module is that rule applied to a stream, a chunk, or a range of one.
"""

from __future__ import annotations

import numpy as np

NEWLINE, QUOTE, CR = 10, 34, 13
WINDOW_BYTES = 64 * 1024


def ends_outside_quotes(newlines: np.ndarray, quotes: np.ndarray, in_quote: int = 0) -> np.ndarray:
    """The newline offsets, of those given, that end a record: an even number of quotes before
    them, counting `in_quote` (1 if the data starts inside a quoted field)."""
    if not len(quotes):
        return newlines if not in_quote else newlines[:0]
    ends: np.ndarray = newlines[((np.searchsorted(quotes, newlines) + in_quote) & 1) == 0]
    return ends


def record_ends(chunk: bytes | memoryview, in_quote: int = 0) -> tuple[np.ndarray, bool]:
    """Offsets just past each record of `chunk` that ends in it, and whether a quoted field holds
    a newline (then not every newline ends a record)."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    newlines = np.flatnonzero(data == NEWLINE)
    ends = ends_outside_quotes(newlines, np.flatnonzero(data == QUOTE), in_quote)
    return ends + 1, len(ends) != len(newlines)


def ends_in_quote(data: bytes) -> bool:
    """Whether `data` ends inside a quoted field (an odd number of quotes in it)."""
    return data.count(b'"') % 2 == 1


def whole_records(data: bytes) -> bytes:
    """The longest prefix of `data` that ends at a record boundary."""
    ends, _ = record_ends(data)
    return data[: int(ends[-1])] if len(ends) else b""


def first_record_end(data: bytes, start: int = 0) -> int | None:
    """Offset just past the first record from `start`; None if none ends within `data`."""
    ends, _ = record_ends(memoryview(data)[start:])
    return start + int(ends[0]) if len(ends) else None


def count_records(data: bytes, start: int, end: int) -> tuple[int, bool]:
    """How many records bytes [start, end) hold (a last one without a newline counts), and
    whether a quoted field among them holds a newline."""
    if data.find(b'"', start, end) == -1:  # no quotes: every newline ends a record
        last_end = data.rfind(b"\n", start, end) + 1 or start
        return data.count(b"\n", start, end) + (last_end < end), False
    offsets, quoted_newline = record_ends(memoryview(data)[start:end])
    last_end = start + int(offsets[-1]) if len(offsets) else start
    return len(offsets) + (last_end < end), quoted_newline


def split_records(chunk: bytes, parts: int) -> list[int]:
    """Offsets that cut `chunk` into at most `parts` runs of whole records of about equal size.

    Each cut is the first record end after its target. Quotes before the target are counted with
    `bytes.count`, and only a window after it is scanned: the chunk is never scanned whole.
    """
    cuts: list[int] = []
    counted_to = quotes = 0
    for k in range(1, parts):
        target = max(len(chunk) * k // parts, counted_to)
        quotes += chunk.count(b'"', counted_to, target)
        counted_to = target
        cut = _first_end_after(chunk, target, quotes & 1)
        if cut is None or cut >= len(chunk):
            break
        quotes += chunk.count(b'"', target, cut)
        cuts.append(cut)
        counted_to = cut
    return cuts


def _first_end_after(chunk: bytes, position: int, in_quote: int) -> int | None:
    window = WINDOW_BYTES
    while True:
        stop = min(len(chunk), position + window)
        ends, _ = record_ends(memoryview(chunk)[position:stop], in_quote)
        if len(ends):
            return position + int(ends[0])
        if stop == len(chunk):
            return None
        window *= 4


def has_stray_quotes(
    chunk: bytes, delimiter: str = ",", start: int = 0, end: int | None = None
) -> bool:
    """Whether the whole records in bytes [start, end) of `chunk` hold a quote inside an unquoted
    field (`12"N`, `a""b`).

    PostgreSQL reads such quotes as quoting and drops them, where csv and polars keep them, so
    those bytes must go through the parser rather than straight to COPY. An opening quote must
    follow a field's start, a closing one end the field or double a quote.
    """
    end = len(chunk) if end is None else end
    if chunk.find(b'"', start, end) == -1:
        return False
    data = np.frombuffer(chunk, dtype=np.uint8, count=end - start, offset=start)
    quotes = np.flatnonzero(data == QUOTE)
    before = np.where(quotes > 0, data[np.maximum(quotes - 1, 0)], NEWLINE)
    after_idx = np.minimum(quotes + 1, len(data) - 1)
    after = np.where(quotes + 1 < len(data), data[after_idx], NEWLINE)
    separator = ord(delimiter)
    edge_before = np.array([separator, NEWLINE, QUOTE], dtype=np.uint8)
    edge_after = np.array([separator, NEWLINE, QUOTE, CR], dtype=np.uint8)
    opening = (np.arange(len(quotes)) & 1) == 0
    stray = np.where(opening, ~np.isin(before, edge_before), ~np.isin(after, edge_after))
    return bool(stray.any())
