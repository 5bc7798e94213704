"""What a loaded table looks like to someone browsing it: its columns, a few rows, rejections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from granula_pipeline.lib.model import FileRecord


@dataclass(frozen=True)
class TableColumn:
    name: str
    data_type: str
    description: str | None


@dataclass(frozen=True)
class FileTable:
    """A file's table: its columns, the file's first rows, its first rejected rows."""

    database: str
    table_name: str
    columns: list[TableColumn]
    preview_names: list[str]
    preview_rows: list[tuple[Any, ...]]
    rejected: list[tuple[int, str, str]]


def file_table(conn: psycopg.Connection, record: FileRecord, *, rows: int) -> FileTable | None:
    """The table `record` loaded into, with up to `rows` of its rows and rejected rows."""
    if not record.table_name:
        return None
    schema, table = record.table_name.split(".", 1)
    columns = conn.execute(
        """
        SELECT column_name, data_type, col_description(%s::regclass, ordinal_position)
        FROM information_schema.columns WHERE table_schema = %s AND table_name = %s
        ORDER BY ordinal_position
        """,
        (record.table_name, schema, table),
    ).fetchall()
    preview = conn.execute(
        sql.SQL("SELECT * FROM {} WHERE _granula_file_id = %s LIMIT %s").format(
            sql.Identifier(schema, table)
        ),
        (record.file_id, rows),
    )
    names = [d.name for d in preview.description or []]
    preview_rows = preview.fetchall()
    rejected = conn.execute(
        "SELECT line_number, reason, left(raw_text, 120) FROM granula.rejected_rows "
        "WHERE file_id = %s ORDER BY line_number LIMIT %s",
        (record.file_id, rows),
    ).fetchall()
    return FileTable(
        database=conn.info.dbname,
        table_name=record.table_name,
        columns=[TableColumn(*column) for column in columns],
        preview_names=names,
        preview_rows=preview_rows,
        rejected=rejected,
    )
