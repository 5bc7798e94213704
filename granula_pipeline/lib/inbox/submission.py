"""Placing a file in the inbox and registering it, as `granula submit` and the HTTP API do.

A file is written under a name the sensor ignores, in the folder it will end up in, and only then
given its real name, so the sensor never sees half a file. Registering it records the partition
key the sensor computes for the same file, so both name the same `granula.files` row.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path, PureWindowsPath

import psycopg

from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.db import connect
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.names import table_name_for
from granula_pipeline.lib.formats.source import content_type
from granula_pipeline.lib.inbox.scan import (
    MAX_PRIORITY,
    InboxFile,
    dataset_from_filename,
    dataset_name,
    describe,
    is_temporary,
)
from granula_pipeline.lib.model import FileRecord
from granula_pipeline.settings import Settings

MAX_NAME_BYTES = 200


def inbox_folder(inbox: Path, *, priority: int, dataset: str | None = None) -> Path:
    """The folder whose place in the inbox says this priority (and dataset): always inside the
    inbox, as a dataset must be one folder name (`dataset_name`; BadInputError otherwise)."""
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be between 0 and {MAX_PRIORITY}")
    folder = inbox / f"priority-{priority}" if priority else inbox
    return folder / dataset_name(dataset) if dataset else folder


def staging_path(folder: Path, name: str) -> Path:
    """A name beside the final one that the sensor ignores (a dot-file), unique per writer."""
    return folder / f".{name}.{uuid.uuid4().hex[:12]}.granula-tmp"


def publish(staging: Path, destination: Path) -> None:
    """Give the staged file its real name at once; never replace a file already there.

    A hard link is an atomic rename that refuses to overwrite: a file of the same name still
    waiting in the inbox (or being loaded) is left alone, and FileExistsError says so.
    """
    try:
        try:
            os.link(staging, destination)
        except FileExistsError:
            raise
        except OSError:  # a filesystem without hard links (some network mounts)
            if destination.exists():
                raise FileExistsError(
                    errno.EEXIST, os.strerror(errno.EEXIST), str(staging), None, str(destination)
                ) from None
            os.replace(staging, destination)
    finally:
        staging.unlink(missing_ok=True)


def copy_into_inbox(
    source: Path, inbox: Path, *, priority: int = 0, dataset: str | None = None
) -> Path:
    """Copy a file into the inbox atomically; return where it now is."""
    folder = inbox_folder(inbox, priority=priority, dataset=dataset)
    folder.mkdir(parents=True, exist_ok=True)
    staging = staging_path(folder, source.name)
    try:
        shutil.copyfile(source, staging)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    destination = folder / source.name
    publish(staging, destination)
    return destination


def register_in_inbox(
    conn: psycopg.Connection,
    inbox: Path,
    path: Path,
    *,
    dataset: str | None = None,
    priority: int | None = None,
) -> tuple[FileRecord, InboxFile]:
    """Record a file placed in the inbox as queued, under the partition key the sensor gives it."""
    found = describe(path, inbox, dataset=dataset, priority=priority)
    record = control.register_file(
        conn,
        partition_key=found.partition_key,
        path=str(path.absolute()),
        dataset=found.dataset,
        priority=found.priority,
        size_bytes=found.size_bytes,
    )
    return record, found


def register_file(
    settings: Settings, path: Path, *, dataset: str | None = None, priority: int | None = None
) -> tuple[FileRecord, InboxFile]:
    """`register_in_inbox` over a connection of its own."""
    with connect(settings.psycopg_conninfo, autocommit=True) as conn:
        return register_in_inbox(conn, settings.inbox, path, dataset=dataset, priority=priority)


def upload_name(filename: str, content_types: frozenset[str]) -> str:
    """The name an uploaded file gets in the inbox: its own, without folders (`.csv` added to a
    name without a suffix); refuse names the sensor would ignore or the loader would refuse."""
    name = PureWindowsPath(filename).name  # drops folders written with / or \
    if not name or name in {".", ".."} or any(ord(char) < 32 for char in name):
        raise BadInputError(f"the file name {filename!r} is not usable; send a name like data.csv")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise BadInputError(f"the file name is over {MAX_NAME_BYTES} bytes; shorten it")
    if is_temporary(name):
        raise BadInputError(
            f"the file name {name!r} looks temporary (dot-, ~-, .tmp, .part...) and would never "
            "be loaded; rename it"
        )
    if not Path(name).suffix:
        name += ".csv"  # the part's content type, checked already, is all there is to go by
    guessed = content_type(Path(name))[0]
    if guessed not in content_types:
        raise BadInputError(
            f"the file name {name!r} says {guessed}, which ALLOWED_CONTENT_TYPES "
            f"({','.join(sorted(content_types))}) does not accept; name it .csv"
        )
    try:
        table_name_for(dataset_from_filename(name))
    except ValueError as exc:
        raise BadInputError(f"the file name {name!r} gives no table name: {exc}") from exc
    return name
