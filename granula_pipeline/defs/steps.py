"""What the ingest jobs' steps share: a chunk to load, retries, and telling the asset of a file.

`ingest_file` (one file, one partition) and `ingest_batch` (many small files) run the same
steps' bodies; only how they group files and chunks into steps differs.
"""

from dataclasses import dataclass

import psycopg
from dagster import (
    AssetCheckEvaluation,
    AssetMaterialization,
    Failure,
    MetadataValue,
    OpExecutionContext,
    RetryRequested,
)

from granula_pipeline.defs.datasets import file_failed_events
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.status import (
    status_metadata,
    table_metadata,
)
from granula_pipeline.lib.control import chunks as chunk_ledger
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.errors import BadInputError, describe, is_transient
from granula_pipeline.lib.load.chunk import load_chunk as load_chunk_rows
from granula_pipeline.lib.load.file import PreparedLoad, settle_file, unfinished_chunks
from granula_pipeline.lib.load.identity import LoadUndone
from granula_pipeline.lib.load.retries import Backoff
from granula_pipeline.lib.model import ChunkPlan, ChunkResult, FileRecord, LoadTarget

FORCE_TAG = "granula/force"


@dataclass(frozen=True)
class ChunkTask:
    """One chunk of one file, as a step receives it."""

    partition_key: str
    target: LoadTarget
    chunk: ChunkPlan
    file_chunks: int = 1  # how many chunks the file has in all


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


def log_plan(context: OpExecutionContext, prepared: PreparedLoad) -> None:
    if prepared.file.duplicate_of is not None:
        context.log.warning(prepared.file.error_message or "duplicate content, not loaded")
    context.log.info(
        f"{prepared.file.filename}: {len(prepared.chunks)} chunks, "
        f"{prepared.file.total_rows} rows into {prepared.file.table_name}"
    )


def chunk_line(chunk: ChunkPlan, result: ChunkResult) -> str:
    return (
        f"chunk {chunk.index} (lines {chunk.first_line}+): {result.outcome}, "
        f"{result.row_count} rows, {result.rejected_rows} rejected, via {result.method} "
        f"({result.parts} {'stream' if result.parts == 1 else 'streams'}) in {result.seconds:.2f}s"
    )


def copy_chunk(
    context: OpExecutionContext, granula: GranulaResource, task: ChunkTask
) -> ChunkResult:
    """Load `task`'s chunk, retried with backoff while its failure may pass; a Failure carrying
    the file's status once it cannot."""
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
        raise file_failure(
            context, granula, error, task.partition_key, file_id=task.target.file_id
        ) from exc
    return result


def _record_chunk_failure(granula: GranulaResource, task: ChunkTask, error: str) -> None:
    try:
        with granula.connect(autocommit=True) as conn, conn.transaction():
            chunk_ledger.fail_chunk(conn, task.target.file_id, task.chunk.index, error)
    except psycopg.Error:
        pass  # the database is unreachable: the chunk stays unfinished and a retry will redo it


def file_failure(
    context: OpExecutionContext,
    granula: GranulaResource,
    error: str,
    partition_key: str,
    *,
    file_id: int | None = None,
) -> Failure:
    """The step's Failure, carrying the file's status (settled and observed if it has ended).

    The run fails, so the partition shows failed and "Re-execute from failure" reloads only what
    failed; the file's outcome is recorded on the asset as an observation.
    """
    record = observe_if_ended(context, granula, partition_key, file_id)
    metadata = status_metadata(record) if record is not None else {}
    return Failure(description=error, metadata=metadata, allow_retries=False)


def observe_if_ended(
    context: OpExecutionContext,
    granula: GranulaResource,
    partition_key: str,
    file_id: int | None,
) -> FileRecord | None:
    """Once a file has ended other than `completed`, move it to failed/ and tell the asset.

    Reported to the instance directly: events logged by a step that then fails are dropped.
    """
    record, events = ended_events(context, granula, partition_key, file_id)
    for event in events:
        context.instance.report_runless_asset_event(event)
    return record


def ended_events(
    context: OpExecutionContext,
    granula: GranulaResource,
    partition_key: str,
    file_id: int | None,
) -> tuple[FileRecord | None, list[AssetMaterialization | AssetCheckEvaluation]]:
    """If the file has ended other than `completed`: settled (moved to failed/), with what its
    partition shows of it (`file_failed_events`)."""
    record = _current_record(granula, partition_key, file_id)
    if record is None or record.done_folder != "failed":
        return record, []  # loading, or loaded (rows rejected, maybe): settled when it ends
    record = settle_file(granula.settings, record.file_id)
    return record, file_failed_events(granula, record, partition_key, context.run_id)


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


def finish_file(
    context: OpExecutionContext,
    granula: GranulaResource,
    target: LoadTarget,
    *,
    leftovers: bool = True,
) -> FileRecord:
    """Load the chunks no step of this run loaded (unless the caller knows there are none:
    `leftovers=False`), then settle the file's status and folder.

    Re-executing a killed run from failure re-runs the chunk steps that had started, not those
    that never did (a Dagster limitation with dynamic outputs): those are loaded here.
    """
    settings = granula.settings
    for chunk in unfinished_chunks(settings, target.file_id) if leftovers else []:
        context.log.warning(f"chunk {chunk.index} never ran in this run: loading it now")
        load_chunk_rows(settings.psycopg_conninfo, target, chunk, streams=settings.copy_streams)
    return settle_file(settings, target.file_id)


def outcome_metadata(granula: GranulaResource, record: FileRecord) -> dict[str, MetadataValue]:
    """What a file's materialization or observation carries: status, counts, table, previews."""
    return {**status_metadata(record), **table_metadata(granula, record)}
