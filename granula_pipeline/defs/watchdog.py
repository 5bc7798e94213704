"""Notice a load whose process died (kill -9, out of memory) and fail its run, so the daemon's
run retries finish it; chunks already committed are recognised and not loaded again.

Dagster's run monitoring cannot check the health of a started run under the default run
launcher (one process per run on the daemon's machine), so this sensor does it: a started run
whose worker process is gone is reported failed. Run launchers that can check their workers
themselves (Kubernetes, ECS) do not need it, and it stands down for them.
"""

import psutil
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.launcher import DefaultRunLauncher

from granula_pipeline.defs.batch import ingest_batch
from granula_pipeline.defs.ingest import ingest_file


def worker(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The process that runs `run_id` (the one that logged the run's start), and when."""
    started = instance.all_logs(run_id, of_type=DagsterEventType.RUN_START)
    if not started or started[0].dagster_event is None or started[0].dagster_event.pid is None:
        return None
    return started[0].dagster_event.pid, started[0].timestamp


def worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    found = worker(instance, run_id)
    return found[0] if found else None


def is_running(pid: int, started_at: float) -> bool:
    """Whether `pid` is alive and is the process that started the run (not a reused pid)."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= started_at
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def build_lost_run_watchdog(interval_seconds: int) -> SensorDefinition:
    """The watchdog, looking every `interval_seconds` (WATCHDOG_INTERVAL_SECONDS)."""
    return sensor(
        name="lost_run_watchdog",
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Fails ingest_file and ingest_batch runs whose process died, so run "
        "retries can finish them.",
    )(lost_run_watchdog)


def lost_run_watchdog(context: SensorEvaluationContext) -> SkipReason:
    instance = context.instance
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return SkipReason("the run launcher checks its own workers")
    records = [
        record
        for job in (ingest_file, ingest_batch)
        for record in instance.get_run_records(
            RunsFilter(job_name=job.name, statuses=[DagsterRunStatus.STARTED])
        )
    ]
    lost = []
    for record in records:
        run = record.dagster_run
        found = worker(instance, run.run_id)
        if found is None:
            continue
        pid, started_at = found
        if not is_running(pid, started_at):
            message = f"the run's process (pid {pid}) is gone: killed, or out of memory?"
            instance.report_run_failed(run, message)
            context.log.warning(f"run {run.run_id}: {message} Reported failed for a retry.")
            lost.append(run.run_id)
    if not lost:
        return SkipReason(f"{len(records)} load(s) running, none lost")
    return SkipReason(f"reported {len(lost)} lost run(s) failed: {', '.join(lost)}")
