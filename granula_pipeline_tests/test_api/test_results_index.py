"""Pages of results are index ranges: on tables made now, and on tables made before 0008."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command

from granula_pipeline.lib.control.files import file_by_id
from granula_pipeline.lib.control.results import Cursor, file_results
from granula_pipeline.lib.db.upgrade import alembic_config, upgrade_database
from granula_pipeline.lib.load.tables import row_index_name
from granula_pipeline.settings import sqlalchemy_url


@pytest.fixture
def database_at_0007(empty_database: str) -> str:
    command.upgrade(alembic_config(sqlalchemy_url(empty_database, "psycopg")), "0007")
    return empty_database


def test_a_table_loaded_before_0008_gets_the_row_order_of_its_rows_and_the_index(
    database_at_0007,
):
    with psycopg.connect(database_at_0007, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO granula.files (partition_key, filename, path, dataset, status, "
            "table_name) VALUES ('k', 'old.csv', '/in/old.csv', 'old', 'processing', "
            "'datasets.old')"
        )
        conn.execute("INSERT INTO granula.dataset_tables VALUES ('datasets', 'old', 'old')")
        conn.execute("CREATE SCHEMA datasets")
        conn.execute(
            "CREATE TABLE datasets.old (id bigint, _granula_file_id bigint NOT NULL, "
            "_granula_chunk_index integer NOT NULL)"
        )
        # Chunk 1 copied before chunk 0, and rows in no order of id: ctid order is load order.
        conn.execute(
            "INSERT INTO datasets.old SELECT i, 1, 1 FROM generate_series(300, 201, -1) AS i"
        )
        conn.execute("INSERT INTO datasets.old SELECT i, 1, 0 FROM generate_series(1, 200) AS i")
        before = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM datasets.old ORDER BY _granula_chunk_index, ctid"
            ).fetchall()
        ]

    upgrade_database(sqlalchemy_url(database_at_0007, "psycopg"))

    with psycopg.connect(database_at_0007, autocommit=True) as conn:
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'datasets' AND indexname = %s",
            (row_index_name("old"),),
        ).fetchone()
        assert index is not None
        assert "(_granula_file_id, _granula_chunk_index, _granula_row)" in index[0]
        record = file_by_id(conn, 1)
        assert record is not None and record.public_id is not None
        pages = [file_results(conn, record, limit=50)]
        while pages[-1]["next"]:
            pages.append(file_results(conn, record, limit=50, after=_cursor(pages[-1])))
        assert [i["data"]["id"] for p in pages for i in p["items"]] == before
        assert [i["id"] for p in pages for i in p["items"]] == list(range(1, 301))
        deep = file_results(conn, record, limit=50, offset=250)
        assert [i["data"]["id"] for i in deep["items"]] == before[250:]
        assert deep["total"] == 300  # counted: the file is still loading

        conn.execute("SET enable_seqscan = off")  # the table is tiny; ask what a big one does
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN SELECT * FROM datasets.old WHERE _granula_file_id = 1 "
                "AND (_granula_chunk_index, _granula_row) > (0, 10) "
                "ORDER BY _granula_chunk_index, _granula_row LIMIT 50"
            ).fetchall()
        )
        assert row_index_name("old") in plan and "Sort" not in plan


def _cursor(page: dict) -> Cursor:
    return Cursor.parse(page["next"])
