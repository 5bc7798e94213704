"""`granula api` serves the API with uvicorn, as a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_granula_api_serves_the_docs_and_takes_an_upload(settings):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "granula_pipeline.cli", "api", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                docs = httpx.get(f"{base}/docs")
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the API did not start within 60 s"
                time.sleep(0.2)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()

        uploaded = httpx.post(
            f"{base}/api/v1/upload?priority=2",
            files={"file": ("served.csv", b"id\n1\n", "text/csv")},
        )
        assert uploaded.status_code == 201
        assert (settings.inbox / "priority-2" / "served.csv").read_bytes() == b"id\n1\n"
        status = httpx.get(f"{base}/api/v1/status/{uploaded.json()['file_id']}").json()
        assert status["status"] == "queued"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_granula_api_refuses_a_public_address_without_a_key(settings):
    env = {**os.environ, "DATABASE_URL": settings.database_url, "DATA_DIR": str(settings.data_dir)}
    refused = subprocess.run(
        [sys.executable, "-m", "granula_pipeline.cli", "api", "--host", "0.0.0.0"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "without an API key" in refused.stdout


def test_keys_are_created_listed_and_revoked_from_the_command_line(settings, db):
    env = {**os.environ, "DATABASE_URL": settings.database_url, "DATA_DIR": str(settings.data_dir)}

    def granula(*args: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "granula_pipeline.cli", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    made = granula("keys", "create", "--name", "bi", "--scope", "read", "--dataset", "sales")
    assert made["token"].startswith(f"granula_{made['key_id']}_")
    assert (made["scopes"], made["datasets"]) == (["read"], ["sales"])
    stored = db.execute(
        "SELECT secret_sha256 FROM granula.api_keys WHERE key_id = %s", (made["key_id"],)
    ).fetchone()
    assert stored is not None and made["token"].split("_")[-1].encode() not in bytes(stored[0])
    listed = granula("keys", "list")["keys"]
    assert [(k["key_id"], k["revoked"]) for k in listed] == [(made["key_id"], False)]
    assert "token" not in listed[0]
    assert granula("keys", "revoke", made["key_id"]) == {"revoked": made["key_id"]}
    assert granula("keys", "list")["keys"][0]["revoked"] is True
    assert "no active key" in granula("keys", "revoke", made["key_id"])["error"]


def test_granula_api_load_picks_up_the_files_queued_before_it_started(settings, env):
    from granula_pipeline.lib.inbox.submission import register_file

    queued = settings.inbox / "left_over.csv"
    queued.write_bytes(b"id\n1\n2\n")
    record, _ = register_file(settings, queued)
    assert record.status == "queued"
    from granula_pipeline_tests.test_api.served import granula_api

    with granula_api(env, "--load") as base:
        deadline = time.monotonic() + 90
        while True:
            status = httpx.get(f"{base}/api/v1/status/{record.public_id}").json()
            if status["status"] == "completed" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert status["status"] == "completed"
