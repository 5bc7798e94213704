"""The `granula` command and the `dagster job execute` path, as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from granula_pipeline.lib.control.files import register_file
from granula_pipeline.lib.inbox.scan import describe
from granula_pipeline_tests.factories import write_orders

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = {"file_id", "status", "table", "total_rows", "loaded_rows", "rejected_rows", "error"}


# What the `granula` console script runs: `command.run`, which ends the process with os._exit.
GRANULA = ["-c", "from granula_pipeline.command import run; run()"]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def granula(env: dict[str, str], *args: str) -> tuple[int, dict]:
    done = run(env, *GRANULA, *args)
    last_line = done.stdout.strip().splitlines()[-1]
    return done.returncode, json.loads(last_line)


def test_ingest_prints_a_json_summary_and_exits_zero(env, tmp_path, db):
    path = write_orders(tmp_path / "orders.csv", 1000)
    code, summary = granula(env, "ingest", str(path), "--dataset", "cli_orders", "--priority", "4")

    assert code == 0
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["status"] == "completed"
    assert summary["table"] == "datasets.cli_orders"
    assert summary["total_rows"] == summary["loaded_rows"] == 1000
    assert summary["priority"] == 4
    assert summary["error"] is None
    assert db.execute("SELECT count(*) FROM datasets.cli_orders").fetchone() == (1000,)
    assert path.exists(), "a file loaded from outside the inbox stays where it is"


def test_ingest_plans_the_file_while_dagster_starts_and_its_run_takes_that_plan(env, tmp_path, db):
    path = write_orders(tmp_path / "ahead.csv", 3000)
    done = run(env, *GRANULA, "ingest", str(path), "--dataset", "ahead")
    summary = json.loads(done.stdout.strip().splitlines()[-1])

    assert done.returncode == 0, done.stderr[-3000:]
    assert "plan_chunks - planned while Dagster was starting" in done.stderr
    assert summary["loaded_rows"] == 3000
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (dagster_run,) = instance.get_runs()
    assert dagster_run.is_success
    # The plan was made for the run that then loaded it: the file names that run.
    assert summary["run_id"] == dagster_run.run_id
    assert db.execute(
        "SELECT count(*), count(DISTINCT id) FROM datasets.ahead WHERE _granula_file_id = %s",
        (summary["file_id"],),
    ).fetchone() == (3000, 3000)


def test_ingest_skips_content_loaded_before_unless_forced(env, tmp_path, db):
    first = write_orders(tmp_path / "weekly.csv", 40)
    second = tmp_path / "weekly-copy.csv"
    second.write_bytes(first.read_bytes())

    _, original = granula(env, "ingest", str(first))
    code, duplicate = granula(env, "ingest", str(second), "--dataset", "weekly")
    assert code == 0 and duplicate["status"] == "completed"
    assert duplicate["duplicate_of"] == original["file_id"] and duplicate["loaded_rows"] == 0
    assert db.execute("SELECT count(*) FROM datasets.weekly").fetchone() == (40,)

    third = tmp_path / "weekly-again.csv"
    third.write_bytes(first.read_bytes())
    code, forced = granula(env, "ingest", str(third), "--dataset", "weekly", "--force")
    assert code == 0 and forced["duplicate_of"] is None and forced["loaded_rows"] == 40
    assert db.execute("SELECT count(*) FROM datasets.weekly").fetchone() == (80,)


def test_ingest_of_a_bad_file_exits_non_zero_with_the_error(env, tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text('id,name\n1,"never closed\n2,b\n')
    code, summary = granula(env, "ingest", str(path))

    assert code == 1
    assert summary["status"] == "failed"
    assert "never closed" in summary["error"] and "line 2" in summary["error"]
    assert path.exists()


def test_status_and_results_report_a_loaded_file(env, tmp_path, db):
    path = write_orders(tmp_path / "shown.csv", 250)
    _, summary = granula(env, "ingest", str(path))

    code, status = granula(env, "status", str(summary["file_id"]))
    assert code == 0
    assert status["status"] == "completed" and status["progress_percent"] == 100.0

    code, page = granula(env, "results", str(summary["file_id"]), "--limit", "10", "--offset", "5")
    assert code == 0
    assert page["total"] == 250 and page["limit"] == 10 and page["offset"] == 5
    assert [item["data"]["id"] for item in page["items"]] == list(range(5, 15))
    assert page["items"][0]["data"]["name"] == "name 5, with comma"
    assert page["items"][1]["data"]["name"] == 'say "6"\nagain'
    assert page["items"][0]["chunk_index"] == 0

    db.execute(f"DROP TABLE {summary['table']}")
    code, answer = granula(env, "results", str(summary["file_id"]))
    assert code == 2
    assert f"the table {summary['table']} that file" in answer["error"]


def test_status_of_an_unknown_file_says_so(env):
    code, answer = granula(env, "status", "999999")
    assert code == 2
    assert "no file with id 999999" in answer["error"]


def test_submit_then_dagster_job_execute_loads_fifty_thousand_rows(env, settings, tmp_path, db):
    source = write_orders(tmp_path / "big.csv", 50_000)
    code, submitted = granula(env, "submit", str(source), "--priority", "7")
    assert code == 0
    assert submitted["partition"].startswith("priority-7/big.csv@")
    assert (settings.inbox / "priority-7" / "big.csv").exists()

    done = run(
        env,
        "-m",
        "dagster",
        "job",
        "execute",
        "-m",
        "granula_pipeline.definitions",
        "-j",
        "ingest_file",
        "--tags",
        json.dumps({"dagster/partition": submitted["partition"]}),
    )
    assert done.returncode == 0, done.stderr[-3000:]

    _, status = granula(env, "status", str(submitted["file_id"]))
    assert status["status"] == "completed"
    assert status["loaded_rows"] == status["total_rows"] == 50_000
    count = db.execute(
        "SELECT count(*), count(DISTINCT id) FROM datasets.big WHERE _granula_file_id = %s",
        (submitted["file_id"],),
    ).fetchone()
    assert count == (50_000, 50_000)
    assert not (settings.inbox / "priority-7" / "big.csv").exists()
    assert Path(status["path"]).is_file() and "processed" in status["path"]


def test_status_beside_a_running_stack_uses_its_database(env, tmp_path, db):
    code, loaded = granula(env, "ingest", str(write_orders(tmp_path / "stacked.csv", 3)))
    assert code == 0
    # What `granula up` leaves in its folder while it runs; no DATABASE_URL in the environment.
    (tmp_path / ".granula").mkdir()
    (tmp_path / ".granula" / "database_url").write_text(env["DATABASE_URL"] + "\n")
    bare = {k: v for k, v in env.items() if k != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, *GRANULA, "status", str(loaded["file_id"])],
        env=bare,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    # With no stack running there, the command says what is missing, without a traceback.
    (tmp_path / ".granula" / "database_url").unlink()
    done = subprocess.run(
        [sys.executable, *GRANULA, "status", "1"],
        env=bare,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = json.loads(done.stdout)["error"]
    assert "DATABASE_URL is not set and the `granula up` of this folder is not running" in error


def test_inbox_lists_each_file_with_why_it_has_not_loaded(env, settings, db):
    inbox = settings.inbox
    old = time.time() - 60
    settled = write_orders(inbox / "settled.csv", 2)
    os.utime(settled, (old, old))
    write_orders(inbox / "fresh.csv", 2)  # just written: not settled
    refused = inbox / "notes.exe"
    refused.write_bytes(b"MZ")
    os.utime(refused, (old, old))
    (inbox / "big.csv.part").write_text("id\n1\n")
    queued = write_orders(inbox / "priority-3" / "sales" / "q.csv", 2)
    os.utime(queued, (old, old))
    found = describe(queued, inbox)
    with db.transaction():
        register_file(
            db,
            partition_key=found.partition_key,
            path=str(queued.absolute()),
            dataset=found.dataset,
            priority=found.priority,
            size_bytes=found.size_bytes,
        )

    code, listing = granula(env, "inbox")

    assert code == 0 and listing["inbox"] == str(inbox.resolve())
    states = {f["path"]: (f["state"], f["reason"]) for f in listing["files"]}
    assert listing["files"][0]["path"] == "priority-3/sales/q.csv"  # highest priority first
    assert states["priority-3/sales/q.csv"][0] == "queued"
    assert "MAX_CONCURRENCY" in states["priority-3/sales/q.csv"][1]
    assert states["settled.csv"][0] == "ready"
    assert states["fresh.csv"][0] == "waiting" and "SETTLE_SECONDS" in states["fresh.csv"][1]
    assert states["notes.exe"][0] == "refused" and "not accepted" in states["notes.exe"][1]
    assert states["big.csv.part"][0] == "ignored"
