"""`granula up` with its embedded PostgreSQL, as a real process: however it is stopped, it leaves
neither the server nor a Dagster process running."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow  # starts `granula up`: an embedded server and dagster dev

REPO = Path(__file__).resolve().parents[1]
# What the `granula` console script runs: `command.run`, which ends the process with os._exit.
GRANULA = [sys.executable, "-c", "from granula_pipeline.command import run; run()"]
START_DEADLINE = 120  # seconds for the embedded server, then the webserver, to come up
STOP_DEADLINE = 60  # seconds for `granula up` to exit once signalled


def start_granula_up(
    tmp_path: Path, *, unset: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], dict[str, str], Path, int, Path]:
    """`granula up` as a newcomer runs it, in `tmp_path` with nothing set: the process, its
    environment, its embedded server's data folder, its UI's port and its output's file."""
    for name in ("workspace.yaml", "dagster.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    pgdata = (tmp_path / ".granula" / "pgdata").resolve()
    dropped = {"DATABASE_URL", "DAGSTER_PG_URL", "DAGSTER_HOME", *unset}
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env["DATA_DIR"] = str(tmp_path / "data")
    port = _free_port()
    log = tmp_path / "granula.log"
    with log.open("wb") as out:
        granula = subprocess.Popen(
            [*GRANULA, "up", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, to signal as a terminal does
        )
    return granula, env, pgdata, port, log


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [
        # Ctrl-C: the terminal signals the whole foreground process group, dagster dev too.
        pytest.param(signal.SIGINT, True, id="ctrl-c"),
        # `kill`, a supervisor: `granula up` alone, which has to stop dagster dev itself.
        pytest.param(signal.SIGTERM, False, id="sigterm"),
    ],
)
def test_granula_up_stops_its_embedded_server(tmp_path, signum, to_group):
    granula, _env, pgdata, port, log = start_granula_up(tmp_path)
    dagster: list[psutil.Process] = []
    try:
        _wait_until_up(granula, pgdata, port, log)
        dagster = psutil.Process(granula.pid).children(recursive=True)
        assert dagster, "dagster dev runs under granula up"

        if to_group:
            os.killpg(granula.pid, signum)
        else:
            granula.send_signal(signum)
        granula.wait(STOP_DEADLINE)

        assert granula.returncode >= 0, f"killed by signal {-granula.returncode}\n{_tail(log)}"
        left = _server_processes(pgdata, grace=10)
        assert not left, (
            f"the embedded server outlived `granula up`: {_describe(left)}\n{_tail(log)}"
        )
        _, alive = psutil.wait_procs(dagster, timeout=30)
        assert not alive, f"Dagster processes outlived `granula up`: {_describe(alive)}"
    finally:
        _kill_leftovers(granula, dagster, pgdata)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(granula: subprocess.Popen, pgdata: Path, port: int, log: Path) -> None:
    """Until the embedded server runs and the webserver answers; fails if granula exits first."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if granula.poll() is not None:
            pytest.fail(f"granula up exited with {granula.returncode}\n{_tail(log)}")
        if _postmaster(pgdata) is not None and _answers(port):
            return
        time.sleep(0.5)
    pytest.fail(f"granula up was not up within {START_DEADLINE} s\n{_tail(log)}")


def _postmaster(pgdata: Path) -> psutil.Process | None:
    """The running server named by pgdata/postmaster.pid, if any."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
    except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
        return None
    return process if process.is_running() else None


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _server_processes(pgdata: Path, grace: float = 0) -> list[psutil.Process]:
    """Processes whose command line or working directory is the data directory (the postmaster
    names it with -D; its children have rewritten command lines but run in it), after waiting up
    to `grace` seconds for them to go."""
    deadline = time.monotonic() + grace
    while True:
        found = []
        for process in psutil.process_iter(["cmdline", "cwd"]):
            cmdline = " ".join(process.info["cmdline"] or ())
            cwd = process.info["cwd"] or ""
            if str(pgdata) in cmdline or cwd == str(pgdata) or cwd.startswith(f"{pgdata}/"):
                found.append(process)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def _describe(processes: list[psutil.Process]) -> str:
    described = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            described.append(f"{process.pid} {' '.join(process.cmdline()).strip()[:160]}")
    return "; ".join(described)


def _tail(log: Path, size: int = 3000) -> str:
    return log.read_text(errors="replace")[-size:]


def _kill_leftovers(granula: subprocess.Popen, dagster: list[psutil.Process], pgdata: Path) -> None:
    """Whatever the test leaves running, whether it passed or not: nothing leaks from it."""
    if granula.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(granula.pid, signal.SIGKILL)
        granula.wait(10)
    for process in dagster:
        with contextlib.suppress(psutil.Error):
            process.kill()
    postmaster = _postmaster(pgdata)
    if postmaster is not None:
        with contextlib.suppress(psutil.Error):
            postmaster.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            postmaster.wait(15)
    for process in _server_processes(pgdata):
        with contextlib.suppress(psutil.Error):
            process.kill()
