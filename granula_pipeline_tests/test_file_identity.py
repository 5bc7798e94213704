"""A file's rows are exactly its content: a file that grows, is rewritten, re-linked or deleted
while it loads fails saying so, keeps nothing of its rows, and can be retried once complete.

The file is changed at a chosen moment of the real job: a trigger makes the loader wait on an
advisory lock that the test holds while it changes the file, then lets it go on.
"""

from __future__ import annotations

import csv
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.lib.inbox.submission import register_file
from granula_pipeline.lib.load.chunk import load_chunk
from granula_pipeline.lib.load.file import prepare_load
from granula_pipeline.runs import retry
from granula_pipeline.settings import Settings
from granula_pipeline_tests.factories import order_row, write_orders
from granula_pipeline_tests.loads import failed_copy, load

ROWS, CHUNK = 20_000, 5_000  # four chunks
GATE_LOCK = 7_410_012  # the advisory lock the loader waits on


@contextmanager
def paused(
    settings: Settings, table: str, when: str, action: Callable[[], None]
) -> Iterator[list[bool]]:
    """Make the loader wait when it updates a row of `granula.<table>` to match `when` (SQL over
    NEW), run `action` meanwhile, then let it go on. Yields a list that holds True once it has."""
    reached: list[bool] = []
    errors: list[BaseException] = []
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as setup:
        setup.execute(
            f"""
            CREATE OR REPLACE FUNCTION granula.test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {when} THEN PERFORM pg_advisory_xact_lock_shared({GATE_LOCK}); END IF;
                RETURN NEW;
            END $$
            """
        )
        setup.execute(
            f"CREATE TRIGGER test_gate BEFORE UPDATE ON granula.{table} "
            "FOR EACH ROW EXECUTE FUNCTION granula.test_gate()"
        )
    holder = psycopg.connect(settings.psycopg_conninfo, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (GATE_LOCK,))

    def open_gate() -> None:
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                waiting = holder.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objid = %s AND NOT granted",
                    (GATE_LOCK,),
                ).fetchone()
                if waiting and waiting[0]:
                    action()
                    reached.append(True)
                    return
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (GATE_LOCK,))

    gate = threading.Thread(target=open_gate, daemon=True)
    gate.start()
    try:
        yield reached
    finally:
        gate.join(timeout=130)
        holder.close()
        with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as setup:
            setup.execute(f"DROP TRIGGER test_gate ON granula.{table}")
    if errors:
        raise errors[0]


def when_chunk_starts(settings: Settings, chunk: int, action: Callable[[], None]):
    """Run `action` once the loader has marked `chunk` started, before it reads the chunk."""
    return paused(
        settings, "chunks", f"NEW.chunk_index = {chunk} AND NEW.status = 'processing'", action
    )


def append_orders(path: Path, rows: int, *, start: int) -> None:
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerows(order_row(i) for i in range(start, start + rows))


def rewrite_in_place(path: Path, old: bytes, new: bytes) -> None:
    """The same file (same inode), the same length, other bytes."""
    with path.open("r+b") as handle:
        content = handle.read()
        handle.seek(0)
        handle.write(content.replace(old, new))


def rows_of(db: psycopg.Connection, dataset: str, file_id: int) -> list[tuple[int, str]]:
    return db.execute(
        f"SELECT id, name FROM datasets.{dataset} WHERE _granula_file_id = %s ORDER BY id",
        (file_id,),
    ).fetchall()


@pytest.fixture
def granula(settings: Settings) -> GranulaResource:
    return GranulaResource.from_settings(settings.model_copy(update={"chunk_size": CHUNK}))


def test_rows_appended_after_planning_fail_the_file_and_a_retry_loads_them_all(
    instance, settings, granula, db
):
    path = write_orders(settings.inbox / "appended" / "a.csv", ROWS)
    with when_chunk_starts(settings, 0, lambda: append_orders(path, 5_000, start=ROWS)) as reached:
        record = load(instance, settings, path, chunk_size=CHUNK)

    assert reached
    assert record.status == "failed"
    assert record.error_message.startswith("the file changed while it was loading (size ")
    assert "it was not loaded" in record.error_message
    assert f"`granula retry {record.file_id}` once it is complete" in record.error_message
    assert (record.loaded_rows, record.content_hash) == (0, None)
    assert rows_of(db, "appended", record.file_id) == []
    kept = failed_copy(settings, record)
    assert b'\n24999,"say ""24999""\nagain",12499.5' in kept.read_bytes() and not path.exists()

    retried, _ = retry(instance, granula, record.file_id)

    assert retried.status == "completed"
    assert (retried.total_rows, retried.loaded_rows) == (ROWS + 5_000, ROWS + 5_000)
    assert [row[0] for row in rows_of(db, "appended", record.file_id)] == list(range(25_000))


def test_a_file_rewritten_in_place_fails_and_its_genuine_copy_still_loads(instance, settings, db):
    genuine = write_orders(settings.data_dir / "genuine.csv", ROWS).read_bytes()
    path = settings.inbox / "rewritten" / "a.csv"
    path.parent.mkdir()
    path.write_bytes(genuine)
    with when_chunk_starts(settings, 0, lambda: rewrite_in_place(path, b"name", b"EVIL")):
        record = load(instance, settings, path, chunk_size=CHUNK)

    assert record.status == "failed"
    assert record.error_message.startswith("the file changed while it was loading (modified at ")
    assert record.content_hash is None, "the hash of content that never loaded is not kept"
    assert rows_of(db, "rewritten", record.file_id) == []

    again = settings.inbox / "rewritten" / "b.csv"
    again.write_bytes(genuine)
    second = load(instance, settings, again, chunk_size=CHUNK)

    assert second.status == "completed" and second.duplicate_of is None
    assert second.loaded_rows == ROWS
    assert not any("EVIL" in name for _, name in rows_of(db, "rewritten", second.file_id))


def test_a_symlink_repointed_outside_the_inbox_while_loading_loads_nothing_from_there(
    instance, settings, db
):
    real = write_orders(settings.inbox / "swap" / "real.csv", ROWS)
    outside = settings.data_dir / "outside.csv"
    outside.write_bytes(real.read_bytes().replace(b"name", b"EVIL"))
    link = settings.inbox / "swap" / "link.csv"
    link.symlink_to(real)

    def repoint() -> None:
        staged = link.with_name(".link.tmp")
        staged.symlink_to(outside)
        os.replace(staged, link)

    with when_chunk_starts(settings, 0, repoint):
        record = load(instance, settings, link, chunk_size=CHUNK)

    assert record.status == "failed"
    assert record.error_message.startswith("the file changed while it was loading")
    assert f"a symbolic link to {outside.name!r}, outside the inbox" in record.error_message
    assert str(settings.data_dir.absolute()) not in record.error_message, "no server paths"
    assert rows_of(db, "swap", record.file_id) == []
    assert outside.read_bytes().count(b"EVIL") == ROWS - ROWS // 3, "never touched"


def test_a_hard_link_to_a_file_outside_the_inbox_is_refused(instance, settings, db):
    outside = write_orders(settings.data_dir / "elsewhere.csv", 100)
    link = settings.inbox / "linked.csv"
    os.link(outside, link)

    record = load(instance, settings, link)

    assert record.status == "failed"
    assert record.error_message == (
        "this is a hard link to a file elsewhere (2 links); copy the file itself in"
    )
    assert record.table_name is None
    assert outside.read_bytes() == failed_copy(settings, record).read_bytes()


def test_a_file_deleted_while_loading_says_so_and_keeps_none_of_its_rows(instance, settings, db):
    path = write_orders(settings.inbox / "vanishing" / "a.csv", ROWS)
    with when_chunk_starts(settings, 1, path.unlink) as reached:
        record = load(instance, settings, path, chunk_size=CHUNK)

    assert reached
    assert record.status == "failed"
    assert record.error_message.startswith(
        "the file was deleted or moved while it was loading (inbox/vanishing/a.csv is gone)"
    )
    assert (record.loaded_rows, record.content_hash) == (0, None)
    assert rows_of(db, "vanishing", record.file_id) == []


def test_rows_appended_after_the_last_chunk_loaded_keep_the_file_out_of_processed(
    instance, settings, db
):
    path = write_orders(settings.inbox / "late" / "a.csv", ROWS)
    last = ROWS // CHUNK - 1
    with paused(
        settings,
        "chunks",
        f"NEW.chunk_index = {last} AND NEW.status = 'loaded'",
        lambda: append_orders(path, 10, start=ROWS),
    ) as reached:
        record = load(instance, settings, path, chunk_size=CHUNK)

    assert reached
    assert record.status == "failed"
    assert record.error_message.startswith("the file changed while it was loading (size ")
    assert rows_of(db, "late", record.file_id) == []
    assert not list(settings.processed_dir.rglob("*"))
    assert b'20009,"name 20009, with comma",10004.5' in failed_copy(settings, record).read_bytes()


def test_a_file_planned_before_identities_were_recorded_still_loads(
    instance, settings, granula, db
):
    path = write_orders(settings.inbox / "older" / "a.csv", ROWS)
    record, _ = register_file(settings, path)
    prepare_load(settings, record.partition_key, "a-run-of-an-older-granula")
    db.execute(
        "UPDATE granula.files SET st_dev = NULL, st_ino = NULL, st_size = NULL, "
        "st_mtime_ns = NULL, st_ctime_ns = NULL WHERE file_id = %s",
        (record.file_id,),
    )

    retried, _ = retry(instance, granula, record.file_id)

    assert retried.status == "completed"
    assert retried.loaded_rows == ROWS


def test_a_file_changed_after_part_of_it_loaded_is_retried_afresh_exactly_once(
    instance, settings, granula, db
):
    path = write_orders(settings.inbox / "replanned" / "a.csv", ROWS)
    record, _ = register_file(settings, path)
    planning = settings.model_copy(update={"chunk_size": CHUNK})
    prepared = prepare_load(planning, record.partition_key, "a-run-killed-after-one-chunk")
    load_chunk(settings.psycopg_conninfo, prepared.target, prepared.chunks[0])
    append_orders(path, 5_000, start=ROWS)

    retried, _ = retry(instance, granula, record.file_id)

    assert retried.status == "completed"
    assert (retried.total_rows, retried.loaded_rows) == (ROWS + 5_000, ROWS + 5_000)
    assert [row[0] for row in rows_of(db, "replanned", record.file_id)] == list(range(25_000))
