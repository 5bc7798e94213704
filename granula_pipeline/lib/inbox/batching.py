"""Which ready files load together: small files share a run, a large one has its own.

A run costs Dagster seconds to start whatever it loads, so a few thousand rows are cheap only in
company. A batch never mixes priorities (the run queue orders runs, not files), keeps the inbox's
order, and stops at a count and a size; a file of `max_bytes` or more is a batch of its own, so
one huge file never holds small ones back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from granula_pipeline.lib.inbox.scan import InboxFile
from granula_pipeline.lib.model import ChunkPlan

# A run starts in 3-5 s (a new process, imports, the code location): about what loading ten
# small files costs. Fewer files are not worth a run slot of their own.
SPREAD_MIN_FILES = 10


@dataclass(frozen=True)
class Batch:
    files: tuple[InboxFile, ...]

    @property
    def priority(self) -> int:
        return self.files[0].priority

    @property
    def size_bytes(self) -> int:
        return sum(found.size_bytes for found in self.files)

    @property
    def datasets(self) -> list[str]:
        return sorted({found.dataset for found in self.files})


def plan_batches(
    ready: Iterable[InboxFile], *, max_files: int, max_bytes: int, spread: int = 1
) -> list[Batch]:
    """Group `ready` (highest priority first, as `scan_inbox` orders them) into batches.

    The small files of a priority are shared out evenly over up to `spread` batches (the runs
    that may load at once), so every run slot works and none finishes long after the others, as
    long as each batch keeps `SPREAD_MIN_FILES`: a run's start costs as much as loading them.
    """
    batches: list[Batch] = []
    small: dict[int, list[InboxFile]] = {}
    for found in ready:
        if found.size_bytes >= max_bytes:
            batches.append(Batch((found,)))
        else:
            small.setdefault(found.priority, []).append(found)
    for files in small.values():
        count = max(math.ceil(len(files) / max_files), min(spread, len(files) // SPREAD_MIN_FILES))
        batches.extend(_fill(files, math.ceil(len(files) / count), max_bytes))
    return sorted(batches, key=lambda batch: -batch.priority)  # stable: inbox order kept


def _fill(files: list[InboxFile], per_batch: int, max_bytes: int) -> list[Batch]:
    batches: list[list[InboxFile]] = [[]]
    size = 0
    for found in files:
        if batches[-1] and (len(batches[-1]) >= per_batch or size + found.size_bytes > max_bytes):
            batches.append([])
            size = 0
        batches[-1].append(found)
        size += found.size_bytes
    return [Batch(tuple(batch)) for batch in batches if batch]


T = TypeVar("T")


def group_chunks(
    items: Sequence[T], chunk_of: Callable[[T], ChunkPlan], *, max_rows: int, max_bytes: int
) -> list[list[T]]:
    """Pack chunks of a batch's files into load steps of at most one chunk's rows and bytes.

    A step costs Dagster a handful of events whatever it loads, so the chunks of small files share
    one; a full-size chunk (a large file's) is a step of its own. Order is kept.
    """
    groups: list[list[T]] = [[]]
    rows = size = 0
    for item in items:
        chunk = chunk_of(item)
        if groups[-1] and (
            rows + chunk.planned_rows > max_rows or size + chunk.byte_count > max_bytes
        ):
            groups.append([])
            rows = size = 0
        groups[-1].append(item)
        rows += chunk.planned_rows
        size += chunk.byte_count
    return [group for group in groups if group]
