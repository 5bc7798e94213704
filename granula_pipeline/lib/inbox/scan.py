"""The inbox's conventions: which files are ready, their priority, dataset and partition key.

data/inbox/orders.csv                      dataset "orders", priority 0
data/inbox/priority-7/orders.csv           dataset "orders", priority 7
data/inbox/priority-7/sales/2026-01.csv    dataset "sales",  priority 7
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.names import table_name_for

PRIORITY_DIR = re.compile(r"^priority-(\d{1,2})$")
TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", ".swp", "~")
MAX_PRIORITY = 10
MAX_DATASET_BYTES = 200


@dataclass(frozen=True)
class InboxFile:
    """A file found in the inbox, with what its place there says about it."""

    relative_path: str
    size_bytes: int
    mtime_ns: int
    priority: int
    dataset: str
    ctime_ns: int = 0

    @property
    def changed_ns(self) -> int:
        """When the file last changed: its mtime, or its ctime when that is later (a copy that
        keeps the source's old mtime, `cp -p` or `rsync -t`, still sets the ctime to now)."""
        return max(self.mtime_ns, self.ctime_ns)

    @property
    def signature(self) -> str:
        """Changes whenever the content may have changed: same path, new content, new load."""
        return f"{self.size_bytes}:{self.mtime_ns}"

    @property
    def partition_key(self) -> str:
        """The file's partition: one per path, content and dataset (the same file loaded into
        another dataset is another load)."""
        digest = hashlib.blake2b(
            f"{self.relative_path}|{self.signature}|{self.dataset}".encode(), digest_size=4
        ).hexdigest()
        return f"{self.relative_path}@{digest}"


def is_temporary(name: str) -> bool:
    """Names that writers use while a file is still being written."""
    return name.startswith((".", "~")) or name.lower().endswith(TEMPORARY_SUFFIXES)


def priority_and_dataset(relative_path: str) -> tuple[int, str]:
    """Read the priority folder and the dataset (folder, or else file name) from a path."""
    parts = Path(relative_path).parts
    priority = 0
    if len(parts) > 1 and (match := PRIORITY_DIR.match(parts[0])):
        priority = min(int(match.group(1)), MAX_PRIORITY)
        parts = parts[1:]
    dataset = parts[-2] if len(parts) > 1 else dataset_from_filename(parts[-1])
    return priority, unicodedata.normalize("NFC", dataset)


def dataset_name(text: str) -> str:
    """A dataset named by its owner (`--dataset`), in NFC, the form datasets are compared in.

    It must be one folder name the inbox would read back as this dataset: no `/`, `\\`, `.`
    or `..`, nothing the sensor ignores or reads as a priority, and some letter or digit for its
    table's name.
    """
    name = unicodedata.normalize("NFC", text)
    problem = _dataset_name_problem(name)
    if problem is not None:
        raise BadInputError(f"the dataset name {text!r} {problem}; name it like sales_2026")
    return name


def _dataset_name_problem(name: str) -> str | None:
    if not name:
        return "is empty"
    if "/" in name or "\\" in name or name in {".", ".."}:
        return "is not one folder name (no /, \\, . or ..)"
    if any(unicodedata.category(char) == "Cc" for char in name):
        return "holds a control character"
    if len(name.encode()) > MAX_DATASET_BYTES:
        return f"is over {MAX_DATASET_BYTES} bytes"
    if is_temporary(name):
        return "looks temporary (dot-, ~-, .tmp, .part...): the inbox ignores such a folder"
    if PRIORITY_DIR.match(name):
        return "is a priority folder's name"
    try:
        table_name_for(name)
    except ValueError:
        return "has no letters or digits"
    return None


def dataset_from_filename(name: str) -> str:
    stem = name
    for suffix in (".gz", ".csv", ".tsv", ".txt", ".ndjson", ".jsonl", ".parquet"):
        stem = stem.removesuffix(suffix).removesuffix(suffix.upper())
    return stem


def scan_inbox(inbox: Path) -> list[InboxFile]:
    """Every non-temporary regular file under the inbox, with its priority and dataset."""
    found: list[InboxFile] = []
    if not inbox.is_dir():
        return found
    for directory, subdirectories, names in os.walk(inbox):
        subdirectories[:] = [d for d in subdirectories if not is_temporary(d)]
        for name in names:
            if is_temporary(name):
                continue
            path = Path(directory) / name
            try:
                stat = path.lstat()
            except FileNotFoundError:
                continue
            relative = path.relative_to(inbox).as_posix()
            priority, dataset = priority_and_dataset(relative)
            found.append(
                InboxFile(
                    relative, stat.st_size, stat.st_mtime_ns, priority, dataset, stat.st_ctime_ns
                )
            )
    return sorted(found, key=lambda f: (-f.priority, f.relative_path))


def relative_path_of(partition_key: str) -> str:
    return partition_key.rsplit("@", 1)[0]


@dataclass(frozen=True)
class InboxCursor:
    """What the sensor saw on its last tick, and which versions of which files it launched."""

    seen: dict[str, str]
    launched: dict[str, str]

    @classmethod
    def from_json(cls, text: str | None) -> InboxCursor:
        if not text:
            return cls({}, {})
        data = json.loads(text)
        return cls(dict(data.get("seen", {})), dict(data.get("launched", {})))

    def to_json(self) -> str:
        return json.dumps({"seen": self.seen, "launched": self.launched}, sort_keys=True)


@dataclass(frozen=True)
class InboxScan:
    ready: list[InboxFile]
    waiting: list[InboxFile]
    cursor: InboxCursor

    def next_ready_in(self, now_ns: int, settle_seconds: float) -> float | None:
        """Seconds until the first waiting file has been quiet for `settle_seconds` (if nothing
        changes it meanwhile); None when nothing waits."""
        if not self.waiting:
            return None
        quiet_from = min(found.changed_ns for found in self.waiting) + settle_seconds * 1e9
        return max(0.0, (quiet_from - now_ns) / 1e9)


def select_ready(
    files: list[InboxFile], cursor: InboxCursor, *, now_ns: int, settle_seconds: float
) -> InboxScan:
    """Files complete enough to load: quiet for `settle_seconds`, and not changed since the last
    look.

    One look is enough for a file that has not changed (by mtime or ctime) for `settle_seconds`:
    a writer still writing keeps moving both. A file seen with another size or mtime on the last
    look waits one more look, which catches a writer whose clock disagrees with ours (a network
    mount). One launched already is launched again only when its content (size, mtime) changed.
    Files that left the inbox are forgotten, so the cursor stays as small as the inbox.
    """
    seen = {f.relative_path: f.signature for f in files}
    launched = {path: sig for path, sig in cursor.launched.items() if path in seen}
    ready, waiting = [], []
    for found in files:
        if launched.get(found.relative_path) == found.signature:
            continue
        before = cursor.seen.get(found.relative_path)
        changed_since_last_look = before is not None and before != found.signature
        quiet = now_ns - found.changed_ns >= settle_seconds * 1e9
        if quiet and not changed_since_last_look:
            ready.append(found)
        else:
            waiting.append(found)
    return InboxScan(ready, waiting, InboxCursor(seen, launched))


def mark_launched(cursor: InboxCursor, files: list[InboxFile]) -> InboxCursor:
    """The cursor once `files` are launched: each is not launched again while unchanged."""
    launched = dict(cursor.launched)
    launched.update({found.relative_path: found.signature for found in files})
    return InboxCursor(cursor.seen, launched)


def describe(
    path: Path, inbox: Path, *, dataset: str | None = None, priority: int | None = None
) -> InboxFile:
    """An InboxFile for any path: inside the inbox its place decides; elsewhere, its name.

    A `dataset` given overrides both, if `dataset_name` accepts it (BadInputError if not).
    """
    stat = path.lstat()
    resolved, root = path.absolute(), inbox.absolute()  # a link is described as the link
    if resolved.is_relative_to(root):
        relative = resolved.relative_to(root).as_posix()
        found_priority, found_dataset = priority_and_dataset(relative)
    else:
        where = hashlib.blake2b(str(resolved).encode(), digest_size=3).hexdigest()
        relative = f"external/{path.name}-{where}"
        found_priority, found_dataset = 0, dataset_from_filename(path.name)
    return InboxFile(
        relative,
        stat.st_size,
        stat.st_mtime_ns,
        found_priority if priority is None else priority,
        dataset_name(dataset) if dataset else found_dataset,
    )
