"""The daemon with batches: priorities still decide what starts first, and a batch killed with
SIGKILL mid-way is finished by the watchdog and run retries, every row exactly once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from granula_pipeline.defs.watchdog import worker_pid
from granula_pipeline.runs import ingest
from granula_pipeline_tests.factories import write_orders
from granula_pipeline_tests.homes import daemon_home, running_daemon
from granula_pipeline_tests.test_crash_recovery import slow_down, wait_for
from granula_pipeline_tests.test_daemon_recovery import loaded_chunks_of

pytestmark = pytest.mark.slow


def daemon_env(settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(daemon_home(tmp_path, poll_seconds=2)),
        "DAGSTER_PG_URL": settings.dagster_storage_url,
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        "SENSOR_INTERVAL_SECONDS": "1",
        "WATCHDOG_INTERVAL_SECONDS": "2",
        "SETTLE_SECONDS": "0",
        **extra,
    }


def drop(path: Path, rows: int, *, start: int = 0) -> Path:
    """Write the file under a temporary name, then rename it into place, as writers should."""
    staging = path.with_name(f".{path.name}.part")
    write_orders(staging, rows, start=start)
    return staging.rename(path)


def files(url: str) -> dict[str, dict[str, object]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT filename, status, priority, extract(epoch FROM created_at), "
            "extract(epoch FROM started_at), file_id FROM granula.files"
        ).fetchall()
    return {
        name: {
            "status": status,
            "priority": priority,
            "registered": reg,
            "started": start,
            "file_id": file_id,
        }
        for name, status, priority, reg, start, file_id in rows
    }


def seed(instance, granula, settings, dataset: str) -> None:
    """The dataset's table, made by a first load, so a trigger can slow its COPYs."""
    ingest(
        instance,
        granula,
        write_orders(settings.data_dir / "seed.csv", 1, start=-1),
        dataset=dataset,
    )


def use_stack_instance(monkeypatch, env: dict[str, str]) -> None:
    """This process opens the daemon's instance (DagsterInstance.get) as the UI would."""
    for name, value in env.items():
        if name.startswith(("DAGSTER_", "MAX_")):
            monkeypatch.setenv(name, value)


def test_a_priority_9_file_starts_before_the_backlog_still_queued(
    settings, granula, instance, tmp_path, monkeypatch
):
    url = settings.database_url
    seed(instance, granula, settings, "backlog")
    slow_down(url, "backlog", 1.0)  # each load takes a second: the queue fills
    env = daemon_env(settings, tmp_path, MAX_CONCURRENCY="1", BATCH_MAX_FILES="1")
    use_stack_instance(monkeypatch, env)
    with running_daemon(env), DagsterInstance.get() as stack:

        def runs(status: DagsterRunStatus | None = None) -> dict[str, str]:
            """Run id by file, of the runs in `status` (all if None)."""
            found = stack.get_runs(RunsFilter(statuses=[status] if status else []))
            return {run.tags.get("granula/file", ""): run.run_id for run in found}

        for i in range(6):
            drop(settings.inbox / "backlog" / f"low-{i}.csv", 5, start=i * 5)
        wait_for(lambda: len(runs(DagsterRunStatus.QUEUED)) >= 4, 120)
        drop(settings.inbox / "priority-9" / "backlog" / "urgent.csv", 5, start=100)
        wait_for(lambda: "priority-9/backlog/urgent.csv" in runs(), 60)
        queued_behind = runs(DagsterRunStatus.QUEUED)  # when the urgent run joined the queue
        queued_behind.pop("priority-9/backlog/urgent.csv", None)
        wait_for(lambda: len(runs(DagsterRunStatus.SUCCESS)) == 7, timeout=180)
        started = {
            record.dagster_run.tags["granula/file"]: record.start_time
            for record in stack.get_run_records(RunsFilter(statuses=[DagsterRunStatus.SUCCESS]))
        }
    assert queued_behind, "the backlog had all started before the urgent file was queued"
    urgent = started["priority-9/backlog/urgent.csv"]
    assert all(started[name] > urgent for name in queued_behind), (urgent, started)
    assert all(f["status"] == "completed" for f in files(url).values())


def test_a_batch_killed_mid_way_is_finished_by_run_retries_exactly_once(
    settings, granula, instance, tmp_path, monkeypatch
):
    url = settings.database_url
    seed(instance, granula, settings, "killed")
    slow_down(url, "killed", 1.0)
    names = [f"part-{i}.csv" for i in range(4)]
    env = daemon_env(settings, tmp_path, MAX_CONCURRENCY="2", CHUNK_SIZE="50")
    with running_daemon(env) as daemon:
        staged = []
        for i, name in enumerate(names):  # all four renamed at once: one batch
            staging = settings.inbox / "killed" / f".{name}.part"
            staged.append(write_orders(staging, 200, start=i * 1000))
        for staging, name in zip(staged, names, strict=True):
            staging.rename(settings.inbox / "killed" / name)

        # Of this batch's own files (the module's database is shared): of 16 chunks, 1 s each.
        wait_for(lambda: loaded_chunks_of(url, *names) >= 3, timeout=120)
        use_stack_instance(monkeypatch, env)
        with DagsterInstance.get() as stack:
            running = next(
                (
                    r
                    for r in stack.get_runs(RunsFilter(job_name="ingest_batch"))
                    if r.status == DagsterRunStatus.STARTED
                ),
                None,
            )
            assert running is not None, [(r.job_name, r.status) for r in stack.get_runs()]
            assert running.job_name == "ingest_batch" and running.tags["granula/files"] == "4"
            pid = worker_pid(stack, running.run_id)
            assert pid is not None and pid != daemon.pid
            os.kill(pid, signal.SIGKILL)

            def batch_runs() -> list[str]:
                runs = stack.get_runs(RunsFilter(job_name="ingest_batch"))
                return sorted(run.status.value for run in runs)

            wait_for(lambda: batch_runs() == ["FAILURE", "SUCCESS"], timeout=180)
    seen = files(url)
    with psycopg.connect(url) as conn:
        for i, name in enumerate(names):
            assert seen[name]["status"] == "completed"
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM datasets.killed WHERE _granula_file_id = %s ORDER BY id",
                    (seen[name]["file_id"],),
                ).fetchall()
            ]
            assert ids == list(range(i * 1000, i * 1000 + 200))
    assert not any((settings.inbox / "killed").glob("part-*.csv"))
