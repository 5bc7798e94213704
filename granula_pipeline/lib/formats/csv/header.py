"""Read a CSV file's header and turn its names into column names a SQL user can type."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.csv.records import ends_in_quote, first_record_end
from granula_pipeline.lib.formats.source import HEAD_BYTES, read_head

UTF8_BOM = b"\xef\xbb\xbf"
PG_IDENTIFIER_MAX_BYTES = 63


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
    """Read and check the first record of `path`; raise BadInputError if it is not a CSV header.

    Offsets are in the decompressed bytes when the file is compressed.
    """
    head = read_head(path, compression)
    if not head.strip():
        raise BadInputError("the file is empty: it has no header and no rows")
    offset = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
    end = first_record_end(head, offset)
    if end is None and len(head) < HEAD_BYTES and not ends_in_quote(head):
        end = len(head)  # the file is its header alone
    if end is None:
        raise BadInputError(
            f"no complete header line in the first {HEAD_BYTES // 1024} KiB", line=1
        )
    raw = head[offset:end]
    if b"\x00" in raw:
        raise BadInputError("the header contains a NUL byte: this looks like a binary file", line=1)
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"the header is not {codec} (byte 0x{raw[exc.start]:02x} at offset "
            f"{offset + exc.start}); save the file as UTF-8",
            line=1,
        ) from exc
    names = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    if not names or all(not name.strip() for name in names):
        raise BadInputError("the header line is blank", line=1)
    return Header(
        source_names=names,
        columns=column_names(names),
        data_offset=end,
        first_data_line=2 + raw.count(b"\n") - (1 if raw.endswith(b"\n") else 0),
    )


def column_names(source_names: list[str]) -> list[str]:
    """Lower-case snake_case names, unique and never blank.

    Leading underscores are stripped, so no name can clash with the `_granula_*` lineage columns.
    """
    columns: list[str] = []
    taken: set[str] = set()
    for position, name in enumerate(source_names, start=1):
        base = _snake_case(name) or f"column_{position}"
        candidate, suffix = base, 2
        while candidate in taken:
            candidate = _truncate(f"{base}_{suffix}", reserve=0)
            suffix += 1
        taken.add(candidate)
        columns.append(candidate)
    return columns


def _snake_case(name: str) -> str:
    text = unicodedata.normalize("NFC", name).strip().lower()
    text = re.sub(r"[^\w]+", "_", text).strip("_")
    if text and text[0].isdigit():
        text = f"_{text}"
    return _truncate(text, reserve=4)


def _truncate(text: str, reserve: int) -> str:
    limit = PG_IDENTIFIER_MAX_BYTES - reserve
    while len(text.encode("utf-8")) > limit:
        text = text[:-1]
    return text
