"""Retention: which files are old enough to forget, and removing what they loaded."""

from __future__ import annotations

import re
from datetime import timedelta

import psycopg
from psycopg import sql

from granula_pipeline.lib.control.files import files_where
from granula_pipeline.lib.model import FINAL_STATUSES_SQL, FileRecord

_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m` as a timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an age like 30d, 12h or 90m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def ended_before(conn: psycopg.Connection, age: timedelta) -> list[FileRecord]:
    """Files that ended (in any final status) longer than `age` ago."""
    return files_where(
        conn, f"f.status IN ({FINAL_STATUSES_SQL}) AND f.finished_at < now() - %s", (age,)
    )


def forget_file(conn: psycopg.Connection, record: FileRecord, *, delete_rows: bool) -> int:
    """Remove a file's control rows and, if asked, the rows it loaded; return rows deleted."""
    deleted = 0
    if delete_rows and record.table_name:
        schema, table = record.table_name.split(".", 1)
        cursor = conn.execute(
            sql.SQL("DELETE FROM {} WHERE _granula_file_id = %s").format(
                sql.Identifier(schema, table)
            ),
            (record.file_id,),
        )
        deleted = cursor.rowcount
    if delete_rows:
        conn.execute("DELETE FROM granula.files WHERE file_id = %s", (record.file_id,))
    return deleted
