"""`granula up` as a newcomer starts it, with no environment set: what it prints in its first
seconds holds no warning and no debug line, and the commands run beside it (`ingest`, `status`,
`results`) use its database and its Dagster instance, so a CLI load shows in its UI."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time

import psutil
import psycopg
import pytest

from granula_pipeline.cli import NO_INSTANCE
from granula_pipeline.stack import relay_output
from granula_pipeline_tests.factories import write_orders
from granula_pipeline_tests.test_stack_shutdown import (
    GRANULA,
    STOP_DEADLINE,
    _kill_leftovers,
    _tail,
    _wait_until_up,
    start_granula_up,
)

pytestmark = pytest.mark.slow  # starts `granula up`: an embedded server and dagster dev

# Two sensor ticks (SENSOR_INTERVAL_SECONDS=5) after the UI answers: what a newcomer reads.
QUIET_SECONDS = 12
# Words that say something is wrong, or that a line is Dagster's debugging.
ALARMING = ("warning", "debug", "traceback", "error", "deprecat", "supersed")


def test_granula_up_starts_quietly_and_the_cli_uses_its_instance(tmp_path):
    granula, env, pgdata, port, log = start_granula_up(tmp_path, unset=("DAGSTER_LOG_LEVEL",))
    dagster: list[psutil.Process] = []
    try:
        _wait_until_up(granula, pgdata, port, log)
        dagster = psutil.Process(granula.pid).children(recursive=True)
        time.sleep(QUIET_SECONDS)
        lines = log.read_text(errors="replace").splitlines()
        alarming = [line for line in lines if any(word in line.lower() for word in ALARMING)]
        assert not alarming, "\n".join(alarming)
        assert any("UI at http://127.0.0.1" in line for line in lines), _tail(log)
        assert not any("Checking for new runs for sensor" in line for line in lines)

        # Beside the stack, with no environment: its database and its Dagster instance.
        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*GRANULA, *args],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )

        loaded = run("ingest", str(write_orders(tmp_path / "beside.csv", 4)))
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        assert NO_INSTANCE not in loaded.stderr
        summary = json.loads(loaded.stdout.strip().splitlines()[-1])
        status = run("status", str(summary["file_id"]))
        assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
        assert json.loads(status.stdout)["status"] == "completed"
        results = run("results", str(summary["file_id"]))
        assert results.returncode == 0, results.stderr
        assert len(json.loads(results.stdout)["items"]) == 4
        stack_url = (tmp_path / ".granula" / "database_url").read_text().strip()
        with psycopg.connect(stack_url) as conn:
            tags = dict(
                conn.execute(
                    "SELECT key, value FROM run_tags WHERE run_id = %s", (summary["run_id"],)
                ).fetchall()
            )
        assert tags["granula/file"].startswith("external/beside.csv"), "in the stack's instance"

        os.killpg(granula.pid, signal.SIGINT)
        granula.wait(STOP_DEADLINE)
    finally:
        _kill_leftovers(granula, dagster, pgdata)


def test_without_a_stack_ingest_says_its_run_is_in_memory(env, tmp_path):
    bare = {key: value for key, value in env.items() if key != "DAGSTER_HOME"}
    done = subprocess.run(
        [*GRANULA, "ingest", str(write_orders(tmp_path / "alone.csv", 2))],
        cwd=tmp_path,
        env=bare,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert NO_INSTANCE in done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "completed"


def test_the_relay_leaves_out_only_the_noise_unless_debugging():
    lines = [
        "/venv/click/core.py:911: SupersessionWarning: Function `dev_command` is superseded\n",
        "  return callback(*args, **kwargs)\n",
        "2026-12-02 - dagster - WARNING - Found a dagster instance configuration value "
        "(dagster.yaml) in the current folder\n",
        "2026-12-02 - dagster.daemon.SensorDaemon - \x1b[34mINFO\x1b[0m - Checking for new runs "
        "for sensor: inbox_sensor\n",
        "2026-12-02 - dagster.daemon.SensorDaemon - INFO - Sensor inbox_sensor skipped: no files\n",
        "2026-12-02 - dagster.daemon.SensorDaemon - INFO - Launching run for inbox_sensor\n",
        "2026-12-02 - dagster - ERROR - a real error\n",
        "  with its indented detail\n",
    ]
    quiet, everything = io.StringIO(), io.StringIO()

    relay_output(iter(lines), quiet, quiet=True)
    relay_output(iter(lines), everything, quiet=False)

    assert quiet.getvalue().splitlines(keepends=True) == lines[5:]
    assert everything.getvalue().splitlines(keepends=True) == lines
