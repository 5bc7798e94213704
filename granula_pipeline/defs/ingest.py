"""`file_status` and `ingest_file`: one file planned into chunk steps, loaded, its outcome
recorded as the materialization of its partition."""

from dagster import (
    AssetSelection,
    DynamicOut,
    DynamicOutput,
    In,
    OpExecutionContext,
    Out,
    Output,
    ResourceParam,
    define_asset_job,
    graph_asset,
    in_process_executor,
    op,
)

from granula_pipeline.defs.datasets import file_loaded_events
from granula_pipeline.defs.partitions import inbox_partitions
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.steps import (
    FORCE_TAG,
    ChunkTask,
    chunk_line,
    copy_chunk,
    file_failure,
    finish_file,
    log_plan,
    observe_if_ended,
    outcome_metadata,
    retry_if_transient,
)
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.load.file import PlansAhead, prepare_load
from granula_pipeline.lib.model import ChunkResult, LoadTarget


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
        raise file_failure(context, granula, str(exc), context.partition_key) from exc
    except Exception as exc:
        retry_if_transient(context, granula, exc)
        raise
    log_plan(context, prepared)
    yield Output(prepared.target, "target")
    for chunk in prepared.chunks:
        yield DynamicOutput(
            ChunkTask(context.partition_key, prepared.target, chunk),
            mapping_key=f"{chunk.index:05d}",
            output_name="chunks",
        )


@op(tags={"kind": "postgres"})
def load_chunk(
    context: OpExecutionContext, granula: GranulaResource, task: ChunkTask
) -> ChunkResult:
    """COPY one chunk's rows in one transaction with its bookkeeping: exactly once, or not."""
    result = copy_chunk(context, granula, task)
    context.log.info(chunk_line(task.chunk, result))
    observe_if_ended(context, granula, task.partition_key, task.target.file_id)
    return result


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
    try:
        record = finish_file(context, granula, target)
    except Exception as exc:
        retry_if_transient(context, granula, exc)
        raise
    for event in file_loaded_events(granula, record, context.partition_key):
        context.log_event(event)  # the dataset's table, materialized with this file
    return Output(record.summary(), metadata=outcome_metadata(granula, record))


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
    executor_def=in_process_executor,
    description="Load one file of the inbox (one partition) into its dataset's table.",
)
