"""The `granula` command: run the stack, load a file, submit one to the inbox, ask about a file."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from granula_pipeline.lib.control.files import file_by_id
from granula_pipeline.lib.db import connect
from granula_pipeline.lib.db.migrate import SchemaBehind, check_migrated, ensure_migrated
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.inbox.scan import InboxFile, dataset_name
from granula_pipeline.lib.inbox.submission import copy_into_inbox, register_file
from granula_pipeline.lib.model import FileRecord, FileStatus
from granula_pipeline.settings import MissingDatabase, Settings, load_settings

if TYPE_CHECKING:
    from dagster import DagsterInstance


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.dagster:
        _import_dagster()
    # The repository's dagster.yaml reads these; give them Granula's defaults.
    os.environ.setdefault("MAX_CONCURRENCY", str(settings.max_concurrency))
    if settings.database_url:
        os.environ.setdefault("DAGSTER_PG_URL", settings.dagster_storage_url)
    _use_running_stack(settings)
    try:
        if args.migrates:
            ensure_migrated(settings)
        return int(args.handler(args, settings))
    except (MissingDatabase, SchemaBehind) as exc:
        _emit({"error": str(exc)})
        return 2
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        _emit({"error": str(exc)})
        return 2


def _import_dagster() -> None:
    """Import Dagster and the job with the collector paused (see `_collector_paused`)."""
    with _collector_paused():
        import granula_pipeline.runs  # noqa: F401


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Run the block without the garbage collector, then set aside the objects it made for good.

    Importing Dagster and building its instance create some 200,000 long-lived objects; the
    collector's passes over them while they are made, and at every full collection after, cost
    about 0.5 s per command (see `granula_pipeline.command`).
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


class CliError(Exception):
    """A mistake in how the command was called: said plainly, without a traceback."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="granula", description=__doc__)
    parser.set_defaults(dagster=False, migrates=False)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start PostgreSQL (embedded if no DATABASE_URL) + Dagster")
    up.add_argument("--port", type=int, default=3000)
    up.add_argument("--host", default="127.0.0.1")
    up.set_defaults(handler=_up)

    ingest = commands.add_parser("ingest", help="load one file now, through the ingest_file job")
    ingest.add_argument("path", type=Path)
    ingest.add_argument("--priority", type=_priority, default=None)
    ingest.add_argument(
        "--dataset", type=_dataset, default=None, help="table to load into (default: file name)"
    )
    ingest.add_argument(
        "--force", action="store_true", help="load even if the same content was loaded before"
    )
    ingest.set_defaults(handler=_ingest)  # imports Dagster once the file's planning has started

    submit = commands.add_parser("submit", help="place a file in the inbox and register it")
    submit.add_argument("path", type=Path)
    submit.add_argument("--priority", type=_priority, default=0)
    submit.add_argument("--dataset", type=_dataset, default=None)
    submit.set_defaults(handler=_submit, dagster=True, migrates=True)

    retry = commands.add_parser("retry", help="load again what did not load of a file")
    retry.add_argument("file_id", type=int)
    retry.set_defaults(handler=_retry, dagster=True, migrates=True)

    status = commands.add_parser("status", help="a file's status as JSON")
    status.add_argument("file_id", type=int)
    status.set_defaults(handler=_status)

    results = commands.add_parser("results", help="a file's loaded rows as JSON")
    results.add_argument("file_id", type=int)
    results.add_argument("--limit", type=int, default=100)
    results.add_argument("--offset", type=int, default=0)
    results.set_defaults(handler=_results)

    inbox = commands.add_parser("inbox", help="what is in the inbox and why it has not loaded")
    inbox.set_defaults(handler=_inbox)

    prune = commands.add_parser("prune", help="forget files that ended long ago")
    prune.add_argument("--older-than", required=True, help="an age: 30d, 12h, 90m")
    prune.add_argument(
        "--delete-rows", action="store_true", help="also delete their loaded and control rows"
    )
    prune.set_defaults(handler=_prune, dagster=True, migrates=True)

    api = commands.add_parser("api", help="serve the HTTP API: upload, status, results")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument(
        "--load",
        action="store_true",
        help="load uploaded files in this process (when no Dagster daemon runs the sensor)",
    )
    api.set_defaults(handler=_api)

    keys = commands.add_parser("keys", help="API keys: create, list, revoke")
    keys_commands = keys.add_subparsers(required=True, metavar="ACTION")
    create = keys_commands.add_parser("create", help="make a key; its token is shown once")
    create.add_argument("--name", required=True, help="whose key, what for")
    create.add_argument(
        "--scope", action="append", choices=["upload", "read"], required=True, dest="scopes"
    )
    create.add_argument(
        "--dataset", action="append", type=_dataset, dest="datasets", help="limit it (repeat)"
    )
    create.set_defaults(handler=_keys_create, migrates=True)
    listing = keys_commands.add_parser("list", help="the keys, without their tokens")
    listing.set_defaults(handler=_keys_list, migrates=True)
    revoke = keys_commands.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_keys_revoke, migrates=True)

    migrate = commands.add_parser("migrate", help="create or upgrade the control tables")
    migrate.set_defaults(handler=_migrate)
    return parser


def _priority(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError("priority must be between 0 and 10")
    return value


def _dataset(text: str) -> str:
    try:
        return dataset_name(text)
    except BadInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, default=str), flush=True)


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from granula_pipeline.stack import up

    # The environment only: a URL file left by a stack that was killed names a stopped server.
    return up(Settings(), port=args.port, host=args.host)


@contextmanager
def _instance() -> Iterator[DagsterInstance]:
    """The Dagster instance in DAGSTER_HOME (`main` points it at a running stack's), else an
    in-memory one for this command, said on stderr: its run shows in no UI.

    In memory beats a local SQLite instance here: both take about a second to load Dagster's
    storage code, and SQLite then spends some 25 ms writing each of a run's events.
    """
    from dagster import DagsterInstance

    with _collector_paused():
        if os.environ.get("DAGSTER_HOME"):
            instance = DagsterInstance.get()
            # One pooled connection per storage, as the webserver holds, where each of a run's
            # events would otherwise open its own (some 100 connections, 0.6 s, per file).
            instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=2)
        else:
            print(NO_INSTANCE, file=sys.stderr, flush=True)
            instance = DagsterInstance.ephemeral()
    with instance:
        yield instance


NO_INSTANCE = (
    "Granula: no DAGSTER_HOME and no `granula up` running in this folder: the run is kept in "
    "memory only and shows in no Dagster UI (the file's status is in granula.files)"
)


def _use_running_stack(settings: Settings) -> None:
    """Without DAGSTER_HOME, use the Dagster instance of the `granula up` running here (its
    database is the one `load_settings` found), so a load from the CLI shows in its UI."""
    if os.environ.get("DAGSTER_HOME"):
        return
    from granula_pipeline.stack import running_stack_home

    home = running_stack_home(settings)
    if home is not None:
        os.environ["DAGSTER_HOME"] = str(home)


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from granula_pipeline.lib.load.file import PlansAhead

    path = _existing_file(args.path)
    plans_ahead = PlansAhead()

    def register_and_plan() -> tuple[FileRecord, InboxFile, str]:
        ensure_migrated(settings)
        record, found = register_file(settings, path, dataset=args.dataset, priority=args.priority)
        run_id = plans_ahead.start(settings, record.partition_key, allow_duplicate=args.force)
        return record, found, run_id

    # The file is registered and planned on the other core while Dagster loads.
    with ThreadPoolExecutor(max_workers=1) as pool:
        registering = pool.submit(register_and_plan)
        _import_dagster()
        from granula_pipeline.defs.resources import GranulaResource
        from granula_pipeline.runs import ingest_registered

        with _instance() as instance:
            record, found, run_id = registering.result()
            final, _ = ingest_registered(
                instance,
                GranulaResource.from_settings(settings),
                record,
                found,
                force=args.force,
                log_level=settings.dagster_log_level,
                run_id=run_id,
                plans_ahead=plans_ahead,
            )
    _emit(final.summary())
    return 0 if final.status == FileStatus.COMPLETED else 1


def _retry(args: argparse.Namespace, settings: Settings) -> int:
    from granula_pipeline.defs.resources import GranulaResource
    from granula_pipeline.runs import retry

    with _instance() as instance:
        try:
            record, _ = retry(
                instance,
                GranulaResource.from_settings(settings),
                args.file_id,
                log_level=settings.dagster_log_level,
            )
        except LookupError as exc:
            raise CliError(str(exc)) from exc
    _emit(record.summary())
    return 0 if record.status == FileStatus.COMPLETED else 1


def _submit(args: argparse.Namespace, settings: Settings) -> int:
    from granula_pipeline.defs.resources import GranulaResource
    from granula_pipeline.runs import register

    if not os.environ.get("DAGSTER_HOME"):
        raise CliError("set DAGSTER_HOME to the Dagster instance that will run the file")
    source = _existing_file(args.path)
    try:
        destination = copy_into_inbox(
            source, settings.inbox, priority=args.priority, dataset=args.dataset
        )
    except FileExistsError as exc:
        raise CliError(f"{exc.filename2} is already waiting in the inbox") from exc
    with _instance() as instance:
        granula = GranulaResource.from_settings(settings)
        record, _ = register(instance, granula, destination, dataset=args.dataset)
    _emit(
        {
            "file_id": record.file_id,
            "partition": record.partition_key,
            "path": str(destination),
            "status": record.status,
        }
    )
    return 0


def _existing_file(path: Path) -> Path:
    if not path.is_file():
        raise CliError(f"{path} is not a file")
    return path


def _record(settings: Settings, conn: psycopg.Connection, file_id: int) -> FileRecord:
    record = file_by_id(conn, file_id)
    if record is None:
        raise CliError(f"no file with id {file_id}")
    return record


def _status(args: argparse.Namespace, settings: Settings) -> int:
    check_migrated(settings)
    with connect(settings.psycopg_conninfo) as conn:
        _emit(_record(settings, conn, args.file_id).summary())
    return 0


def _results(args: argparse.Namespace, settings: Settings) -> int:
    from granula_pipeline.lib.control.results import TableGone, file_results

    check_migrated(settings)
    with connect(settings.psycopg_conninfo) as conn:
        record = _record(settings, conn, args.file_id)
        try:
            _emit(file_results(conn, record, limit=args.limit, offset=args.offset))
        except TableGone as exc:
            raise CliError(str(exc)) from exc
    return 0


def _inbox(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict

    from granula_pipeline.lib.inbox.listing import list_inbox

    check_migrated(settings)
    with connect(settings.psycopg_conninfo) as conn:
        entries = list_inbox(settings, conn)
    _emit({"inbox": str(settings.inbox.resolve()), "files": [asdict(e) for e in entries]})
    return 0


def _prune(args: argparse.Namespace, settings: Settings) -> int:
    from granula_pipeline.defs.resources import GranulaResource
    from granula_pipeline.lib.control.retention import parse_age
    from granula_pipeline.runs import prune

    try:
        age = parse_age(args.older_than)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    with _instance() as instance:
        granula = GranulaResource.from_settings(settings)
        _emit(prune(instance, granula, age, delete_rows=args.delete_rows))
    return 0


def _api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from granula_pipeline.api import create_app
    from granula_pipeline.api.transport import is_loopback
    from granula_pipeline.lib.access.keys import any_active_key

    try:
        settings.require_database_url()
    except RuntimeError as exc:
        raise CliError(str(exc)) from exc
    loopback = is_loopback(args.host)
    if not loopback:
        ensure_migrated(settings)
        with connect(settings.psycopg_conninfo) as conn:
            if not any_active_key(conn):
                raise CliError(
                    f"refusing to serve on {args.host} without an API key: make one with "
                    "`granula keys create`, or serve on 127.0.0.1 behind a proxy"
                )
    serve = {
        "host": args.host,
        "port": args.port,
        "timeout_keep_alive": int(settings.api_idle_timeout_seconds),
        "server_header": False,
    }
    options = {"bind_host": args.host, "open_without_keys": loopback}
    if not args.load:
        uvicorn.run(create_app(settings, **options), **serve)
        return 0
    from granula_pipeline.defs.resources import GranulaResource
    from granula_pipeline.runs import BackgroundLoader

    with _instance() as instance:
        loader = BackgroundLoader(instance, GranulaResource.from_settings(settings))

        def load_queued() -> None:  # files uploaded before a restart, never loaded
            from granula_pipeline.lib.control.files import files_where

            with connect(settings.psycopg_conninfo) as conn:
                queued = files_where(conn, "f.status = %s", (FileStatus.QUEUED.value,))
            for record in queued:
                if Path(record.path).is_file():
                    loader(record)

        app = create_app(settings, on_upload=loader, on_start=load_queued, **options)
        try:
            uvicorn.run(app, **serve)
        finally:
            loader.close()
    return 0


def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from granula_pipeline.lib.access.keys import Scope, create_key

    with connect(settings.psycopg_conninfo) as conn:
        key, token = create_key(conn, args.name, [Scope(s) for s in args.scopes], args.datasets)
    _emit({**key.summary(), "token": token, "note": "shown this once; only its hash is kept"})
    return 0


def _keys_list(args: argparse.Namespace, settings: Settings) -> int:
    from granula_pipeline.lib.access.keys import list_keys

    with connect(settings.psycopg_conninfo) as conn:
        _emit({"keys": [key.summary() for key in list_keys(conn)]})
    return 0


def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from granula_pipeline.lib.access.keys import revoke_key

    with connect(settings.psycopg_conninfo) as conn:
        if not revoke_key(conn, args.key_id):
            raise CliError(f"no active key {args.key_id}; `granula keys list` shows them")
    _emit({"revoked": args.key_id})
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    ensure_migrated(settings)
    _emit({"migrated": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
