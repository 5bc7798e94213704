"""The file a load planned, and only that file: opened once for each read, never through a link
that leads out of our folders, and refused, saying how, once it is not the file planned."""

from __future__ import annotations

import errno
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.source import NotRegularFile, OpenedFile, open_file
from granula_pipeline.lib.inbox.admission import LinkOutside, readable_path, shown
from granula_pipeline.lib.model import FileIdentity


class FileChangedError(BadInputError):
    """The file is not what was planned any more: changed, replaced, re-linked or gone."""


class LoadUndone(BadInputError):
    """A chunk of a file whose load was undone, as the file changed: it has nothing to load."""


@contextmanager
def open_current(path: Path, folders: Sequence[Path], *, file_id: int) -> Iterator[OpenedFile]:
    """Open the file `path` names now (a link's target, which must stay in our `folders`)."""
    with ExitStack() as stack:
        try:
            opened = stack.enter_context(open_file(readable_path(path, folders)))
        except (LinkOutside, NotRegularFile, OSError) as exc:
            gone = _not_openable(exc, shown(path, folders), file_id)
            if gone is None:
                raise
            raise gone from exc
        yield opened


def _not_openable(exc: Exception, path: str, file_id: int) -> FileChangedError | None:
    """What it means that the planned file cannot be opened: it went, or its name was taken."""
    if isinstance(exc, FileNotFoundError):
        return FileChangedError(
            f"the file was deleted or moved while it was loading ({path} is gone): "
            "it was not loaded; drop it into the inbox again"
        )
    if isinstance(exc, LinkOutside):
        return changed(
            f"it is now a symbolic link to {exc.target.name!r}, outside the inbox", file_id
        )
    if isinstance(exc, NotRegularFile):
        return changed(f"{path} is now another file, not a regular one", file_id)
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return changed(f"{path} was replaced by a symbolic link", file_id)
    return None


@contextmanager
def open_planned(
    path: Path, planned: FileIdentity | None, folders: Sequence[Path], *, file_id: int
) -> Iterator[Path]:
    """The planned file, opened once: yield a path that reads that very file.

    The file is checked to be the one planned when it is opened, and again once the caller has
    read it, so the bytes read are the bytes planned (FileChangedError otherwise). A file planned
    without its identity recorded (by an older Granula) is read as it is.
    """
    with open_current(path, folders, file_id=file_id) as opened:
        check_unchanged(planned, opened.identity, path, file_id=file_id, folders=folders)
        yield opened.path
        check_unchanged(planned, opened.identity_now(), path, file_id=file_id, folders=folders)


def check_unchanged(
    planned: FileIdentity | None,
    now: FileIdentity,
    path: Path,
    *,
    file_id: int,
    folders: Sequence[Path] = (),
) -> None:
    """Raise FileChangedError, saying what changed, unless `now` is the file `planned`."""
    if planned is None or now == planned:
        return
    if not planned.same_file(now):
        what = f"{shown(path, folders)} is now another file"
    elif now.size != planned.size:
        what = f"size {planned.size:,} -> {now.size:,} bytes, modified at {_at(now.mtime_ns)}"
    elif now.mtime_ns != planned.mtime_ns:
        what = f"modified at {_at(now.mtime_ns)}"
    else:
        what = f"changed at {_at(now.ctime_ns)}, with its size and modification time kept"
    raise changed(what, file_id)


def changed(what: str, file_id: int) -> FileChangedError:
    return FileChangedError(
        f"the file changed while it was loading ({what}): it was not loaded; "
        f"drop it again, or `granula retry {file_id}` once it is complete"
    )


def _at(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9).astimezone().isoformat(" ", "milliseconds")
