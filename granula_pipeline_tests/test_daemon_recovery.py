"""The daemon on its own: a file dropped in the inbox is loaded by a queued run; when that run's
process is killed with SIGKILL, the watchdog fails the run and run retries finish the file."""

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

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ROWS, CHUNK = 1000, 50


@pytest.fixture
def dagster_home(tmp_path, settings) -> Path:
    """The repository's dagster.yaml, with Dagster's storage in this module's database."""
    return daemon_home(tmp_path, poll_seconds=2)


@pytest.fixture
def stack_env(settings, dagster_home) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_PG_URL": settings.dagster_storage_url,
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        "CHUNK_SIZE": str(CHUNK),
        "MAX_CONCURRENCY": "2",
        "SENSOR_INTERVAL_SECONDS": "1",
        "WATCHDOG_INTERVAL_SECONDS": "2",
        "SETTLE_SECONDS": "0",
    }


@pytest.fixture
def daemon(stack_env):
    with running_daemon(stack_env) as process:
        yield process


def file_status(url: str, filename: str) -> tuple[int, str] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT file_id, status FROM granula.files WHERE filename = %s", (filename,)
        ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def loaded_chunks_of(url: str, *filenames: str) -> int:
    """Chunks loaded so far of the files of these names."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM granula.chunks JOIN granula.files USING (file_id) "
            "WHERE filename = ANY(%s) AND chunks.status = 'loaded'",
            (list(filenames),),
        ).fetchone()
    return int(row[0]) if row else 0


def test_daemon_finishes_a_killed_load_exactly_once(
    settings, granula, instance, stack_env, daemon, monkeypatch
):
    url = settings.database_url
    ingest(
        instance,
        granula,
        write_orders(settings.data_dir / "seed.csv", 1, start=-1),
        dataset="watched",
    )
    slow_down(url, "watched", 0.2)
    staging = settings.inbox / "watched" / ".watched.csv.tmp"
    write_orders(staging, ROWS)
    staging.rename(settings.inbox / "watched" / "batch.csv")

    wait_for(lambda: loaded_chunks_of(url, "batch.csv") >= 3, timeout=120)
    monkeypatch.setenv("DAGSTER_HOME", stack_env["DAGSTER_HOME"])
    monkeypatch.setenv("DAGSTER_PG_URL", stack_env["DAGSTER_PG_URL"])
    monkeypatch.setenv("MAX_CONCURRENCY", "2")
    with DagsterInstance.get() as stack:
        [running] = stack.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        assert running.tags["granula/dataset"] == "watched"
        pid = worker_pid(stack, running.run_id)
        assert pid is not None and pid != daemon.pid
        os.kill(pid, signal.SIGKILL)

        partition = {"dagster/partition": running.tags["dagster/partition"]}

        def statuses() -> list[str]:
            return sorted(run.status.value for run in stack.get_runs(RunsFilter(tags=partition)))

        wait_for(lambda: statuses() == ["FAILURE", "SUCCESS"], timeout=120)
    assert (file_status(url, "batch.csv") or (0, ""))[1] == "completed"

    file_id, _ = file_status(url, "batch.csv")
    with psycopg.connect(url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM datasets.watched WHERE _granula_file_id = %s ORDER BY id",
                (file_id,),
            ).fetchall()
        ]
    assert ids == list(range(ROWS))
    assert not (settings.inbox / "watched" / "batch.csv").exists()
