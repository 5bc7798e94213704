"""What a file can make Granula spend is bounded: the bytes it expands to, its longest record,
the time its run takes; and a load stopped with SIGTERM stops at once, its chunks consistent."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from granula_pipeline.defs.watchdog import is_running, worker
from granula_pipeline.runs import ingest
from granula_pipeline.settings import Settings
from granula_pipeline_tests.factories import write_orders
from granula_pipeline_tests.homes import daemon_home, running_daemon
from granula_pipeline_tests.loads import chunks, load
from granula_pipeline_tests.test_crash_recovery import slow_down, wait_for

REPO = Path(__file__).resolve().parents[1]
GRANULA = str(Path(sys.executable).parent / "granula")
MiB = 1024 * 1024


def gzip_bomb(path: Path, header: bytes, line: bytes, mib: int) -> Path:
    """A .csv.gz of `mib` MiB of `line` after `header`, a few KiB per MiB: one gzip member
    repeated (readers see one stream), so it is written at once whatever it expands to."""
    member = gzip.compress(line * (8 * MiB // len(line)), compresslevel=9)
    with path.open("wb") as out:
        out.write(gzip.compress(header))
        for _ in range(mib // 8):
            out.write(member)
    return path


def granula_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_HOME"}
    return {
        **env,
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        **extra,
    }


def granula_ingest(env: dict[str, str], path: Path, *args: str, timeout: float) -> dict:
    """`granula ingest PATH`, as a user runs it; its JSON summary. Fails past `timeout`."""
    try:
        done = subprocess.run(
            [GRANULA, "ingest", str(path), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"granula ingest {path.name} still running after {timeout}s")
    return json.loads(done.stdout.strip().splitlines()[-1])


# Decompressed bytes


@pytest.mark.parametrize(
    ("limits", "line", "mib", "expected"),
    [
        # The case, the ratio aside: a file under MAX_UPLOAD_MB=1 expanding to 500 MiB
        # passes the cap (10 x MAX_UPLOAD_MB) long before its end.
        (
            {"MAX_UPLOAD_MB": "1", "MAX_GZIP_RATIO": "10000"},
            b"1\n",
            504,
            "over MAX_DECOMPRESSED_MB=10",
        ),
        # 2 GiB of newlines from 2 MiB: far under the default cap of 5000 MiB, but 1000-fold.
        ({}, b"\n", 2048, "over MAX_GZIP_RATIO=100"),
    ],
    ids=["decompressed-cap", "ratio"],
)
def test_gzip_that_expands_past_a_limit_fails_while_planning(
    settings, tmp_path, limits, line, mib, expected
):
    path = gzip_bomb(tmp_path / "bomb.csv.gz", b"id\n", line, mib)
    assert path.stat().st_size < mib * MiB // 500

    started = time.monotonic()
    summary = granula_ingest(granula_env(settings, **limits), path, timeout=30)
    elapsed = time.monotonic() - started

    assert summary["status"] == "failed"
    assert summary["error"].startswith("the gzip file expands to more than")
    assert expected in summary["error"]
    assert not summary["total_chunks"], "refused before any chunk was planned"
    assert elapsed < 15, f"{elapsed:.1f}s: planning should stop at the limit"


# The longest record


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("long.csv", b"id,text\n1,a\n2," + b"x" * (3 * MiB) + b"\n3,c\n", 3),
        (
            "long.ndjson",
            b'{"id": 1}\n{"id": 2, "text": "' + b"x" * (3 * MiB) + b'"}\n{"id": 3}\n',
            2,
        ),
    ],
    ids=["csv", "ndjson"],
)
def test_record_over_max_record_mb_fails_before_any_chunk_reads_it(
    memory_instance, settings, db, name, content, line
):
    path = settings.inbox / name
    path.write_bytes(content)
    record = load(memory_instance, settings.model_copy(update={"max_record_mb": 1}), path)

    assert record.status == "failed"
    assert "over MAX_RECORD_MB=1" in (record.error_message or "")
    assert (record.error_message or "").endswith(f"(line {line})")
    assert chunks(db, record) == [], "no chunk was planned, so none read the record"


def test_quoted_field_running_past_max_record_mb_points_at_a_stray_quote(memory_instance, settings):
    path = settings.inbox / "stray.csv"
    path.write_bytes(b'id,text\n1,"a\n' + b"2,b\n" * (MiB // 2) + b"3,c\n")
    record = load(memory_instance, settings.model_copy(update={"max_record_mb": 1}), path)

    assert record.status == "failed"
    assert "over MAX_RECORD_MB=1" in (record.error_message or "")
    assert "stray double quote" in (record.error_message or "")
    assert (record.error_message or "").endswith("(line 2)")


# Run time


def test_every_run_carries_max_run_seconds_and_the_instance_has_the_same_default(
    memory_instance, settings
):
    granula = _granula(settings, max_run_seconds=90)
    record, result = ingest(
        memory_instance, granula, write_orders(settings.inbox / "tagged.csv", 3)
    )
    assert record.status == "completed"
    assert result.dagster_run.tags["dagster/max_runtime"] == "90"
    default = Settings.model_fields["max_run_seconds"].default
    for config in ("dagster.yaml", "deploy/dagster.k8s.yaml", "deploy/dagster.celery.yaml"):
        monitoring = yaml.safe_load((REPO / config).read_text())["run_monitoring"]
        assert monitoring["max_runtime_seconds"] == default, config


def _granula(settings: Settings, **update):
    from granula_pipeline.defs.resources import GranulaResource

    return GranulaResource.from_settings(settings.model_copy(update=update))


@pytest.fixture
def dagster_home(tmp_path, settings) -> Path:
    """The repository's dagster.yaml, with Dagster's storage in this module's database."""
    return daemon_home(tmp_path, poll_seconds=1)


@pytest.fixture
def daemon(settings, dagster_home):
    env = granula_env(
        settings,
        DAGSTER_HOME=str(dagster_home),
        DAGSTER_PG_URL=settings.dagster_storage_url,
        MAX_CONCURRENCY="1",
        MAX_RUN_SECONDS="4",
        SENSOR_INTERVAL_SECONDS="1",
        SETTLE_SECONDS="0",
    )
    with running_daemon(env):
        yield env
        # A COPY whose process was killed sleeps on in the server (in a test's trigger).
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                "WHERE wait_event = 'PgSleep' AND datname = current_database()"
            )


def file_status(db: psycopg.Connection, filename: str) -> str | None:
    row = db.execute("SELECT status FROM granula.files WHERE filename = %s", (filename,)).fetchone()
    return str(row[0]) if row else None


def test_run_over_max_run_seconds_is_failed_and_its_slot_freed(
    memory_instance, settings, db, daemon, monkeypatch
):
    ingest(memory_instance, _granula(settings), write_orders(settings.data_dir / "s.csv", 1))
    slow_down(settings.database_url, "s", 600)  # every COPY into datasets.s hangs
    (settings.inbox / "s").mkdir()
    write_orders(settings.inbox / "s" / "hangs.csv", 10)

    monkeypatch.setenv("DAGSTER_HOME", daemon["DAGSTER_HOME"])
    monkeypatch.setenv("DAGSTER_PG_URL", daemon["DAGSTER_PG_URL"])
    monkeypatch.setenv("MAX_CONCURRENCY", "1")
    with DagsterInstance.get() as stack:
        wait_for(lambda: stack.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])), 120)
        [hung] = stack.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        assert hung.tags["dagster/max_runtime"] == "4"
        # Queued behind the hung run: the only slot (MAX_CONCURRENCY=1) must come free.
        write_orders(settings.inbox / "next.csv", 10)

        wait_for(lambda: file_status(db, "next.csv") == "completed", 90)
        ended = stack.get_run_by_id(hung.run_id)
        assert ended is not None and ended.status == DagsterRunStatus.FAILURE
        messages = [event.message for event in stack.all_logs(hung.run_id)]
        assert any("maximum runtime of 4 seconds" in message for message in messages)
        # Its process stopped too (run retries then try the file again, and hang again).
        found = worker(stack, hung.run_id)
        assert found is not None
        wait_for(lambda: not is_running(*found), 30)


# SIGTERM


def test_load_stopped_with_sigterm_stops_promptly_and_a_retry_loads_exactly_once(
    memory_instance, settings, db, tmp_path
):
    ingest(memory_instance, _granula(settings), write_orders(settings.data_dir / "stopped.csv", 1))
    # Once the first chunk is in, every COPY into the table hangs.
    db.execute(
        """
        CREATE FUNCTION stopped_hang() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF (SELECT count(*) FROM datasets.stopped) > 1 THEN PERFORM pg_sleep(600); END IF;
        RETURN NULL; END $$
        """
    )
    db.execute(
        "CREATE TRIGGER hang BEFORE INSERT ON datasets.stopped EXECUTE FUNCTION stopped_hang()"
    )
    rows = 600_000
    path = write_orders(tmp_path / "big.csv", rows)
    # Chunks of 250,000 rows (9 MiB), each COPY'd in two parts over two connections at once.
    env = granula_env(settings, CHUNK_SIZE="250000", COPY_STREAMS="2")
    load_process = subprocess.Popen(
        [GRANULA, "ingest", str(path), "--dataset", "stopped"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def second_chunk_hangs() -> bool:  # its two parts, each in the trigger's pg_sleep
        if load_process.poll() is not None:
            pytest.fail(f"granula ingest ended before the hang: {load_process.communicate()}")
        return len(sleeping_backends(db, "stopped")) == 2

    wait_for(second_chunk_hangs, 240)

    stopped_at = time.monotonic()
    load_process.send_signal(signal.SIGTERM)
    try:
        out, _ = load_process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        load_process.kill()
        load_process.communicate()
        pytest.fail("granula ingest ignored SIGTERM for 20s")
    assert time.monotonic() - stopped_at < 5
    assert load_process.returncode != 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["status"], summary["loaded_rows"]) == ("processing", 250_000)
    wait_for(lambda: not sleeping_backends(db, "stopped"), 10)
    file_id = summary["file_id"]
    in_table = db.execute(
        "SELECT count(*) FROM datasets.stopped WHERE _granula_file_id = %s", (file_id,)
    ).fetchone()
    assert in_table == (250_000,), "the interrupted chunk left no rows, the first all of its"

    db.execute("DROP TRIGGER hang ON datasets.stopped")
    retried = subprocess.run(
        [GRANULA, "retry", str(file_id)], env=env, capture_output=True, text=True, timeout=120
    )
    assert json.loads(retried.stdout.strip().splitlines()[-1])["status"] == "completed"
    ids = db.execute(
        "SELECT id FROM datasets.stopped WHERE _granula_file_id = %s ORDER BY id", (file_id,)
    ).fetchall()
    assert [i for (i,) in ids] == list(range(rows))


def sleeping_backends(db: psycopg.Connection, table: str) -> list[tuple]:
    """The backends whose COPY into `table` waits in a trigger's pg_sleep."""
    return db.execute(
        "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
        "AND datname = current_database() AND query LIKE %s",
        (f'COPY "datasets"."{table}"%',),
    ).fetchall()
