"""A file's text encoding, as PostgreSQL names it; binary and UTF-16 files are refused."""

from __future__ import annotations

import re
from pathlib import Path

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.source import HEAD_BYTES, read_head

BINARY_SIGNATURES = {
    b"PK\x03\x04": "a ZIP archive (an .xlsx workbook?)",
    b"\x1f\x8b": "a gzip archive",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xd0\xcf\x11\xe0": "an old Office document (.xls?)",
    b"PAR1": "a Parquet file",
}
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
TEXT_CONTROLS = frozenset(b"\t\n\r\f\b")
_CONTROL_BYTES = bytes(byte for byte in range(32) if byte not in TEXT_CONTROLS)
_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that surrogateescape could not decode
_NON_ASCII = re.compile("[^\x00-\x7f]")


def detect_encoding(path: Path, compression: str | None = None) -> str:
    """The file's encoding as PostgreSQL names it: UTF8, else WIN1252 or LATIN1.

    Refuses binary files and UTF-16 text, whose bytes a CSV reader cannot split into records.
    A compressed file is judged by its decompressed bytes.
    """
    head = read_head(path, compression)
    for signature, kind in BINARY_SIGNATURES.items():
        if head.startswith(signature):
            raise BadInputError(f"this is {kind}, not a CSV file; export it as CSV first")
    if head.startswith(UTF16_BOMS):
        raise BadInputError(
            "the file is UTF-16 text; save it as UTF-8 (CSV UTF-8) and drop it again"
        )
    start = head[:65536]
    controls = len(start) - len(start.translate(None, _CONTROL_BYTES))
    if start and controls > len(start) * 0.05:
        raise BadInputError(
            f"the file looks binary ({controls} control bytes in its first {len(start)}); "
            "export it as CSV"
        )
    text = head.decode("utf-8", errors="surrogateescape")
    invalid = len(_UNDECODED.findall(text))
    multibyte = len(_NON_ASCII.findall(text)) - invalid
    if invalid == 0 or multibyte > invalid or _cut_at_end(text, invalid, len(head)):
        return "UTF8"  # UTF-8 with a few bad bytes: those rows are rejected, the rest load
    try:
        head.decode("cp1252")
        return "WIN1252"
    except UnicodeDecodeError:
        return "LATIN1"


def _cut_at_end(text: str, invalid: int, size: int) -> bool:
    """The only undecodable bytes are a character cut off by the end of the sniffed head."""
    tail = text[-3:]
    cut = sum(1 for char in tail if "\udc80" <= char <= "\udcff")
    return size == HEAD_BYTES and cut == invalid
