"""Read back a file's loaded rows a page at a time, in a stable order: chunk, then row order.

Pages are ranges of the index on (_granula_file_id, _granula_chunk_index, _granula_row): a page
after a cursor (`Cursor`, from the page before) costs the same however deep it is; a page at an
offset first finds its first row in the index alone (no table rows read), then reads the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from granula_pipeline.lib.load.tables import ROW_COLUMN
from granula_pipeline.lib.model import FileRecord, FileStatus

MAX_LIMIT = 1000
LOADED_STATUSES = (FileStatus.COMPLETED, FileStatus.COMPLETED_WITH_ERRORS)
_CURSOR = re.compile(r"(\d{1,10})\.(\d{1,19})\.(\d{1,19})")
_ORDER = sql.SQL("_granula_chunk_index, {}").format(sql.Identifier(ROW_COLUMN))


class TableGone(LookupError):
    """The file's table no longer exists: dropped or renamed after the file loaded."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: its last row's chunk and row order, and its position from 1."""

    chunk_index: int
    row: int
    position: int

    def token(self) -> str:
        return f"{self.chunk_index}.{self.row}.{self.position}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        match = _CURSOR.fullmatch(token)
        if match is None:
            raise ValueError("not a cursor: pass the `next` of the page before, unchanged")
        chunk_index, row, position = (int(part) for part in match.groups())
        return cls(chunk_index, row, position)


def file_results(
    conn: psycopg.Connection,
    record: FileRecord,
    *,
    limit: int = 100,
    offset: int = 0,
    after: Cursor | None = None,
) -> dict[str, Any]:
    """`items` (id, chunk_index, data keyed by column), `total`, `limit`, `offset`, and `next`:
    the cursor of the page after this one, None on the last page."""
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    empty = {"items": [], "total": 0, "limit": limit, "offset": offset, "next": None}
    if not record.table_name:
        return empty
    schema, table = record.table_name.split(".", 1)
    target = sql.Identifier(schema, table)
    found = conn.execute("SELECT to_regclass(%s)", (target.as_string(conn),)).fetchone()
    if not found or found[0] is None:
        raise TableGone(
            f"the table {record.table_name} that file {record.file_id} loaded into no longer "
            "exists (dropped or renamed since); `granula retry` cannot bring it back: drop the "
            "file into the inbox again to reload it"
        )
    start: tuple[int, int] | None
    if after is not None:
        start, inclusive, first = (after.chunk_index, after.row), False, after.position + 1
    elif offset:
        start, inclusive, first = _row_at(conn, target, record.file_id, offset), True, offset + 1
    else:
        start, inclusive, first = None, True, 1
    rows = _page(conn, target, record.file_id, start, inclusive=inclusive, limit=limit)
    items = []
    last: Cursor | None = None
    for position, row in enumerate(rows, start=first):
        chunk_index = row.pop("_granula_chunk_index")
        last = Cursor(chunk_index, row.pop(ROW_COLUMN), position)
        row.pop("_granula_file_id")
        items.append({"id": position, "chunk_index": chunk_index, "data": row})
    return {
        "items": items,
        "total": _total(conn, target, record),
        "limit": limit,
        "offset": offset if after is None else first - 1,
        "next": last.token() if last is not None and len(items) == limit else None,
    }


def _row_at(
    conn: psycopg.Connection, target: sql.Identifier, file_id: int, offset: int
) -> tuple[int, int]:
    """The (chunk, row order) of the file's row at `offset`, read from the index only."""
    found = conn.execute(
        sql.SQL(
            "SELECT _granula_chunk_index, {} FROM {} WHERE _granula_file_id = %s "
            "ORDER BY {} OFFSET %s LIMIT 1"
        ).format(sql.Identifier(ROW_COLUMN), target, _ORDER),
        (file_id, offset),
    ).fetchone()
    return (found[0], found[1]) if found else (2**31, 0)  # past the end: an empty page


def _page(
    conn: psycopg.Connection,
    target: sql.Identifier,
    file_id: int,
    start: tuple[int, int] | None,
    *,
    inclusive: bool,
    limit: int,
) -> list[dict[str, Any]]:
    where: sql.Composable = sql.SQL("_granula_file_id = %s")
    params: list[object] = [file_id]
    if start is not None:
        where = sql.SQL("{} AND (_granula_chunk_index, {}) {} (%s, %s)").format(
            where, sql.Identifier(ROW_COLUMN), sql.SQL(">=" if inclusive else ">")
        )
        params.extend(start)
    cursor = conn.cursor(row_factory=dict_row)
    return cursor.execute(
        sql.SQL("SELECT * FROM {} WHERE {} ORDER BY {} LIMIT %s").format(target, where, _ORDER),
        [*params, limit],
    ).fetchall()


def _total(conn: psycopg.Connection, target: sql.Identifier, record: FileRecord) -> int:
    """The rows of a loaded file as its record counts them; counted while it loads."""
    if record.status in LOADED_STATUSES:
        return record.loaded_rows
    counted = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE _granula_file_id = %s").format(target),
        (record.file_id,),
    ).fetchone()
    return counted[0] if counted else 0
