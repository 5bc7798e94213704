"""Dagster homes, and the daemon itself, for the tests that run the real daemon."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def daemon_home(tmp_path: Path, *, poll_seconds: int) -> Path:
    """A DAGSTER_HOME with the repository's dagster.yaml, its run monitoring polling every
    `poll_seconds` and its queue every second, short enough for a test with the daemon."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = poll_seconds
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@contextmanager
def running_daemon(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`dagster-daemon run` on the repository's workspace, stopped (its whole group) after."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:  # the code server and run workers it started, whatever they are doing
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
