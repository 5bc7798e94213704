"""The `file_status` asset: a file planned into chunk ops, loaded, and its outcome recorded."""

from dataclasses import dataclass

import psycopg
from dagster import (
    AssetSelection,
    DynamicOut,
    DynamicOutput,
    Failure,
    In,
    MetadataValue,
    OpExecutionContext,
    Out,
    Output,
    define_asset_job,
    graph_asset,
    in_process_executor,
    op,
)

from granula_pipeline.defs.partitions import inbox_partitions
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.retries import chunk_retry_policy
from granula_pipeline.lib import control
from granula_pipeline.lib.control import FileRecord
from granula_pipeline.lib.errors import BadInputError, is_transient
from granula_pipeline.lib.file_load import prepare_load, settle_file
from granula_pipeline.lib.loading import ChunkResult, LoadTarget
from granula_pipeline.lib.loading import load_chunk as load_chunk_rows
from granula_pipeline.lib.planning import ChunkPlan
from granula_pipeline.settings import load_settings


@dataclass(frozen=True)
class ChunkTask:
    target: LoadTarget
    chunk: ChunkPlan


@op(
    out={"file_id": Out(int), "chunks": DynamicOut(ChunkTask)},
    tags={"kind": "polars"},
)
def plan_chunks(context: OpExecutionContext, granula: GranulaResource):
    """Check the file's header, plan its chunks by byte offsets and make its table ready."""
    settings = granula.settings()
    try:
        prepared = prepare_load(settings, context.partition_key, context.run_id)
    except BadInputError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    context.log.info(
        f"{prepared.file.filename}: {len(prepared.chunks)} chunks, "
        f"{prepared.file.total_rows} rows into {prepared.file.table_name}"
    )
    yield Output(prepared.file.file_id, "file_id")
    for chunk in prepared.chunks:
        yield DynamicOutput(
            ChunkTask(prepared.target, chunk),
            mapping_key=f"chunk_{chunk.index:05d}",
            output_name="chunks",
        )


@op(retry_policy=chunk_retry_policy(load_settings()), tags={"kind": "postgres"})
def load_chunk(
    context: OpExecutionContext, granula: GranulaResource, task: ChunkTask
) -> ChunkResult:
    """COPY one chunk's rows in one transaction with its bookkeeping: exactly once, or not at all."""
    settings = granula.settings()
    chunk = task.chunk
    try:
        result = load_chunk_rows(settings.psycopg_conninfo, task.target, chunk)
    except BadInputError as exc:
        _record_chunk_failure(settings.psycopg_conninfo, task, str(exc))
        raise Failure(description=str(exc), allow_retries=False) from exc
    except Exception as exc:
        last_attempt = context.retry_number >= settings.max_retries
        if not is_transient(exc) or last_attempt:
            _record_chunk_failure(settings.psycopg_conninfo, task, f"{type(exc).__name__}: {exc}")
            raise Failure(description=str(exc), allow_retries=False) from exc
        context.log.warning(f"chunk {chunk.index}: transient failure, will retry: {exc}")
        raise
    context.log.info(
        f"chunk {chunk.index} (lines {chunk.first_line}+): {result.outcome}, "
        f"{result.row_count} rows via {result.method} in {result.seconds:.2f}s"
    )
    return result


def _record_chunk_failure(conninfo: str, task: ChunkTask, error: str) -> None:
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
            control.fail_chunk(conn, task.target.file_id, task.chunk.index, error)
    except psycopg.Error:
        pass  # the database is unreachable: the chunk stays unfinished and a retry will redo it


@op(ins={"results": In(list[ChunkResult])})
def record_outcome(
    context: OpExecutionContext, granula: GranulaResource, file_id: int, results: list[ChunkResult]
) -> Output[dict]:
    """Settle the file's status from its chunks and move a completed file out of the inbox."""
    record = settle_file(granula.settings(), file_id)
    return Output(record.summary(), metadata=status_metadata(record))


def status_metadata(record: FileRecord) -> dict[str, MetadataValue]:
    seconds = record.duration_seconds or 0.0
    return {
        "status": MetadataValue.text(record.status),
        "file_id": MetadataValue.int(record.file_id),
        "filename": MetadataValue.text(record.filename),
        "table": MetadataValue.text(record.table_name or ""),
        "total_chunks": MetadataValue.int(record.total_chunks or 0),
        "processed_chunks": MetadataValue.int(record.processed_chunks),
        "failed_chunks": MetadataValue.int(record.failed_chunks),
        "source_rows": MetadataValue.int(record.total_rows or 0),
        "loaded_rows": MetadataValue.int(record.loaded_rows),
        "rejected_rows": MetadataValue.int(record.rejected_rows),
        "duration_seconds": MetadataValue.float(round(seconds, 3)),
        "rows_per_second": MetadataValue.float(
            round(record.loaded_rows / seconds, 1) if seconds else 0.0
        ),
        "dagster/row_count": MetadataValue.int(record.loaded_rows),
    }


@graph_asset(
    partitions_def=inbox_partitions,
    kinds={"polars", "postgres"},
    group_name="granula",
    description="One partition per file: the outcome of loading it (status, counts, table).",
)
def file_status():
    file_id, chunks = plan_chunks()
    results = chunks.map(load_chunk)
    return record_outcome(file_id, results.collect())


ingest_file = define_asset_job(
    "ingest_file",
    selection=AssetSelection.assets(file_status),
    partitions_def=inbox_partitions,
    executor_def=in_process_executor,
    description="Load one file of the inbox (one partition) into its dataset's table.",
)
