"""A file is `completed` only once it is done: checked and moved out of the inbox, in one commit;
its duration ends then, once, and its wait (queued -> started) is kept beside it."""

from __future__ import annotations

import time

from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.load.chunk import load_chunk
from granula_pipeline.lib.load.file import prepare_load, settle_file
from granula_pipeline.lib.model import FileStatus
from granula_pipeline_tests.factories import write_orders


def test_completed_is_written_with_the_move_and_the_duration_is_set_once(settings, db):
    path = write_orders(settings.inbox / "settling.csv", 20)
    control.register_file(
        db,
        partition_key="settling.csv@1",
        path=str(path.absolute()),
        dataset="settling",
        priority=0,
        size_bytes=path.stat().st_size,
    )
    time.sleep(0.2)  # queued a moment before its load starts
    prepared = prepare_load(settings, "settling.csv@1", "a-run")
    for chunk in prepared.chunks:
        load_chunk(settings.psycopg_conninfo, prepared.target, chunk, streams=1)

    loaded = control.file_by_key(db, "settling.csv@1")
    assert loaded is not None
    assert (loaded.processed_chunks, loaded.loaded_rows) == (len(prepared.chunks), 20)
    assert loaded.status == FileStatus.PROCESSING, "every chunk in, but the file not yet moved"
    assert loaded.finished_at is None and path.exists()
    assert loaded.wait_seconds is not None and loaded.wait_seconds >= 0.2

    time.sleep(0.3)
    settled = settle_file(settings, loaded.file_id)

    assert settled.status == FileStatus.COMPLETED and not path.exists()
    assert settled.path.endswith(f"processed/{settled.file_id}-settling.csv")
    assert settled.finished_at is not None and settled.duration_seconds is not None
    assert settled.duration_seconds >= 0.3, "the duration ends when the file is done"
    again = settle_file(settings, loaded.file_id)
    assert again.finished_at == settled.finished_at, "set once"


def test_a_file_asked_for_again_waits_from_then(settings, db):
    path = write_orders(settings.inbox / "again.csv", 3)
    size = path.stat().st_size

    def register():
        return control.register_file(
            db,
            partition_key="again.csv@1",
            path=str(path.absolute()),
            dataset="again",
            priority=0,
            size_bytes=size,
        )

    first = register()
    assert register().queued_at == first.queued_at, "still queued: registering it is a no-op"
    prepared = prepare_load(settings, "again.csv@1", "a-run")
    for chunk in prepared.chunks:
        load_chunk(settings.psycopg_conninfo, prepared.target, chunk, streams=1)
    settle_file(settings, first.file_id)
    time.sleep(0.5)

    again = register()  # `granula ingest --force` of the same file, say

    assert again.file_id == first.file_id and again.queued_at > first.queued_at
    assert again.wait_seconds is not None and again.wait_seconds < 0.5
