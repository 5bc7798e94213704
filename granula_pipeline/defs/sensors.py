"""The inbox sensor: one run per new file, once the file is completely written."""

import time

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from granula_pipeline.defs.ingest import ingest_file
from granula_pipeline.defs.partitions import inbox_partitions
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.inbox.scan import InboxCursor, InboxFile, scan_inbox, select_ready

# Read by the daemon's run monitoring: a run still going after this many seconds is failed and
# its process stopped (0: no limit). Kept by re-executions and run retries.
MAX_RUNTIME_TAG = "dagster/max_runtime"


def run_tags(found: InboxFile, max_run_seconds: int) -> dict[str, str]:
    return {
        "dagster/priority": str(found.priority),
        "granula/file": found.relative_path,
        "granula/dataset": found.dataset,
        "granula/size_bytes": str(found.size_bytes),
        MAX_RUNTIME_TAG: str(max_run_seconds),
    }


def build_inbox_sensor(interval_seconds: int) -> SensorDefinition:
    """The inbox sensor, looking every `interval_seconds` (SENSOR_INTERVAL_SECONDS)."""
    return sensor(
        job=ingest_file,
        name="inbox_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Launches one ingest_file run per new file in the inbox, highest priority "
        "first.",
    )(inbox_sensor)


def inbox_sensor(context: SensorEvaluationContext, granula: GranulaResource) -> SensorResult:
    settings = granula.settings
    scan = select_ready(
        scan_inbox(settings.inbox),
        InboxCursor.from_json(context.cursor),
        now_ns=time.time_ns(),
        settle_seconds=settings.settle_seconds,
    )
    for waiting in scan.waiting:
        context.log.info(f"{waiting.relative_path}: still being written or just arrived, waiting")
    if not scan.ready:
        reason = (
            f"{len(scan.waiting)} file(s) not settled yet "
            f"(must be unchanged for {settings.settle_seconds}s)"
            if scan.waiting
            else f"no new files in {settings.inbox}"
        )
        return SensorResult(skip_reason=SkipReason(reason), cursor=scan.cursor.to_json())
    with granula.connect(autocommit=True) as conn:
        for found in scan.ready:
            control.register_file(
                conn,
                partition_key=found.partition_key,
                path=str((settings.inbox / found.relative_path).absolute()),
                dataset=found.dataset,
                priority=found.priority,
                size_bytes=found.size_bytes,
            )
    keys = [found.partition_key for found in scan.ready]
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=found.partition_key,
                partition_key=found.partition_key,
                tags=run_tags(found, settings.max_run_seconds),
            )
            for found in scan.ready
        ],
        dynamic_partitions_requests=[inbox_partitions.build_add_request(keys)],
        cursor=scan.cursor.to_json(),
    )
