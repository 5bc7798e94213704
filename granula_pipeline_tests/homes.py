"""Dagster homes for the tests that run the real daemon."""

from __future__ import annotations

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
