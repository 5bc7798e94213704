"""Faults raised by PostgreSQL itself: a trigger that refuses one chunk's COPY."""

from __future__ import annotations

import psycopg


def inject_fault(
    db: psycopg.Connection,
    dataset: str,
    *,
    chunk: int,
    times: int = 1_000_000,
    sqlstate: str = "23514",
    message: str | None = None,
) -> None:
    """Make COPY into `datasets.<dataset>` fail with `sqlstate` for `chunk`, `times` times."""
    text = message or f"injected fault {sqlstate}"
    db.execute(f"CREATE SEQUENCE IF NOT EXISTS {dataset}_hits")
    db.execute(
        f"""
        CREATE OR REPLACE FUNCTION {dataset}_fault() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF current_setting('granula.chunk_index', true) = '{chunk}'
               AND nextval('{dataset}_hits') <= {times} THEN
                RAISE EXCEPTION '{text}' USING ERRCODE = '{sqlstate}';
            END IF;
            RETURN NULL;
        END $$
        """
    )
    db.execute(
        f"CREATE TRIGGER inject_fault BEFORE INSERT ON datasets.{dataset} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {dataset}_fault()"
    )


def clear_fault(db: psycopg.Connection, dataset: str) -> None:
    db.execute(f"DROP TRIGGER inject_fault ON datasets.{dataset}")
