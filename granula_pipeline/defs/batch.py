"""`ingest_batch`: many small files in one run, each still its own partition of `file_status`.

Starting a run costs seconds whatever it loads, so the inbox sensor puts small files together.
The run plans every file of the batch into chunk steps (a small file is one chunk); a file is
settled, moved and materialized by the step that loads its last chunk, so each file has its own
materialization, metadata and checks, and a bad file fails only itself: it is reported on its
own partition (its outcome, error and failed checks) while the others complete. Each step also
materializes the dataset tables its files loaded into, once a table. The run
then fails, naming the bad files, so the runs list shows that something needs a look; "Re-execute
from failure" reruns only the failed steps, and `granula retry` reloads a failed file on its own.
"""

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetMaterialization,
    AssetObservation,
    DynamicOut,
    DynamicOutput,
    Failure,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    in_process_executor,
    job,
    op,
)

from granula_pipeline.defs.datasets import datasets_loaded_events
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.status import FILE_STATUS, check_evaluations
from granula_pipeline.defs.steps import (
    FORCE_TAG,
    ChunkTask,
    copy_chunk,
    ended_events,
    finish_file,
    outcome_metadata,
    retry_if_transient,
)
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.errors import BadInputError, describe, is_transient
from granula_pipeline.lib.inbox.batching import group_chunks
from granula_pipeline.lib.load.file import prepare_load, unfinished_chunks
from granula_pipeline.lib.model import FileRecord, LoadTarget

PLAN_STEP = "plan_batch"
FileEvent = AssetMaterialization | AssetObservation | AssetCheckEvaluation


def batch_run_config(partition_keys: list[str]) -> dict[str, Any]:
    """The run config of a batch of these files (their partition keys)."""
    return {"ops": {PLAN_STEP: {"config": {"partition_keys": partition_keys}}}}


@op(
    name=PLAN_STEP,
    config_schema={"partition_keys": [str]},
    out={"planned": Out(dict), "chunks": DynamicOut(list)},
    tags={"kind": "polars"},
)
def plan_batch(context: OpExecutionContext, granula: GranulaResource) -> Iterator[Any]:
    """Plan each file of the batch into chunks; a file refused is reported and left out.

    `planned` maps each file's partition key to its load target (None: refused).
    """
    settings = granula.settings
    force = context.run.tags.get(FORCE_TAG) == "true"
    planned: dict[str, LoadTarget | None] = {}
    tasks: list[ChunkTask] = []
    for key in context.op_config["partition_keys"]:
        try:
            prepared = prepare_load(settings, key, context.run_id, allow_duplicate=force)
        except Exception as exc:
            if is_transient(exc) and not isinstance(exc, BadInputError):
                retry_if_transient(context, granula, exc)  # the whole batch is planned again
                raise
            context.log.error(f"{key}: {describe(exc)}")
            yield from ended_events(context, granula, key, None)[1]
            planned[key] = None
            continue
        if prepared.file.duplicate_of is not None:
            context.log.warning(f"{key}: {prepared.file.error_message or 'duplicate content'}")
        planned[key] = prepared.target
        if not prepared.chunks:  # nothing to load (a duplicate): it ends now
            yield from _settled(context, granula, key, prepared.target)[1]
        tasks.extend(
            ChunkTask(key, prepared.target, chunk, len(prepared.chunks))
            for chunk in prepared.chunks
        )
    if not tasks:  # no load step runs, nor the step after them: end the batch here
        _fail_if_any_failed(planned, _records(granula, list(planned)))
    yield Output(planned, "planned")
    groups = group_chunks(
        tasks,
        lambda task: task.chunk,
        max_rows=settings.chunk_size,
        max_bytes=settings.chunk_max_bytes,
    )
    refused = sum(target is None for target in planned.values())
    context.log.info(
        f"{len(planned)} files planned into {len(tasks)} chunks, loaded in {len(groups)} "
        f"step(s)" + (f"; {refused} refused (see their partitions)" if refused else "")
    )
    for group in groups:
        first = group[0]
        yield DynamicOutput(
            group,
            mapping_key=f"{first.target.file_id}_{first.chunk.index:05d}",
            output_name="chunks",
        )


@op(tags={"kind": "postgres"}, out=Out(Nothing))
def load_chunks(
    context: OpExecutionContext, granula: GranulaResource, tasks: list[ChunkTask]
) -> Iterator[FileEvent]:
    """Load these chunks (of one file or of several small ones), each in its own transaction;
    a file whose last chunk loads is settled, moved and materialized at once.

    A chunk that fails for good fails only its file: the others go on, and the step fails at
    the end, naming the files that failed. A transient failure retries the step, which skips
    the chunks already committed.
    """
    failures: list[str] = []
    rows = rejected = 0
    in_step = Counter(task.target.file_id for task in tasks)
    loaded: Counter[int] = Counter()
    settled: list[tuple[FileRecord, str]] = []
    for task in tasks:
        file_id = task.target.file_id
        try:
            result = copy_chunk(context, granula, task)
        except Failure as failure:  # its file has failed, and copy_chunk has reported it
            failures.append(f"{task.partition_key}: {failure.description}")
            continue
        rows, rejected = rows + result.row_count, rejected + result.rejected_rows
        if result.outcome != "loaded":
            continue  # loaded by an earlier attempt: finish_batch settles the file if need be
        loaded[file_id] += 1
        if _file_done(granula, task, loaded[file_id], in_step[file_id]):
            record, events = _settled(context, granula, task.partition_key, task.target)
            settled.append((record, task.partition_key))
            yield from events
    yield from datasets_loaded_events(granula, settled)  # each table once for the step's files
    files = len(in_step)
    context.log.info(f"{len(tasks)} chunks of {files} files: {rows} rows, {rejected} rejected")
    if failures:
        raise Failure(
            description=f"{len(failures)} chunk(s) failed: " + "; ".join(failures),
            allow_retries=False,
        )


def _file_done(granula: GranulaResource, task: ChunkTask, loaded_here: int, in_step: int) -> bool:
    """Whether the file of `task` has no chunk left to load: known when all its chunks are in
    this step, asked of the ledger when it spans steps (a large file's)."""
    if in_step == task.file_chunks:
        return loaded_here == task.file_chunks
    return not unfinished_chunks(granula.settings, task.target.file_id)


@op(ins={"loaded": In(Nothing)}, out=Out(Nothing))
def finish_batch(
    context: OpExecutionContext, granula: GranulaResource, planned: dict[str, LoadTarget | None]
) -> Iterator[FileEvent]:
    """Settle the files still unsettled (chunks no step of this run loaded), then fail the run
    if any file of the batch failed."""
    records = _records(granula, list(planned))
    settled = []
    for key, target in planned.items():
        record = records.get(key)
        if target is not None and record is not None and record.done_folder is None:
            record, events = _settled(context, granula, key, target, leftovers=True)
            settled.append((record, key))
            yield from events
    yield from datasets_loaded_events(granula, settled)
    _fail_if_any_failed(planned, _records(granula, list(planned)))


def _settled(
    context: OpExecutionContext,
    granula: GranulaResource,
    key: str,
    target: LoadTarget,
    *,
    leftovers: bool = False,
) -> tuple[FileRecord, Sequence[FileEvent]]:
    """Settle a file whose chunks are all done (`leftovers`: load those no step loaded first);
    its record and what its partition shows: a materialization with its outcome and its checks
    (`file_failed_events` if it failed). Yielded by the step, so they are the run's and kept
    if the step fails later."""
    record = finish_file(context, granula, target, leftovers=leftovers)
    if record.done_folder != "processed":
        ended, events = ended_events(context, granula, key, record.file_id)
        return ended or record, events
    materialization = AssetMaterialization(
        asset_key=FILE_STATUS, partition=key, metadata=outcome_metadata(granula, record)
    )
    return record, [materialization, *check_evaluations(granula, record, key)]


def _records(granula: GranulaResource, keys: list[str]) -> dict[str, FileRecord]:
    with granula.connect() as conn:
        return {record.partition_key: record for record in control.files_by_keys(conn, keys)}


def _fail_if_any_failed(
    planned: dict[str, LoadTarget | None], records: dict[str, FileRecord]
) -> None:
    failed = []
    for key in planned:
        record = records.get(key)
        if record is None or record.done_folder != "processed":
            reason = record.error_message if record else "not registered"
            failed.append(f"{key}: {reason or 'not loaded'}")
    if failed:
        raise Failure(
            description=f"{len(failed)} of {len(planned)} files failed; the others loaded",
            metadata={"failed files": MetadataValue.md("\n".join(f"- {f}" for f in failed))},
            allow_retries=False,
        )


@job(executor_def=in_process_executor, tags={"granula/batch": "true"})
def ingest_batch():
    """Load a batch of the inbox's files (each one partition of file_status) in one run."""
    planned, chunks = plan_batch()
    loaded = chunks.map(load_chunks)
    finish_batch(planned, loaded=loaded.collect())
