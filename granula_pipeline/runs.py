"""The run service of the CLI and the API: register a file as a partition and run `ingest_file`
for it in this process (`execute_in_process`), or several in one `ingest_batch` run, retry a
file, prune old partitions.

Not Dagster definitions: a caller of these functions is itself the run's process, so what it
hands the run (loads planned ahead) reaches it only because it runs here."""

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from dagster import DagsterInstance, ExecuteInProcessResult

from granula_pipeline.definitions import build_definitions
from granula_pipeline.defs.batch import batch_run_config, ingest_batch
from granula_pipeline.defs.ingest import ingest_file
from granula_pipeline.defs.partitions import INBOX_PARTITIONS_NAME
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.sensors import MAX_RUNTIME_TAG, run_tags
from granula_pipeline.defs.steps import FORCE_TAG
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.control.retention import ended_before, forget_file
from granula_pipeline.lib.inbox.batching import Batch
from granula_pipeline.lib.inbox.scan import InboxFile
from granula_pipeline.lib.inbox.submission import register_file
from granula_pipeline.lib.load.file import PlansAhead
from granula_pipeline.lib.model import FileRecord, FileStatus


def register(
    instance: DagsterInstance,
    granula: GranulaResource,
    path: Path,
    *,
    dataset: str | None = None,
    priority: int | None = None,
) -> tuple[FileRecord, dict[str, str]]:
    """Record the file as queued and add its dynamic partition; return it with its run tags."""
    record, found = register_file(granula.settings, path, dataset=dataset, priority=priority)
    instance.add_dynamic_partitions(INBOX_PARTITIONS_NAME, [record.partition_key])
    return record, run_tags(Batch((found,)), granula.settings.max_run_seconds)


def ingest(
    instance: DagsterInstance,
    granula: GranulaResource,
    path: Path,
    *,
    dataset: str | None = None,
    priority: int | None = None,
    force: bool = False,
    log_level: str = "INFO",
) -> tuple[FileRecord, ExecuteInProcessResult]:
    """Load one file synchronously through the `ingest_file` job; return its final record."""
    record, found = register_file(granula.settings, path, dataset=dataset, priority=priority)
    return ingest_registered(instance, granula, record, found, force=force, log_level=log_level)


def ingest_registered(
    instance: DagsterInstance,
    granula: GranulaResource,
    record: FileRecord,
    found: InboxFile,
    *,
    force: bool = False,
    log_level: str = "INFO",
    run_id: str | None = None,
    plans_ahead: PlansAhead | None = None,
) -> tuple[FileRecord, ExecuteInProcessResult]:
    """Run `ingest_file` for a file registered already, as run `run_id` if given (the id
    `plans_ahead` planned the file for)."""
    instance.add_dynamic_partitions(INBOX_PARTITIONS_NAME, [record.partition_key])
    tags = run_tags(Batch((found,)), granula.settings.max_run_seconds)
    if force:
        tags[FORCE_TAG] = "true"
    return _run(instance, granula, record, tags, log_level, run_id, plans_ahead)


def _run(
    instance: DagsterInstance,
    granula: GranulaResource,
    record: FileRecord,
    tags: dict[str, str],
    log_level: str,
    run_id: str | None = None,
    plans_ahead: PlansAhead | None = None,
) -> tuple[FileRecord, ExecuteInProcessResult]:
    definitions = build_definitions(granula.settings, granula=granula, plans_ahead=plans_ahead)
    job = definitions.resolve_job_def(ingest_file.name)
    result = job.execute_in_process(
        instance=instance,
        run_id=run_id,
        partition_key=record.partition_key,
        tags=tags,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        raise_on_error=False,
    )
    with granula.connect() as conn:
        final = control.file_by_id(conn, record.file_id)
    assert final is not None
    return final, result


def ingest_batch_of(
    instance: DagsterInstance,
    granula: GranulaResource,
    paths: list[Path],
    *,
    dataset: str | None = None,
    log_level: str = "INFO",
) -> tuple[list[FileRecord], ExecuteInProcessResult]:
    """Load several files in one `ingest_batch` run, as the inbox sensor batches them; their
    final records, in the order given."""
    registered = [register_file(granula.settings, path, dataset=dataset) for path in paths]
    keys = [record.partition_key for record, _ in registered]
    instance.add_dynamic_partitions(INBOX_PARTITIONS_NAME, keys)
    batch = Batch(tuple(found for _, found in registered))
    definitions = build_definitions(granula.settings, granula=granula)
    result = definitions.resolve_job_def(ingest_batch.name).execute_in_process(
        instance=instance,
        tags=run_tags(batch, granula.settings.max_run_seconds),
        run_config={
            **batch_run_config(keys),
            "loggers": {"console": {"config": {"log_level": log_level}}},
        },
        raise_on_error=False,
    )
    with granula.connect() as conn:
        finals = [control.file_by_id(conn, record.file_id) for record, _ in registered]
    return [final for final in finals if final is not None], result


class BackgroundLoader:
    """Loads registered files through `ingest_file` in a worker thread, one after another: what
    `granula api --load` runs when no Dagster daemon (and so no inbox sensor) is running."""

    def __init__(self, instance: DagsterInstance, granula: GranulaResource):
        self._instance = instance
        self._granula = granula
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="granula-load")

    def __call__(self, record: FileRecord) -> Future[FileRecord | None]:
        return self._worker.submit(self._load, Path(record.path))

    def _load(self, path: Path) -> FileRecord | None:
        try:
            record, _ = ingest(self._instance, self._granula, path)
        except Exception:  # the worker must outlive one bad load; the file's status tells it
            _log.exception("loading %s failed", path)
            return None
        _log.info("loaded %s: file %s %s", path.name, record.file_id, record.status)
        return record

    def close(self) -> None:
        """Finish the load in progress; drop the ones not started (the sensor can load them)."""
        self._worker.shutdown(wait=True, cancel_futures=True)


_log = logging.getLogger(__name__)
RETRY_OF_TAG = "granula/retry_of"


def retry(
    instance: DagsterInstance, granula: GranulaResource, file_id: int, *, log_level: str = "INFO"
) -> tuple[FileRecord, ExecuteInProcessResult | None]:
    """Load again what did not load of a file: failed chunks, chunks of a killed run.

    Chunks already loaded are recognised and left alone, so every row ends up there exactly once.
    """
    with granula.connect(autocommit=True) as conn:
        record = control.file_by_id(conn, file_id)
        if record is None:
            raise LookupError(f"no file with id {file_id}")
        if record.status == FileStatus.COMPLETED:
            return record, None
        control.reopen_file(conn, file_id)
    instance.add_dynamic_partitions(INBOX_PARTITIONS_NAME, [record.partition_key])
    tags = {
        "dagster/priority": str(record.priority),
        "granula/file": record.filename,
        "granula/dataset": record.dataset,
        RETRY_OF_TAG: record.run_id or "",
        MAX_RUNTIME_TAG: str(granula.settings.max_run_seconds),
    }
    return _run(instance, granula, record, tags, log_level)


def prune(
    instance: DagsterInstance, granula: GranulaResource, age: timedelta, *, delete_rows: bool
) -> dict[str, int]:
    """Drop the dynamic partitions of files that ended longer than `age` ago (the UI slows
    down with tens of thousands); with `delete_rows`, their loaded rows and control rows too."""
    known = set(instance.get_dynamic_partitions(INBOX_PARTITIONS_NAME))
    partitions = rows = 0
    with granula.connect() as conn:
        for record in ended_before(conn, age):
            if record.partition_key in known:
                instance.delete_dynamic_partition(INBOX_PARTITIONS_NAME, record.partition_key)
                partitions += 1
            with conn.transaction():
                rows += forget_file(conn, record, delete_rows=delete_rows)
    return {"pruned_partitions": partitions, "deleted_rows": rows}
