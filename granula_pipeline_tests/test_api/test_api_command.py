"""`granula api` serves the API with uvicorn, as a real process."""

from __future__ import annotations

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
