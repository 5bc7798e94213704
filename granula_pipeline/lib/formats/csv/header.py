"""Read a CSV file's header and turn its names into column names a SQL user can type."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.csv.records import ends_in_quote, first_record_end
from granula_pipeline.lib.formats.names import column_names
from granula_pipeline.lib.formats.source import HEAD_BYTES, read_head

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
