"""Whether a file may be loaded at all: refusals say what to do."""

from __future__ import annotations

from pathlib import Path

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.source import content_type


def check_admissible(
    path: Path, *, inbox: Path, max_bytes: int, content_types: frozenset[str]
) -> None:
    """Refuse a file that is gone, too large, of a type not allowed, or a link out of the inbox."""
    if path.is_symlink():
        target = path.resolve()
        if path.absolute().is_relative_to(inbox.absolute()) and not target.is_relative_to(
            inbox.resolve()
        ):
            raise BadInputError(
                f"this is a symbolic link to {target}, outside the inbox; copy the file itself in"
            )
    if not path.is_file():
        raise BadInputError(f"the file {path} is gone or is not a regular file; was it moved?")
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
