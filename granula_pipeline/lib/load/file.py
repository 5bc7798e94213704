"""A file's load from start to end: admit and plan it, prepare its table, settle its outcome."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from granula_pipeline.lib.control import chunks as chunk_ledger
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.db import connect
from granula_pipeline.lib.errors import BadInputError, describe, is_transient
from granula_pipeline.lib.formats import format_of
from granula_pipeline.lib.formats.source import identify
from granula_pipeline.lib.inbox.admission import (
    LinkOutside,
    check_admissible,
    check_single_name,
    readable_path,
)
from granula_pipeline.lib.load.identity import FileChangedError, check_unchanged, open_current
from granula_pipeline.lib.load.tables import dataset_table, ensure_table
from granula_pipeline.lib.model import (
    ChunkPlan,
    Dialect,
    FileIdentity,
    FileRecord,
    FileStatus,
    LoadTarget,
    SourceFormat,
    SurveyRequest,
)
from granula_pipeline.settings import Settings


@dataclass(frozen=True)
class PreparedLoad:
    file: FileRecord
    target: LoadTarget
    chunks: list[ChunkPlan]


def prepare_load(
    settings: Settings, partition_key: str, run_id: str, *, allow_duplicate: bool = False
) -> PreparedLoad:
    """Plan the file of `partition_key` into chunks and make its table ready to receive them.

    A file planned before (a retried or re-executed run) keeps its plan, so chunks already loaded
    are recognised as such, unless the file has changed since: then what it loaded is undone and
    it is planned afresh. A file whose content was loaded before into the same dataset is not
    loaded again unless `allow_duplicate`. Bad input fails the file with a message saying what and
    where, and a refused file leaves the inbox for `failed/`.
    """
    with connect(settings.psycopg_conninfo, autocommit=True) as conn:
        record = control.file_by_key(conn, partition_key)
        if record is None:
            raise LookupError(
                f"no file is registered for partition {partition_key!r}; "
                "drop the file into the inbox or use `granula submit`"
            )
        control.start_file(conn, record.file_id, run_id)
        try:
            return _prepare(settings, conn, record, allow_duplicate=allow_duplicate)
        except BadInputError as exc:
            with conn.transaction():
                if isinstance(exc, FileChangedError):  # a plan kept from before is no more
                    control.discard_load(conn, record.file_id, str(exc))
                else:
                    control.fail_file(conn, record.file_id, str(exc))
            _retire(settings, conn, record, settings.failed_dir)
            raise
        except Exception as exc:
            if not is_transient(exc):  # a transient error is retried; anything else is final
                control.fail_file(conn, record.file_id, describe(exc))
                _retire(settings, conn, record, settings.failed_dir)
            raise


class PlansAhead:
    """Loads prepared in a thread for runs yet to be launched, by run id.

    `granula ingest` knows its file about a second before Dagster is loaded and ready to run it:
    the file is planned meanwhile, on the other core, and the run's `plan_chunks` step takes the
    prepared load (or its error) as though it had prepared it itself. This works only when the
    run executes in the process that planned it (`execute_in_process`); a run launched elsewhere
    finds nothing here and plans the file itself.
    """

    def __init__(self) -> None:
        self._futures: dict[str, Future[PreparedLoad]] = {}
        self._lock = threading.Lock()

    def start(self, settings: Settings, partition_key: str, *, allow_duplicate: bool) -> str:
        """Start preparing the file of `partition_key`; return the id its run must have."""
        run_id = str(uuid.uuid4())
        future: Future[PreparedLoad] = Future()

        def prepare() -> None:
            try:
                future.set_result(
                    prepare_load(settings, partition_key, run_id, allow_duplicate=allow_duplicate)
                )
            except Exception as exc:
                future.set_exception(exc)

        with self._lock:
            self._futures[run_id] = future
        threading.Thread(target=prepare, name="granula-plan-ahead", daemon=True).start()
        return run_id

    def take(self, run_id: str) -> Future[PreparedLoad] | None:
        """The load started for this run, once; None if there is none."""
        with self._lock:
            return self._futures.pop(run_id, None)


def folders(settings: Settings) -> tuple[Path, Path]:
    """Our folders, where files wait to load: a link in one must lead into one of them."""
    return settings.inbox, settings.failed_dir


def _prepare(
    settings: Settings, conn: psycopg.Connection, record: FileRecord, *, allow_duplicate: bool
) -> PreparedLoad:
    path = Path(record.path)
    check_admissible(
        path,
        inbox=settings.inbox,
        max_bytes=settings.max_upload_bytes,
        content_types=settings.content_types,
    )
    ours = folders(settings)
    # Every byte planned is read through this one descriptor, checked unchanged once read.
    with open_current(path, ours, file_id=record.file_id) as opened:
        check_single_name(path, opened.links, ours)
        planned = chunk_ledger.planned_chunks(conn, record.file_id)
        if planned and record.identity not in (None, opened.identity):
            with conn.transaction():  # changed since it was planned: load it as it is now
                control.forget_load(conn, record.file_id)
            planned = []
        if planned:  # a retry reads the file as its plan did, whatever the settings say now
            source = SourceFormat(
                record.format,
                record.compression,
                record.delimiter,
                dialect=Dialect.stored(record.dialect),
            )
        else:
            source = identify(path, csv_delimiter=settings.csv_delimiter, read_at=opened.path)
        survey = format_of(source.kind).survey(
            SurveyRequest(
                opened.path,
                source,
                planned,
                settings.chunk_size,
                settings.chunk_max_bytes,
                settings.read_limits,
            )
        )
        check_unchanged(
            opened.identity, opened.identity_now(), path, file_id=record.file_id, folders=ours
        )
    source = survey.source or source
    plan = survey.plan
    if plan is not None and not allow_duplicate:
        original = control.loaded_copy(conn, record, plan.content_hash)
        if original is not None:
            return _skip_duplicate(conn, record, original, plan.content_hash)
    with conn.transaction():
        table = dataset_table(conn, settings.results_schema, record.dataset)
        columns = ensure_table(
            conn, settings.results_schema, table, survey.columns, record.filename
        )
        if plan is not None:
            chunk_ledger.record_plan(
                conn,
                record.file_id,
                survey.chunks,
                table_name=f"{settings.results_schema}.{table}",
                size_bytes=plan.size_bytes,
                content_hash=plan.content_hash,
                encoding=survey.encoding,
                source=source,
                max_rejected_percent=settings.max_rejected_percent,
                columns=[
                    {"name": c.name, "type": c.pg_type, "header": c.source_name} for c in columns
                ],
            )
            if source.dialect is not None:
                control.record_dialect(conn, record.file_id, source.dialect.facts())
        if plan is not None or record.identity is None:
            control.record_identity(conn, record.file_id, opened.identity)
    refreshed = control.file_by_id(conn, record.file_id)
    assert refreshed is not None
    target = LoadTarget(
        record.file_id,
        settings.results_schema,
        table,
        columns,
        survey.encoding,
        source.kind,
        source.compression,
        source.delimiter,
        tuple(str(folder) for folder in ours),
        source.dialect,
    )
    return PreparedLoad(refreshed, target, survey.chunks)


def _skip_duplicate(
    conn: psycopg.Connection, record: FileRecord, original: int, content_hash: str
) -> PreparedLoad:
    control.mark_duplicate(conn, record.file_id, original, content_hash)
    refreshed = control.file_by_id(conn, record.file_id)
    assert refreshed is not None
    return PreparedLoad(refreshed, LoadTarget(record.file_id, "", ""), [])


def unfinished_chunks(settings: Settings, file_id: int) -> list[ChunkPlan]:
    """Chunks neither loaded nor failed: never run, or cut short by a killed process."""
    with connect(settings.psycopg_conninfo) as conn:
        return chunk_ledger.planned_chunks(conn, file_id, statuses=("pending", "processing"))


def settle_file(settings: Settings, file_id: int) -> FileRecord:
    """Recount the file; once it has ended, move it out of the inbox (or delete it, if so set).

    Completed files go to `processed/`; files with failed chunks, or failed as a whole, go to
    `failed/`, where `granula retry` still finds them. A file loaded in full that has changed
    since it was planned (rows appended after its last chunk was read) is not what loaded: what
    it loaded is undone and it fails, kept in `failed/` for a retry. Where its name now leads to
    another file, or to none, it is not moved: that file is someone else's.

    The final status and the file's new place are committed together: nobody reads `completed`
    of a file still in the inbox.
    """
    with connect(settings.psycopg_conninfo, autocommit=True) as conn, conn.transaction():
        control.refresh_file(conn, file_id, final=True)
        record = control.file_by_id(conn, file_id)
        assert record is not None
        folder = record.done_folder
        if folder == "processed":
            try:
                if not _still_here(settings, record):
                    return record
            except FileChangedError as exc:
                with conn.transaction():
                    control.discard_load(conn, file_id, str(exc))
                record = control.file_by_id(conn, file_id) or record
                folder = record.done_folder
        if record.status == FileStatus.COMPLETED and settings.delete_file_on_complete:
            _delete(settings, record)
        elif folder is not None:
            _retire(settings, conn, record, settings.data_dir / folder)
        return control.file_by_id(conn, file_id) or record


def _still_here(settings: Settings, record: FileRecord) -> bool:
    """Whether the file's path still leads to the file planned; FileChangedError if it does and
    that file has changed since."""
    planned = record.identity
    if planned is None:
        return True
    path = Path(record.path)
    try:
        now = FileIdentity.of(os.stat(readable_path(path, folders(settings))))
    except (FileNotFoundError, LinkOutside):
        return False
    if not planned.same_file(now):
        return False
    check_unchanged(planned, now, path, file_id=record.file_id, folders=folders(settings))
    return True


def _managed_root(settings: Settings, path: Path) -> Path | None:
    """The folder of ours (inbox/ or failed/) that holds `path`; files from elsewhere stay put."""
    if not (path.is_file() or path.is_symlink()):
        return None
    for root in (settings.inbox, settings.failed_dir):
        if path.absolute().is_relative_to(root.absolute()):
            return root
    return None


def _delete(settings: Settings, record: FileRecord) -> None:
    path = Path(record.path)
    if _managed_root(settings, path) is not None:
        path.unlink()


def _retire(
    settings: Settings, conn: psycopg.Connection, record: FileRecord, destination_root: Path
) -> None:
    """Move a file of ours to `destination_root`, keeping its folders, named `<file_id>-<name>`."""
    path = Path(record.path)
    root = _managed_root(settings, path)
    if root is None or root.absolute() == destination_root.absolute():
        return
    relative = path.absolute().relative_to(root.absolute())
    name = relative.name
    if not name.startswith(f"{record.file_id}-"):
        name = f"{record.file_id}-{name}"
    destination = destination_root / relative.parent / name
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, destination)
    with conn.transaction():
        control.move_file(conn, record.file_id, str(destination.absolute()))
        _keep_identity(conn, record.file_id, destination)


def _keep_identity(conn: psycopg.Connection, file_id: int, moved: Path) -> None:
    """Renaming a file sets its change time: a file still as planned keeps its identity."""
    planned = control.planned_identity(conn, file_id)
    try:
        now = FileIdentity.of(os.stat(moved))
    except FileNotFoundError:  # a relative link, broken by the move
        return
    if planned is not None and replace(now, ctime_ns=planned.ctime_ns) == planned:
        control.record_identity(conn, file_id, now)
