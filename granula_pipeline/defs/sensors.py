"""The inbox sensor: new files, once completely written, launched in batches by priority."""

import hashlib
import time
import warnings

from dagster import (
    BetaWarning,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from granula_pipeline.defs.batch import batch_run_config, ingest_batch
from granula_pipeline.defs.ingest import ingest_file
from granula_pipeline.defs.partitions import inbox_partitions
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.inbox.batching import Batch, plan_batches
from granula_pipeline.lib.inbox.scan import (
    InboxCursor,
    InboxFile,
    InboxScan,
    mark_launched,
    scan_inbox,
    select_ready,
)
from granula_pipeline.lib.model import readable_size
from granula_pipeline.settings import Settings

# Dagster 1.13 resolving a sensor that targets several jobs copies it with `owners=[]`, which its
# own beta check reports as a use of `owners`: no Granula code sets owners, so it is not said.
warnings.filterwarnings(
    "ignore", message="Parameter `owners` of initializer `SensorDefinition", category=BetaWarning
)

# Read by the daemon's run monitoring: a run still going after this many seconds is failed and
# its process stopped (0: no limit). Kept by re-executions and run retries.
MAX_RUNTIME_TAG = "dagster/max_runtime"
# A tick returns within a few seconds and leaves the rest to the next one (the daemon's loop
# turns every 5 s): it waits at most SETTLE_WAIT_SECONDS for a file about to settle, and
# registers files until TICK_SECONDS have gone since it began.
SETTLE_WAIT_SECONDS = 1.5
TICK_SECONDS = 3.0
# Two looks within a tick are at least this far apart, so a file still growing shows it.
LOOK_GAP_SECONDS = 0.5
# Waiting files named in the tick's skip reason; the rest are counted.
NAMED_WAITING = 5


def run_tags(batch: Batch, max_run_seconds: int) -> dict[str, str]:
    """What the runs list shows and filters on: priority, file(s), dataset(s), size."""
    return {
        "dagster/priority": str(batch.priority),
        "granula/priority": str(batch.priority),
        "granula/file": _few([found.relative_path for found in batch.files], shown=1),
        "granula/files": str(len(batch.files)),
        "granula/dataset": _few(batch.datasets, shown=3),
        "granula/size": readable_size(batch.size_bytes),
        MAX_RUNTIME_TAG: str(max_run_seconds),
    }


def _few(names: list[str], *, shown: int) -> str:
    """`a, b, c (+2 more)`: the first `shown` names, and how many more."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" (+{more} more)" if more > 0 else "")


def build_inbox_sensor(interval_seconds: int) -> SensorDefinition:
    """The inbox sensor, looking every `interval_seconds` (SENSOR_INTERVAL_SECONDS)."""
    return sensor(
        jobs=[ingest_file, ingest_batch],
        name="inbox_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Launches runs for new files in the inbox, highest priority first: small "
        "files together in ingest_batch runs, a large or lone file in an ingest_file run.",
    )(inbox_sensor)


def inbox_sensor(context: SensorEvaluationContext, granula: GranulaResource) -> SensorResult:
    settings = granula.settings
    started = time.monotonic()
    scan = _look(settings, InboxCursor.from_json(context.cursor))
    wait = scan.next_ready_in(time.time_ns(), settings.settle_seconds)
    if wait is not None and wait <= SETTLE_WAIT_SECONDS:  # about to settle: look again now
        time.sleep(max(wait, LOOK_GAP_SECONDS))
        scan = _look(settings, scan.cursor)
    if not scan.ready:
        return SensorResult(
            skip_reason=_waiting_reason(settings, scan), cursor=scan.cursor.to_json()
        )

    launched: list[InboxFile] = []
    requests: list[RunRequest] = []
    with granula.connect(autocommit=True) as conn:
        for batch in plan_batches(
            scan.ready,
            max_files=settings.batch_max_files,
            max_bytes=settings.batch_max_bytes,
            spread=settings.max_concurrency,
        ):
            if requests and time.monotonic() - started > TICK_SECONDS:
                break  # the rest next tick, highest priority first again
            for found in batch.files:
                control.register_file(
                    conn,
                    partition_key=found.partition_key,
                    path=str((settings.inbox / found.relative_path).absolute()),
                    dataset=found.dataset,
                    priority=found.priority,
                    size_bytes=found.size_bytes,
                )
            launched.extend(batch.files)
            requests.append(_run_request(batch, settings))
    left = len(scan.ready) - len(launched)
    if left:
        context.log.info(f"launched {len(launched)} file(s); {left} more on the next tick")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[
            inbox_partitions.build_add_request([found.partition_key for found in launched])
        ],
        cursor=mark_launched(scan.cursor, launched).to_json(),
    )


def _look(settings: Settings, cursor: InboxCursor) -> InboxScan:
    return select_ready(
        scan_inbox(settings.inbox),
        cursor,
        now_ns=time.time_ns(),
        settle_seconds=settings.settle_seconds,
    )


def run_key(partition_keys: list[str]) -> str:
    """The run key of a run of these files: a lone file's partition key, or a digest naming a
    batch's every file, so a tick evaluated again (its cursor lost) that groups other files
    behind the same first one still launches them. A file launched twice loads once (its
    chunks' ledger)."""
    if len(partition_keys) == 1:
        return partition_keys[0]
    digest = hashlib.blake2b("\n".join(partition_keys).encode(), digest_size=8).hexdigest()
    return f"batch:{digest}"


def _run_request(batch: Batch, settings: Settings) -> RunRequest:
    keys = [found.partition_key for found in batch.files]
    tags = run_tags(batch, settings.max_run_seconds)
    if len(keys) == 1:
        return RunRequest(
            run_key=run_key(keys), job_name=ingest_file.name, partition_key=keys[0], tags=tags
        )
    return RunRequest(
        run_key=run_key(keys),
        job_name=ingest_batch.name,
        run_config=batch_run_config(keys),
        tags=tags,
    )


def _waiting_reason(settings: Settings, scan: InboxScan) -> SkipReason:
    if not scan.waiting:
        return SkipReason(f"no new files in {settings.inbox}")
    names = _few([found.relative_path for found in scan.waiting], shown=NAMED_WAITING)
    return SkipReason(
        f"{len(scan.waiting)} file(s) still being written or just arrived "
        f"(a file loads once unchanged for {settings.settle_seconds:g}s): {names}"
    )
