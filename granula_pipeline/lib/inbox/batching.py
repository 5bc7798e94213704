"""Which ready files load together: small files share a run, a large one has its own.

A run costs Dagster seconds to start whatever it loads, so a few thousand rows are cheap only in
company. A batch never mixes priorities (the run queue orders runs, not files), keeps the inbox's
order, and stops at a count and a size; a file of `max_bytes` or more is a batch of its own, so
one huge file never holds small ones back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from granula_pipeline.lib.inbox.scan import InboxFile
from granula_pipeline.lib.model import ChunkPlan


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


def plan_batches(ready: Iterable[InboxFile], *, max_files: int, max_bytes: int) -> list[Batch]:
    """Group `ready` (highest priority first, as `scan_inbox` orders them) into batches."""
    batches: list[Batch] = []
    current: list[InboxFile] = []
    current_bytes = 0

    def close() -> None:
        nonlocal current, current_bytes
        if current:
            batches.append(Batch(tuple(current)))
        current, current_bytes = [], 0

    for found in ready:
        if found.size_bytes >= max_bytes:
            batches.append(Batch((found,)))
            continue
        if current and (
            found.priority != current[0].priority
            or len(current) >= max_files
            or current_bytes + found.size_bytes > max_bytes
        ):
            close()
        current.append(found)
        current_bytes += found.size_bytes
    close()
    return sorted(batches, key=lambda batch: -batch.priority)  # stable: inbox order kept


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
