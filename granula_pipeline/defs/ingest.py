"""The `file_status` asset: a file planned into chunk ops, loaded, and its outcome recorded."""

from dataclasses import dataclass

import psycopg
from dagster import (
    AssetSelection,
    DynamicOut,
    DynamicOutput,
    Failure,
    In,
    OpExecutionContext,
    Out,
    Output,
    ResourceParam,
    RetryRequested,
    define_asset_job,
    graph_asset,
    in_process_executor,
    op,
)

from granula_pipeline.defs.datasets import file_loaded_events, report_file_failed
from granula_pipeline.defs.partitions import inbox_partitions
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.status import status_metadata, table_metadata
from granula_pipeline.lib.control import chunks as chunk_ledger
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.errors import BadInputError, describe, is_transient
from granula_pipeline.lib.load.chunk import load_chunk as load_chunk_rows
from granula_pipeline.lib.load.file import PlansAhead, prepare_load, settle_file, unfinished_chunks
from granula_pipeline.lib.load.identity import LoadUndone
from granula_pipeline.lib.load.retries import Backoff
from granula_pipeline.lib.model import ChunkPlan, ChunkResult, FileRecord, LoadTarget

FORCE_TAG = "granula/force"


@dataclass(frozen=True)
class ChunkTask:
    target: LoadTarget
    chunk: ChunkPlan


def retry_if_transient(context: OpExecutionContext, granula: GranulaResource, exc: Exception):
    """Ask Dagster to run the step again after a backoff, if `exc` may pass and tries are left.

    The one place that decides on retries: the wait is capped and jittered (`Backoff`), and
    Dagster's RetryRequested carries it out. Returns (without raising) when the step must fail.
    """
    settings = granula.settings
    if isinstance(exc, BadInputError) or not is_transient(exc):
        return
    backoff = Backoff(settings.max_retries, settings.base_backoff, settings.max_backoff)
    wait = backoff.wait_before(context.retry_number + 1)
    if wait is None:
        return
    context.log.warning(
        f"transient failure (attempt {context.retry_number + 1} of {settings.max_retries + 1}), "
        f"will retry with backoff in {wait:.2f}s: {describe(exc)}"
    )
    raise RetryRequested(max_retries=settings.max_retries, seconds_to_wait=wait) from exc


@op(
    out={"target": Out(LoadTarget), "chunks": DynamicOut(ChunkTask)},
    tags={"kind": "polars"},
)
def plan_chunks(
    context: OpExecutionContext, granula: GranulaResource, plans_ahead: ResourceParam[PlansAhead]
):
    """Check the file's header, plan its chunks by byte offsets and make its table ready."""
    settings = granula.settings
    force = context.run.tags.get(FORCE_TAG) == "true"
    ahead = plans_ahead.take(context.run_id)
    try:
        if ahead is not None:
            prepared = ahead.result()
            context.log.info("planned while Dagster was starting (granula ingest)")
        else:
            prepared = prepare_load(
                settings, context.partition_key, context.run_id, allow_duplicate=force
            )
    except BadInputError as exc:
        raise _file_failure(context, granula, str(exc)) from exc
    except Exception as exc:
        retry_if_transient(context, granula, exc)
        raise
    if prepared.file.duplicate_of is not None:
        context.log.warning(prepared.file.error_message or "duplicate content, not loaded")
    context.log.info(
        f"{prepared.file.filename}: {len(prepared.chunks)} chunks, "
        f"{prepared.file.total_rows} rows into {prepared.file.table_name}"
    )
    yield Output(prepared.target, "target")
    for chunk in prepared.chunks:
        yield DynamicOutput(
            ChunkTask(prepared.target, chunk),
            mapping_key=f"{chunk.index:05d}",
            output_name="chunks",
        )


@op(tags={"kind": "postgres"})
def load_chunk(
    context: OpExecutionContext, granula: GranulaResource, task: ChunkTask
) -> ChunkResult:
    """COPY one chunk's rows in one transaction with its bookkeeping: exactly once, or not."""
    settings = granula.settings
    chunk = task.chunk
    try:
        result = load_chunk_rows(
            settings.psycopg_conninfo, task.target, chunk, streams=settings.copy_streams
        )
    except LoadUndone as exc:  # the chunk that found the file changed has settled and told it
        raise Failure(description=str(exc), allow_retries=False) from exc
    except Exception as exc:
        retry_if_transient(context, granula, exc)
        error = describe(exc)
        if is_transient(exc) and not isinstance(exc, BadInputError):
            error = f"{error} (still failing after {settings.max_retries} retries)"
        context.log.error(f"chunk {chunk.index} (lines from {chunk.first_line}) failed: {error}")
        _record_chunk_failure(granula, task, error)
        raise _file_failure(context, granula, error, file_id=task.target.file_id) from exc
    context.log.info(
        f"chunk {chunk.index} (lines {chunk.first_line}+): {result.outcome}, "
        f"{result.row_count} rows, {result.rejected_rows} rejected, via {result.method} "
        f"({result.parts} {'stream' if result.parts == 1 else 'streams'}) in {result.seconds:.2f}s"
    )
    _observe_if_ended(context, granula, task.target.file_id)
    return result


def _record_chunk_failure(granula: GranulaResource, task: ChunkTask, error: str) -> None:
    try:
        with granula.connect(autocommit=True) as conn, conn.transaction():
            chunk_ledger.fail_chunk(conn, task.target.file_id, task.chunk.index, error)
    except psycopg.Error:
        pass  # the database is unreachable: the chunk stays unfinished and a retry will redo it


def _file_failure(
    context: OpExecutionContext,
    granula: GranulaResource,
    error: str,
    *,
    file_id: int | None = None,
) -> Failure:
    """The step's Failure, carrying the file's status (settled and observed if it has ended).

    The run fails, so the partition shows failed and "Re-execute from failure" reloads only what
    failed; the file's outcome is recorded on the asset as an observation.
    """
    record = _observe_if_ended(context, granula, file_id)
    metadata = status_metadata(record) if record is not None else {}
    return Failure(description=error, metadata=metadata, allow_retries=False)


def _observe_if_ended(
    context: OpExecutionContext, granula: GranulaResource, file_id: int | None
) -> FileRecord | None:
    """Once a file has ended other than `completed`, move it to failed/ and tell the asset."""
    record = _current_record(granula, context.partition_key, file_id)
    if record is None or record.done_folder != "failed":
        return record  # loading, or loaded (rows rejected, maybe): record_outcome settles it
    record = settle_file(granula.settings, record.file_id)
    # Reported to the instance directly: events logged by a step that then fails are dropped.
    report_file_failed(context.instance, granula, record, context.partition_key, context.run_id)
    return record


def _current_record(
    granula: GranulaResource, partition_key: str, file_id: int | None
) -> FileRecord | None:
    try:
        with granula.connect() as conn:
            if file_id is not None:
                return control.file_by_id(conn, file_id)
            return control.file_by_key(conn, partition_key)
    except psycopg.Error:
        return None


# The summary lives in granula.files and the metadata: no need to pickle it to storage too.
STATUS_IO_MANAGER = "file_status_io_manager"


@op(
    ins={"results": In(list[ChunkResult])},
    out=Out(dict, io_manager_key=STATUS_IO_MANAGER),
)
def record_outcome(
    context: OpExecutionContext,
    granula: GranulaResource,
    target: LoadTarget,
    results: list[ChunkResult],
) -> Output[dict]:
    """Settle the file's status from its chunks and move a completed file out of the inbox."""
    settings = granula.settings
    try:
        # Re-executing a killed run from failure re-runs the chunk steps that had started, not
        # those that never did (a Dagster limitation with dynamic outputs): load those here.
        for chunk in unfinished_chunks(settings, target.file_id):
            context.log.warning(f"chunk {chunk.index} never ran in this run: loading it now")
            load_chunk_rows(settings.psycopg_conninfo, target, chunk, streams=settings.copy_streams)
        record = settle_file(settings, target.file_id)
    except Exception as exc:
        retry_if_transient(context, granula, exc)
        raise
    metadata = {**status_metadata(record), **table_metadata(granula, record)}
    for event in file_loaded_events(granula, record, context.partition_key):
        context.log_event(event)
    return Output(record.summary(), metadata=metadata)


@graph_asset(
    partitions_def=inbox_partitions,
    kinds={"polars", "postgres"},
    group_name="granula",
    description="One partition per file: the outcome of loading it (status, counts, table).",
)
def file_status():
    target, chunks = plan_chunks()
    results = chunks.map(load_chunk)
    return record_outcome(target, results.collect())


ingest_file = define_asset_job(
    "ingest_file",
    selection=AssetSelection.assets(file_status),
    partitions_def=inbox_partitions,
    executor_def=in_process_executor,
    description="Load one file of the inbox (one partition) into its dataset's table.",
)
