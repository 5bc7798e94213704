"""A CSV file's dialect, sniffed from its start: delimiter, quote, escape and record terminator.

First the cheap test: the file read as plain RFC 4180 with the delimiter of its first line gives
records of one width (a header-and-rows table) and no sign of another dialect: then it is plain,
and goes to COPY as bytes. Otherwise every candidate dialect parses the start of the file and is
scored by CleverCSV's data consistency measure (van den Burg et al., 2019): the pattern score
(rows of few distinct widths, many fields) times the type score (the share of cells that look
like a value: a number, a date, a word, empty), and the best wins; ties go to the plainer one.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from granula_pipeline.lib.formats.csv.records import first_record_end
from granula_pipeline.lib.formats.csv.tokens import records, unescaped_quotes
from granula_pipeline.lib.model import BACKSLASH, CR, CRLF, DOUBLED, LF, MIXED, NO_ESCAPE, Dialect

DELIMITERS = (",", ";", "|", "\t")
# The candidates the consistency search tries, plainest first (ties go to the earlier).
CANDIDATE_DELIMITERS = (",", ";", "\t", "|", ", ", " ", ":")
# The usual delimiters: believed even when the header is the odd row out (written with another).
STRONG_DELIMITERS = (",", ";", "\t", "|", ", ")
SNIFF_CHARS = 64 * 1024
SNIFF_RECORDS = 200
_VALUE = re.compile(
    r"""^(?:
      [-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?%?          # a number
    | \d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?
        (?:Z|[+-]\d{2}:?\d{2})?                                    # a date, a timestamp
    | \d{1,2}:\d{2}(?::\d{2})?                                     # a time
    | (?:https?|ftp)://\S+ | [\w.+-]+@[\w-]+\.[\w.-]+              # a URL, an e-mail
    | [^\W_](?:[\w .\-/&()#+%@'!?:]*[\w.)%!?])?                    # words
    )$""",
    re.VERBOSE,
)


def sniff_delimiter(head: bytes) -> str:
    """The delimiter of `, ; | tab` that splits the first record into the most fields (ties go to
    the earlier, the comma first); a comma if none splits it."""
    end = first_record_end(head) or len(head)
    line = head[:end].decode("utf-8", errors="replace").split("\r")[0]  # CR alone ends it too
    fields = {d: len(next(csv.reader([line], delimiter=d), [])) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: fields[d])
    return best if fields[best] > 1 else ","


def terminator(text: str) -> str:
    """LF, CRLF, CR, or mixed (lone CRs and LFs both), as the sample's line ends say."""
    crlf = text.count("\r\n")
    lone_cr, lone_lf = text.count("\r") - crlf, text.count("\n") - crlf
    if lone_cr and (lone_lf or crlf):
        return MIXED
    if lone_cr:
        return CR
    return CRLF if crlf and crlf >= lone_lf else LF


def sniff(sample: bytes, codec: str, hints: Mapping[str, Any], first_guess: str) -> Dialect:
    """The dialect of the file whose start is `sample`; facts in `hints` are taken as set."""
    text = sample[:SNIFF_CHARS].decode(codec, errors="replace")
    ends = terminator(text)
    fixed = {key: hints[key] for key in ("delimiter", "quote", "escape") if key in hints}
    plain = Dialect(delimiter=fixed.get("delimiter", first_guess), terminator=ends)
    if set(fixed) >= {"delimiter", "quote", "escape"}:
        best = Dialect(fixed["delimiter"], fixed["quote"], fixed["escape"], ends)
    elif _consistent(plain, sample) and not _other_signs(text, plain):
        best = plain
    else:
        best = _most_consistent(sample, text, ends, fixed)
    return Dialect(
        best.delimiter,
        best.quote,
        best.escape,
        hints.get("terminator", ends),
        int(hints.get("header_rows", 1)),
        int(hints.get("skip_lines", 0)),
    )


def _widths(dialect: Dialect, sample: bytes) -> list[list[str]]:
    rows = []
    for record in records(memoryview(sample)[: SNIFF_CHARS * 2], dialect):
        if not record.blank:
            rows.append(record.fields)
        if len(rows) >= SNIFF_RECORDS:
            break
    return rows


def _consistent(dialect: Dialect, sample: bytes) -> bool:
    widths = {len(row) for row in _widths(dialect, _whole_lines(sample))}
    return len(widths) == 1 and widths.pop() >= 2  # one column: another delimiter may split it


def _whole_lines(sample: bytes) -> bytes:
    """The sample up to its last line end: a record cut by the sample's end is no evidence."""
    cut = max(sample.rfind(b"\n", 0, SNIFF_CHARS * 2), sample.rfind(b"\r", 0, SNIFF_CHARS * 2))
    return sample[: cut + 1] if cut > 0 else sample


def _other_signs(text: str, plain: Dialect) -> bool:
    """What a consistent plain reading can still hide: a backslash-escaped quote, quotes not
    escaped inside quotes, a space after every delimiter, records ended by CR alone."""
    d = plain.delimiter
    spaced = text.count(d + " ") >= max(1, text.count(d) * 0.9)
    return plain.terminator in (CR, MIXED) or '\\"' in text or spaced or _unescaped(text, d, '"')


def _unescaped(text: str, delimiter: str, quote: str) -> bool:
    return unescaped_quotes(text[: SNIFF_CHARS // 4], delimiter, quote)


def _most_consistent(sample: bytes, text: str, ends: str, fixed: Mapping[str, Any]) -> Dialect:
    sample = _whole_lines(sample)
    delimiters = [fixed["delimiter"]] if "delimiter" in fixed else _delimiters(text)
    quotes = [fixed["quote"]] if "quote" in fixed else ['"'] + (["'"] if "'" in text else [])
    escapes = [fixed["escape"]] if "escape" in fixed else _escapes(text)
    best, best_score = Dialect(delimiters[0], quotes[0], escapes[0], ends), -1.0
    for delimiter in delimiters:
        for quote in quotes:
            for escape in escapes:
                candidate = Dialect(delimiter, quote, escape, ends)
                rows = _widths(candidate, sample)
                if delimiter not in STRONG_DELIMITERS and not _header_agrees(rows):
                    continue
                score = consistency(rows)
                if score > best_score + 1e-9:
                    best, best_score = candidate, score
    if best.delimiter == ", " and text.count(", ") < 0.9 * text.count(","):
        best = replace(best, delimiter=",")  # a comma and a space in a few cells, not between
    if best.escape == DOUBLED and _unescaped(text, best.delimiter[0], best.quote):
        best = Dialect(best.delimiter, best.quote, NO_ESCAPE, ends)
    return best


def _header_agrees(rows: list[list[str]]) -> bool:
    """Whether the first row has the most common width: what a weak delimiter (`:` of times,
    spaces of text) must show to be believed; only the usual ones may leave an odd header."""
    widths = Counter(len(row) for row in rows)
    return bool(rows) and len(rows[0]) == widths.most_common(1)[0][0] > 1


def _delimiters(text: str) -> list[str]:
    """The usual delimiters, then any other punctuation found on most lines of the sample."""
    lines = [line for line in text.splitlines()[:SNIFF_RECORDS] if line.strip()]
    counts: Counter[str] = Counter()
    for line in lines:
        counts.update(set(line))
    others = [
        char
        for char, count in counts.most_common()
        if count >= len(lines) / 2
        and char.isascii()
        and not char.isalnum()
        and char not in "\"'\\ .-_" + "".join(CANDIDATE_DELIMITERS)
    ]
    return [*CANDIDATE_DELIMITERS, *others]


def _escapes(text: str) -> list[str]:
    """Doubled quotes first, unless quotes follow backslashes in the sample."""
    if '\\"' in text or "\\'" in text:
        return [BACKSLASH, DOUBLED]
    return [DOUBLED, BACKSLASH] if "\\" in text else [DOUBLED]


def consistency(rows: list[list[str]]) -> float:
    """CleverCSV's data consistency: pattern score times type score (0 for a single column)."""
    if not rows:
        return 0.0
    widths = Counter(len(row) for row in rows)
    pattern = sum(n * (width - 1) / width for width, n in widths.items()) / len(widths)
    cells = [cell for row in rows for cell in row]
    typed = sum(1 for cell in cells if not cell or _VALUE.match(cell))
    return pattern * max(typed / len(cells), 1e-6)
