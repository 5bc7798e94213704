"""Read back a file's loaded rows, in a stable order, as the old service's results endpoint did."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from granula_pipeline.lib.model import FileRecord

MAX_LIMIT = 1000


class TableGone(LookupError):
    """The file's table no longer exists: dropped or renamed after the file loaded."""


def file_results(
    conn: psycopg.Connection, record: FileRecord, *, limit: int = 100, offset: int = 0
) -> dict[str, Any]:
    """`items` (id, chunk_index, data keyed by column), `total`, `limit`, `offset`."""
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    if not record.table_name:
        return {"items": [], "total": 0, "limit": limit, "offset": offset}
    schema, table = record.table_name.split(".", 1)
    target = sql.Identifier(schema, table)
    found = conn.execute("SELECT to_regclass(%s)", (target.as_string(conn),)).fetchone()
    if not found or found[0] is None:
        raise TableGone(
            f"the table {record.table_name} that file {record.file_id} loaded into no longer "
            "exists (dropped or renamed since); `granula retry` cannot bring it back: drop the "
            "file into the inbox again to reload it"
        )
    total_row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE _granula_file_id = %s").format(target),
        (record.file_id,),
    ).fetchone()
    cursor = conn.cursor(row_factory=dict_row)
    rows = cursor.execute(
        sql.SQL(
            "SELECT * FROM {} WHERE _granula_file_id = %s "
            "ORDER BY _granula_chunk_index, ctid LIMIT %s OFFSET %s"
        ).format(target),
        (record.file_id, limit, offset),
    ).fetchall()
    items = []
    for position, row in enumerate(rows, start=offset + 1):
        chunk_index = row.pop("_granula_chunk_index")
        row.pop("_granula_file_id")
        items.append({"id": position, "chunk_index": chunk_index, "data": row})
    return {
        "items": items,
        "total": total_row[0] if total_row else 0,
        "limit": limit,
        "offset": offset,
    }
