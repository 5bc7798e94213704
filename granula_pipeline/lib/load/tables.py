"""Create and extend the typed result table of a dataset; lineage columns come after the data.

A table belongs to one dataset (`granula.dataset_tables`) and remembers the column each source
header loads into (`granula.dataset_columns`): a later file's columns are matched by header,
whatever their order, and a header not seen before gets a column of its own.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.names import (
    LINEAGE_COLUMN_COUNT,
    MAX_DATA_COLUMNS,
    assign_columns,
    header_keys,
    table_names_for,
)
from granula_pipeline.lib.model import Column

LINEAGE_COLUMNS = {
    "_granula_file_id": ("bigint", "granula.file_id", "granula.files.file_id of the source file"),
    "_granula_chunk_index": ("integer", "granula.chunk_index", "chunk of the file the row came in"),
}
# The order rows were copied in, within their file and chunk: what results are paged by. Filled
# by its identity default, never named in a COPY.
ROW_COLUMN = "_granula_row"
GRANULA_COLUMNS = frozenset({*LINEAGE_COLUMNS, ROW_COLUMN})
assert len(GRANULA_COLUMNS) == LINEAGE_COLUMN_COUNT


def dataset_table(conn: psycopg.Connection, schema: str, dataset: str) -> str:
    """The table of `dataset` in `schema`: the one it has, or else the first of its names that
    no other dataset has, claimed for it. Two datasets never share a table."""
    owned = _owned_table(conn, schema, dataset)
    if owned is not None:
        return owned
    try:
        candidates = table_names_for(dataset)
    except ValueError as exc:
        raise BadInputError(f"{exc}: name the dataset with some") from exc
    for name in candidates:
        claimed = conn.execute(
            "INSERT INTO granula.dataset_tables (schema_name, table_name, dataset) "
            "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING table_name",
            (schema, name, dataset),
        ).fetchone()
        owned = name if claimed else _owned_table(conn, schema, dataset)  # claimed meanwhile?
        if owned is not None:
            return owned
    raise AssertionError("table_names_for never ends")


def _owned_table(conn: psycopg.Connection, schema: str, dataset: str) -> str | None:
    row = conn.execute(
        "SELECT table_name FROM granula.dataset_tables WHERE schema_name = %s AND dataset = %s",
        (schema, dataset),
    ).fetchone()
    return str(row[0]) if row else None


def ensure_table(
    conn: psycopg.Connection, schema: str, table: str, columns: list[Column], source: str
) -> list[Column]:
    """Create the table, or add the columns it lacks; return the columns as the table types them.

    Lineage columns take their value from transaction settings, so a chunk's bytes can go to COPY
    exactly as they are in the file.
    """
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    # Serialise DDL on one dataset across concurrent runs.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{schema}.{table}",))
    existing = existing_columns(conn, schema, table)
    columns = _matched_by_header(conn, schema, table, columns, existing)
    target = sql.Identifier(schema, table)
    loaded_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    comment = sql.SQL("COMMENT ON TABLE {} IS {}").format(
        target,
        sql.Literal(
            f"Loaded by Granula from files; latest: {source}, at {loaded_at}. "
            "Each row's file: _granula_file_id -> granula.files."
        ),
    )
    if not existing:
        data_columns = [
            sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in columns
        ]
        lineage = [
            sql.SQL("{} {} NOT NULL DEFAULT current_setting({})::{}").format(
                sql.Identifier(name), sql.SQL(pg_type), sql.Literal(setting), sql.SQL(pg_type)
            )
            for name, (pg_type, setting, _) in LINEAGE_COLUMNS.items()
        ]
        conn.execute(
            sql.SQL("CREATE TABLE {} ({})").format(
                target, sql.SQL(", ").join(data_columns + lineage)
            )
        )
        add_row_order(conn, schema, table)
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO granula_reader").format(sql.Identifier(schema))
        )
        conn.execute(sql.SQL("GRANT SELECT ON {} TO granula_reader").format(target))
        conn.execute(comment)
        for name, (_, _, description) in LINEAGE_COLUMNS.items():
            _comment_column(conn, target, name, description)
        _comment_column(conn, target, ROW_COLUMN, "order the row was copied in (results pages)")
        for column in columns:
            _comment_column(conn, target, column.name, _column_comment(column, source))
        return columns
    conn.execute(comment)
    typed = []
    for column in columns:
        if column.name in existing:
            current = existing[column.name]
            wider = widened_type(current, column.pg_type)
            if wider != current:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
                        target,
                        sql.Identifier(column.name),
                        sql.SQL(wider),
                        sql.Identifier(column.name),
                        sql.SQL(wider),
                    )
                )
                _comment_column(
                    conn, target, column.name, f"{_column_comment(column, source)}; was {current}"
                )
            typed.append(Column(column.name, wider, column.source_name))
            continue
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                target, sql.Identifier(column.name), sql.SQL(column.pg_type)
            )
        )
        _comment_column(conn, target, column.name, _column_comment(column, source))
        typed.append(column)
    return typed


def add_row_order(conn: psycopg.Connection, schema: str, table: str) -> None:
    """The row-order column and the index that pages of a file's rows are read through (also
    added to existing tables by migration 0008, with the same names)."""
    conn.execute(
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} bigint "
            "GENERATED BY DEFAULT AS IDENTITY (CACHE 1000)"
        ).format(sql.Identifier(schema, table), sql.Identifier(ROW_COLUMN))
    )
    conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON {} (_granula_file_id, _granula_chunk_index, {})"
        ).format(
            sql.Identifier(row_index_name(table)),
            sql.Identifier(schema, table),
            sql.Identifier(ROW_COLUMN),
        )
    )


def row_index_name(table: str) -> str:
    """Short whatever the table's name (63 bytes at most), unique per table name in a schema."""
    return "granula_rows_" + hashlib.md5(table.encode()).hexdigest()[:16]


def _matched_by_header(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    columns: list[Column],
    existing: dict[str, str],
) -> list[Column]:
    """The file's columns named as the table's columns of the same header; new headers get new
    names, recorded with the table. Columns of a table older than these records are matched by
    name once."""
    known = {
        (header, occurrence): name
        for header, occurrence, name in conn.execute(
            "SELECT source_header, occurrence, column_name FROM granula.dataset_columns "
            "WHERE schema_name = %s AND table_name = %s",
            (schema, table),
        ).fetchall()
    }
    headers = [column.source_name for column in columns]
    names = assign_columns(
        headers, known=known, taken=existing, unclaimed=existing.keys() - known.values()
    )
    width = len(existing.keys() | set(names))
    if width > MAX_DATA_COLUMNS:
        raise BadInputError(
            f"the table {schema}.{table} would have {width} columns with this file's new ones "
            f"and a PostgreSQL table holds at most {MAX_DATA_COLUMNS} besides Granula's "
            f"{LINEAGE_COLUMN_COUNT}: load this file as another dataset"
        )
    new = [
        (schema, table, header, occurrence, name)
        for (header, occurrence), name in zip(header_keys(headers), names, strict=True)
        if (header, occurrence) not in known
    ]
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO granula.dataset_columns "
            "(schema_name, table_name, source_header, occurrence, column_name) "
            "VALUES (%s, %s, %s, %s, %s)",
            new,
        )
    return [
        Column(name, column.pg_type, column.source_name)
        for name, column in zip(names, columns, strict=True)
    ]


NUMBERS = ("bigint", "numeric")
MOMENTS = ("date", "timestamp without time zone", "timestamp with time zone")


def widened_type(current: str, incoming: str) -> str:
    """The narrowest type holding both a column's values and a new file's.

    Integers widen to numeric (never to floating point, which would round them), dates to
    timestamps, timestamps to timestamps with time zone, and anything else to text.
    """
    if current == incoming or current == "text":
        return current
    if current == "double precision" and incoming in NUMBERS:
        return current
    if {current, incoming} <= {*NUMBERS, "double precision"}:
        return "numeric"
    if current in MOMENTS and incoming in MOMENTS:
        return max(current, incoming, key=MOMENTS.index)
    return "text"


def existing_columns(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    rows = conn.execute(
        """
        SELECT column_name, data_type FROM information_schema.columns
        WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position
        """,
        (schema, table),
    ).fetchall()
    return {name: data_type for name, data_type in rows if name not in GRANULA_COLUMNS}


def _column_comment(column: Column, source: str) -> str:
    return f"source column {column.source_name!r}; type {column.pg_type} inferred from {source}"


def _comment_column(conn: psycopg.Connection, target: sql.Identifier, name: str, text: str) -> None:
    conn.execute(
        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
            target, sql.Identifier(name), sql.Literal(text)
        )
    )
