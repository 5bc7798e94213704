"""Split a file into chunks of whole records, by byte offsets, in one streaming pass.

Records end where `formats.csv.records` says they do, so a chunk boundary found here is one
`COPY` agrees with, whatever the quoted fields hold.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from granula_pipeline.lib.errors import BadInputError, UnclosedQuote
from granula_pipeline.lib.formats.csv.records import NEWLINE, QUOTE, ends_outside_quotes
from granula_pipeline.lib.formats.csv.tokens import Record, records, runs_on_unclosed
from granula_pipeline.lib.formats.source import open_source
from granula_pipeline.lib.model import ChunkPlan, Dialect, FilePlan, ReadLimits

BLOCK_BYTES = 8 * 1024 * 1024


class _Cutter:
    """Accumulates record ends and closes a chunk every `chunk_rows` records or `max_bytes`."""

    def __init__(self, data_offset: int, first_line: int, chunk_rows: int, max_bytes: int):
        self.chunk_rows = chunk_rows
        self.max_bytes = max_bytes
        self.start = data_offset
        self.start_line = first_line
        self.rows = 0
        self.chunks: list[ChunkPlan] = []

    def close(self, end: int, rows: int, line_after: int) -> None:
        self.chunks.append(ChunkPlan(len(self.chunks), self.start, end, self.start_line, rows))
        self.start, self.start_line, self.rows = end, line_after, 0

    def feed(self, record_ends: np.ndarray, lines_after: np.ndarray) -> None:
        """record_ends: absolute offsets just past each record's newline, ascending."""
        i = 0
        while i < len(record_ends):
            remaining = record_ends[i:]
            by_rows = self.chunk_rows - self.rows - 1
            by_bytes = int(np.searchsorted(remaining, self.start + self.max_bytes, side="left"))
            cut = min(by_rows, by_bytes)
            if cut >= len(remaining):
                self.rows += len(remaining)
                return
            self.close(int(remaining[cut]), self.rows + cut + 1, int(lines_after[i + cut]))
            i += cut + 1


class _LongestRecord:
    """Refuses a record longer than `max_bytes` as soon as the stream shows it, before a chunk
    holds it: a chunk op holds its chunk in memory, and a chunk holds whole records."""

    def __init__(self, data_offset: int, first_line: int, max_bytes: int | None, quoting: bool):
        self.max_bytes = max_bytes
        self.quoting = quoting
        self.start = data_offset  # where the record not yet ended starts, and its line
        self.line = first_line

    def feed(
        self, record_ends: np.ndarray, lines_after: np.ndarray, end: int, in_quote: int
    ) -> None:
        """record_ends/lines_after as `_Cutter.feed` takes them; `end`: the stream's bytes so far,
        `in_quote`: 1 if they end inside a quoted field."""
        if self.max_bytes is None:
            return
        if len(record_ends) and record_ends[-1] - self.start > self.max_bytes:
            lengths = np.diff(record_ends, prepend=self.start)
            longest = int(np.argmax(lengths))
            if lengths[longest] > self.max_bytes:
                raise self._refused(self.line if longest == 0 else int(lines_after[longest - 1]))
        if len(record_ends):
            self.start, self.line = int(record_ends[-1]), int(lines_after[-1])
        if end - self.start > self.max_bytes:
            raise self._refused(self.line, in_quote=bool(in_quote))

    def _refused(self, line: int, *, in_quote: bool = False) -> BadInputError:
        assert self.max_bytes is not None
        limit = self.max_bytes // 2**20
        what = "a record" if self.quoting else "a line"
        if in_quote:
            return BadInputError(
                f"a quoted field runs on for more than {limit} MiB, over MAX_RECORD_MB={limit}; "
                "check for a stray double quote",
                line=line,
            )
        return BadInputError(
            f"{what} more than {limit} MiB long, over MAX_RECORD_MB={limit}; "
            "split it or raise the limit",
            line=line,
        )


def plan_file(
    path: Path,
    *,
    data_offset: int,
    first_line: int,
    chunk_rows: int,
    max_bytes: int,
    compression: str | None = None,
    quoting: bool = True,
    limits: ReadLimits | None = None,
) -> FilePlan:
    """Plan the chunks of `path` after its header, and hash its whole content on the way.

    A compressed file is planned, and hashed, by its decompressed bytes, streamed block by block.
    Without `quoting` (NDJSON, whose strings cannot hold a raw newline) every newline ends a record.
    Past `limits` (a record too long, a gzip'd file expanding too far) the file is bad input,
    raised as soon as the stream passes them.
    """
    limits = limits or ReadLimits()
    cutter = _Cutter(data_offset, first_line, chunk_rows, max_bytes)
    longest = _LongestRecord(data_offset, first_line, limits.max_record_bytes, quoting)
    digest = hashlib.blake2b(digest_size=20)
    in_quote = 0
    lines_before = first_line
    record_line = first_line
    pos = 0
    previous_byte = NEWLINE
    # The hash runs on the other core (hashlib lets go of the GIL), one block behind the scan.
    with (
        open_source(path, compression, limits) as source,
        ThreadPoolExecutor(max_workers=1) as hasher,
    ):
        hashed = hasher.submit(digest.update, b"")
        while block := source.read(BLOCK_BYTES):
            hashed.result()
            hashed = hasher.submit(digest.update, block)
            skip = max(0, data_offset - pos)
            block_pos = pos
            pos += len(block)
            if skip >= len(block):
                continue
            data = np.frombuffer(block, dtype=np.uint8)[skip:]
            base = block_pos + skip
            newlines = np.flatnonzero(data == NEWLINE)
            quoted = quoting and block.find(b'"', skip) != -1
            quotes = np.flatnonzero(data == QUOTE) if quoted else newlines[:0]
            ends = ends_outside_quotes(newlines, quotes, in_quote)
            every = len(ends) == len(newlines)
            lines_after = (
                lines_before
                + 1
                + (np.arange(len(ends)) if every else np.searchsorted(newlines, ends))
            )
            in_quote = (in_quote + len(quotes)) & 1
            record_ends = ends + base + 1
            longest.feed(record_ends, lines_after, pos, in_quote)
            cutter.feed(record_ends, lines_after)
            if len(lines_after):
                record_line = int(lines_after[-1])
            lines_before += len(newlines)
            previous_byte = int(data[-1])
        hashed.result()
    if in_quote:
        raise UnclosedQuote(
            "a quoted field is opened but never closed; check for a stray double quote",
            line=record_line,
        )
    if pos > cutter.start:
        cutter.close(pos, cutter.rows + (previous_byte != NEWLINE), lines_before + 1)
    return FilePlan(chunks=cutter.chunks, size_bytes=pos, content_hash=digest.hexdigest())


def plan_careful(
    path: Path,
    dialect: Dialect,
    codec: str,
    *,
    data_offset: int,
    first_line: int,
    chunk_rows: int,
    max_bytes: int,
    names: list[str],
    compression: str | None = None,
    limits: ReadLimits | None = None,
) -> tuple[FilePlan, int | None]:
    """Plan a CSV file that is not plain RFC 4180 by parsing it in its `dialect`
    (`formats.csv.tokens`), so chunks end where that parser's records do; blank lines are not
    rows. The plan ends before a second table (after a blank line, the header again or records
    of another width than `names`): its line is returned with the plan; it is not loaded.
    """
    limits = limits or ReadLimits()
    cutter = _Cutter(data_offset, first_line, chunk_rows, max_bytes)
    digest = hashlib.blake2b(digest_size=20)
    carry, carry_start, line, pos = b"", data_offset, first_line, 0
    second: int | None = None
    table_end = data_offset
    last: tuple[Record, bytes] | None = None
    after_blank = False
    with open_source(path, compression, limits) as source:
        block = source.read(BLOCK_BYTES)
        while block:
            following = source.read(BLOCK_BYTES)
            digest.update(block)
            skip = max(0, data_offset - pos)
            pos += len(block)
            block, data = following, carry + block[skip:]
            if second is not None or not data:
                continue
            found = list(records(data, dialect, codec, line))
            if following and found:
                found.pop()  # may be cut by the block's end: read again with the next block
            ends, lines_after = [], []
            longest = limits.max_record_bytes or len(data) + 1
            for index, record in enumerate(found):
                if record.end - record.start > longest:
                    _check_length(record.end - record.start, record.line, limits)
                blank = record.blank
                if after_blank and not blank and _starts_table(found, index, names):
                    second, table_end = record.line, carry_start + record.start
                    break
                after_blank = blank
                if not blank:
                    ends.append(carry_start + record.end)
                    lines_after.append(record.line + record.lines)
            if found:
                last = (found[-1], data[found[-1].start : found[-1].end])
            cutter.feed(np.array(ends, dtype=np.int64), np.array(lines_after, dtype=np.int64))
            if found and second is None:
                line = found[-1].line + found[-1].lines
                carry_start += found[-1].end
                carry = data[found[-1].end :]
            else:
                carry = data
            _check_length(len(carry), line, limits)
    if second is None and last is not None and runs_on_unclosed(last[1], last[0], dialect):
        kind = "double quote" if dialect.quote == '"' else f"quote ({dialect.quote})"
        raise BadInputError(
            f"a quoted field is opened but never closed; check for a stray {kind}",
            line=last[0].line,
        )
    end = table_end if second is not None else carry_start
    if end > cutter.start:
        cutter.close(end, cutter.rows, line)
    return FilePlan(cutter.chunks, pos, digest.hexdigest()), second


def _check_length(length: int, line: int, limits: ReadLimits) -> None:
    if limits.max_record_bytes is not None and length > limits.max_record_bytes:
        raise _LongestRecord(0, line, limits.max_record_bytes, True)._refused(line)


def _starts_table(found: list[Record], index: int, names: list[str]) -> bool:
    """Whether the record at `index`, after a blank line, starts another table: the header
    again, or another width than the table's that the next record repeats."""
    record = found[index]
    if record.fields == names:
        return True
    following = next((r for r in found[index + 1 :] if not r.blank), None)
    return len(record.fields) != len(names) and (
        following is None or len(following.fields) == len(record.fields)
    )
