"""`granula.dataset_tables` and `granula.dataset_columns`: which dataset owns a table, and which
column of it each source header loads into, so columns are matched by header, never by position.

Filled from what the files recorded (`granula.files.table_name` and `columns`), earliest file
first: the file that made a table or a column decides whose it is. Dataset names become NFC, the
form Granula compares them in from now on.

Revision ID: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE granula.dataset_tables (
            schema_name text NOT NULL,
            table_name  text NOT NULL,
            dataset     text NOT NULL,
            claimed_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (schema_name, table_name),
            UNIQUE (schema_name, dataset)
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE granula.dataset_tables IS "
        "'The dataset each result table belongs to: two datasets never share a table.'"
    )
    op.execute(
        """
        CREATE TABLE granula.dataset_columns (
            schema_name   text NOT NULL,
            table_name    text NOT NULL,
            source_header text NOT NULL,
            occurrence    integer NOT NULL CHECK (occurrence >= 1),
            column_name   text NOT NULL,
            PRIMARY KEY (schema_name, table_name, source_header, occurrence),
            UNIQUE (schema_name, table_name, column_name)
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE granula.dataset_columns IS "
        "'The column of a result table that each source header (in NFC; occurrence 2 for a "
        "second header of the same text in one file) loads into, whatever its position.'"
    )
    op.execute(
        "UPDATE granula.files SET dataset = normalize(dataset, NFC) "
        "WHERE dataset <> normalize(dataset, NFC)"
    )
    # PostgreSQL cut table names longer than 63 bytes silently: `::name` cuts them the same way.
    op.execute(
        """
        INSERT INTO granula.dataset_tables (schema_name, table_name, dataset)
        SELECT split_part(table_name, '.', 1), split_part(table_name, '.', 2)::name::text, dataset
        FROM granula.files WHERE table_name LIKE '%.%'
        ORDER BY file_id
        ON CONFLICT DO NOTHING
        """
    )
    op.execute(
        """
        INSERT INTO granula.dataset_columns
            (schema_name, table_name, source_header, occurrence, column_name)
        SELECT split_part(f.table_name, '.', 1), split_part(f.table_name, '.', 2)::name::text,
               normalize(c.value ->> 'header', NFC),
               row_number() OVER (
                   PARTITION BY f.file_id, normalize(c.value ->> 'header', NFC)
                   ORDER BY c.position
               ),
               c.value ->> 'name'
        FROM granula.files f
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE jsonb_typeof(f.columns) WHEN 'array' THEN f.columns ELSE '[]' END
        ) WITH ORDINALITY AS c(value, position)
        WHERE f.table_name LIKE '%.%' AND c.value ? 'header' AND c.value ? 'name'
        ORDER BY f.file_id, c.position
        ON CONFLICT DO NOTHING
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE granula.dataset_columns")
    op.execute("DROP TABLE granula.dataset_tables")
