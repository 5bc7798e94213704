"""Names a SQL user can type, made from the names files use: columns, and the tables of datasets.

Every name is an identifier PostgreSQL keeps as it is: at most 63 bytes of UTF-8 (it would cut a
longer one silently, merging names that differ further on), never one of its system columns, never
Granula's `_granula_*` lineage columns. Texts are compared in Unicode NFC, so a name typed with
composed or decomposed accents is the same name.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection, Iterator, Mapping

from granula_pipeline.lib.errors import BadInputError

PG_IDENTIFIER_MAX_BYTES = 63
PG_MAX_COLUMNS = 1600
LINEAGE_COLUMN_COUNT = 3  # _granula_file_id, _granula_chunk_index, _granula_row: load/tables.py
MAX_DATA_COLUMNS = PG_MAX_COLUMNS - LINEAGE_COLUMN_COUNT
# PostgreSQL refuses a user column of these names.
SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})
HASH_BYTES = 3  # 6 hex digits

HeaderKey = tuple[str, int]
"""A header as a table remembers it: its text in NFC, and which occurrence of that text it is."""


def header_keys(source_names: list[str]) -> list[HeaderKey]:
    """Each header's NFC text and occurrence (1 for the first `id`, 2 for a second `id`...)."""
    seen: dict[str, int] = {}
    keys = []
    for name in source_names:
        text = nfc(name)
        seen[text] = seen.get(text, 0) + 1
        keys.append((text, seen[text]))
    return keys


def column_names(source_names: list[str]) -> list[str]:
    """Lower-case snake_case names, unique and never blank, for a file's header on its own.

    Leading underscores are stripped, so no name can clash with the `_granula_*` lineage columns.
    """
    return assign_columns(source_names)


def assign_columns(
    source_names: list[str],
    *,
    known: Mapping[HeaderKey, str] | None = None,
    taken: Collection[str] = (),
    unclaimed: Collection[str] = (),
) -> list[str]:
    """The column of each header: the one `known` gives it, or else a new name distinct from
    every name in `taken` and `known` (and from each other).

    A new header whose own name is in `unclaimed` (a table's columns that no header is known to
    have made) takes that column. Same input, same names. A header of more columns than a table
    can hold is refused before any is named.
    """
    if len(source_names) > MAX_DATA_COLUMNS:
        raise BadInputError(
            f"the header has {len(source_names)} columns and a PostgreSQL table holds at most "
            f"{MAX_DATA_COLUMNS} besides Granula's {LINEAGE_COLUMN_COUNT}: split the file into "
            "files of fewer columns"
        )
    known = known or {}
    used = {*taken, *known.values(), *SYSTEM_COLUMNS}
    free = set(unclaimed) - set(known.values())
    numbering: dict[str, int] = {}
    names = []
    for position, key in enumerate(header_keys(source_names), start=1):
        name = known.get(key)
        if name is None:
            own = identifier(key[0]) or f"column_{position}"
            name = own if own in free else _distinct(own, used, numbering)
            free.discard(name)
            used.add(name)
        names.append(name)
    return names


def identifier(text: str) -> str:
    """`text` as lower-case snake_case of at most 63 bytes; '' if it has no letter or digit.

    A name cut short ends in a hash of the whole text, so texts that differ after the cut get
    different names.
    """
    name = re.sub(r"[^\w]+", "_", nfc(nfc(text).strip().lower())).strip("_")
    if name and name[0].isdigit():
        name = f"_{name}"
    if len(name.encode()) <= PG_IDENTIFIER_MAX_BYTES:
        return name
    return _fit(name, f"_{_digest(nfc(text))}")


def _distinct(name: str, used: set[str], numbering: dict[str, int]) -> str:
    """`name`, or else `name_2`, `name_3`... (cut to fit) whichever is not used yet.

    Candidates for different numbers always differ (each ends in `_<digits>`), so the search ends
    within len(used) + 1 tries; `numbering` remembers where it stopped for each name, so a header
    of thousands of equal names is named in linear time.
    """
    if name not in used:
        return name
    number = numbering.get(name, 2)
    while (candidate := _fit(name, f"_{number}")) in used:
        number += 1
    numbering[name] = number + 1
    return candidate


def _fit(name: str, suffix: str) -> str:
    """`name` cut (at a character boundary) so that it ends in `suffix` within 63 bytes."""
    room = PG_IDENTIFIER_MAX_BYTES - len(suffix.encode())
    head = name.encode()[:room].decode("utf-8", errors="ignore").rstrip("_")
    return f"{head or 'x'}{suffix}"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=HASH_BYTES).hexdigest()


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def table_name_for(dataset: str) -> str:
    """A dataset's own table name: lower-case letters, digits and underscores, within 63 bytes
    (a longer one cut and ended in a hash of the dataset). Two datasets may have the same own
    name (`Sales` and `sales`): `table_names_for` gives the alternatives."""
    name = identifier(dataset)
    if not name:
        raise ValueError(f"dataset name {dataset!r} has no letters or digits")
    return name


def table_names_for(dataset: str) -> Iterator[str]:
    """The table names a dataset may take, best first: its own, that name ended in a hash of the
    dataset, then numbered ones; endless, so one not yet taken is always found."""
    own = table_name_for(dataset)
    yield own
    hashed = _fit(own, f"_{_digest(nfc(dataset))}")
    if hashed != own:
        yield hashed
    number = 2
    while True:
        yield _fit(hashed, f"_{number}")
        number += 1
