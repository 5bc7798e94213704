"""Whether a file may be loaded at all: refusals say what to do."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.source import content_type


class LinkOutside(BadInputError):
    """A symbolic link in one of our folders leads out of them."""

    def __init__(self, target: Path):
        super().__init__(
            f"this is a symbolic link to {target.name!r}, outside the inbox; copy the file "
            "itself in"
        )
        self.target = target


def check_admissible(
    path: Path, *, inbox: Path, max_bytes: int, content_types: frozenset[str]
) -> None:
    """Refuse a file that is gone, too large, of a type not allowed, or a link out of the inbox."""
    readable_path(path, [inbox])
    if not path.is_file():
        raise BadInputError(
            f"the file {shown(path, [inbox])} is gone or is not a regular file; was it moved?"
        )
    guessed = content_type(path)[0]
    if guessed not in content_types:
        raise BadInputError(
            f"content type {guessed} (from the name {path.name!r}) is not accepted; "
            f"ALLOWED_CONTENT_TYPES is {','.join(sorted(content_types))}"
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise BadInputError(
            f"the file is {size / 2**20:.1f} MiB, over MAX_UPLOAD_MB={max_bytes // 2**20}; "
            "split it or raise the limit"
        )


def readable_path(path: Path, folders: Sequence[Path]) -> Path:
    """The file to open for `path`: itself, or a symbolic link's target, resolved now.

    A link in one of our `folders` (the inbox, failed/) must lead into one of them, whenever it
    is looked at: LinkOutside otherwise. A file named from elsewhere is read where it leads.
    """
    if not path.is_symlink():
        return path
    try:
        target = path.resolve(strict=True)
    except (RuntimeError, OSError) as exc:  # a loop of links, or a link to nothing
        raise BadInputError(
            f"this is a symbolic link that leads nowhere ({exc.__class__.__name__}: a loop of "
            "links, or its target is gone); copy the file itself in"
        ) from exc
    if _inside(path.absolute(), folders) and not _inside(target, folders):
        raise LinkOutside(target)
    return target


def check_single_name(path: Path, links: int, folders: Sequence[Path]) -> None:
    """Refuse a file of ours that has other names: a hard link in the inbox to a file elsewhere,
    which could change, or be loaded again, under that other name."""
    if links > 1 and _inside(path.absolute(), folders):
        raise BadInputError(
            f"this is a hard link to a file elsewhere ({links} links); copy the file itself in"
        )


def shown(path: Path, folders: Sequence[Path]) -> str:
    """`path` as error messages name it: `inbox/...` (or `failed/...`) inside one of `folders`,
    else its name alone; never the server's absolute path."""
    for folder in folders:
        for root in (folder.absolute(), folder.resolve()):
            if path.absolute().is_relative_to(root):
                return (Path(folder.name) / path.absolute().relative_to(root)).as_posix()
    return path.name


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    """Whether `path` is in one of `folders`, named as given or with their links resolved."""
    return any(
        path.is_relative_to(folder.absolute()) or path.is_relative_to(folder.resolve())
        for folder in folders
    )
