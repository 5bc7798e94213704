"""Names a SQL user can type, made from the names files use: columns, and the tables of datasets."""

from __future__ import annotations

import re
import unicodedata

PG_IDENTIFIER_MAX_BYTES = 63


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


def table_name_for(dataset: str) -> str:
    """A dataset name as a SQL identifier: lower-case letters, digits and underscores."""
    name = re.sub(r"[^\w]+", "_", dataset.strip().lower()).strip("_")
    if not name:
        raise ValueError(f"dataset name {dataset!r} has no letters or digits")
    return f"_{name}"[:63] if name[0].isdigit() else name[:63]
