"""What is in the inbox and why each file has not loaded yet: `granula inbox`.

The same rules as the inbox sensor (scan.py, admission.py) and the files' rows in granula.files,
read without changing anything: a file is waiting to settle, ready for the sensor's next look,
refused (and why), queued for a run, or loading.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from granula_pipeline.lib.control.files import files_where
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.inbox.admission import check_admissible
from granula_pipeline.lib.inbox.scan import InboxFile, is_temporary, scan_inbox
from granula_pipeline.lib.model import FileRecord, FileStatus
from granula_pipeline.settings import Settings


@dataclass(frozen=True)
class InboxEntry:
    path: str
    dataset: str | None
    priority: int | None
    size_bytes: int
    state: str  # waiting, ready, refused, queued, loading, ignored, or a final status
    reason: str
    file_id: int | None = None


def list_inbox(
    settings: Settings, conn: psycopg.Connection, *, now_ns: int | None = None
) -> list[InboxEntry]:
    """Every file under the inbox, highest priority first, with its state and the reason."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    found = scan_inbox(settings.inbox)
    keys = [f.partition_key for f in found]
    records = {r.partition_key: r for r in files_where(conn, "f.partition_key = ANY(%s)", (keys,))}
    entries = [_entry(settings, f, records.get(f.partition_key), now_ns) for f in found]
    return entries + _temporary(settings.inbox)


def _entry(
    settings: Settings, found: InboxFile, record: FileRecord | None, now_ns: int
) -> InboxEntry:
    def entry(state: str, reason: str) -> InboxEntry:
        return InboxEntry(
            found.relative_path,
            found.dataset,
            found.priority,
            found.size_bytes,
            state,
            reason,
            record.file_id if record else None,
        )

    if record is not None:
        return entry(*_registered(record))
    try:
        check_admissible(
            settings.inbox / found.relative_path,
            inbox=settings.inbox,
            max_bytes=settings.max_upload_bytes,
            content_types=settings.content_types,
        )
    except BadInputError as exc:
        return entry("refused", str(exc))
    quiet_for = (now_ns - found.mtime_ns) / 1e9
    if quiet_for < settings.settle_seconds:
        return entry(
            "waiting",
            f"changed {max(quiet_for, 0):.1f}s ago: it loads once unchanged for "
            f"SETTLE_SECONDS={settings.settle_seconds:g}s (still being written?)",
        )
    return entry(
        "ready",
        f"settled: the inbox sensor registers it at its next look (every "
        f"SENSOR_INTERVAL_SECONDS={settings.sensor_interval_seconds}s) while `granula up` "
        "or a Dagster daemon runs",
    )


def _registered(record: FileRecord) -> tuple[str, str]:
    if record.status == FileStatus.QUEUED:
        return "queued", (
            f"registered as file {record.file_id}; its run waits for a free slot "
            f"(MAX_CONCURRENCY), priority {record.priority}"
        )
    if record.status == FileStatus.PROCESSING:
        chunks = f"{record.processed_chunks} of {record.total_chunks or '?'} chunks"
        return "loading", f"file {record.file_id}: {chunks} loaded, run {record.run_id}"
    return record.status.value, record.error_message or f"file {record.file_id} has ended"


def _temporary(inbox: Path) -> list[InboxEntry]:
    """Files the sensor never looks at: names writers use while writing (.part, .tmp, ~...)."""
    ignored: list[InboxEntry] = []
    if not inbox.is_dir():
        return ignored
    for directory, subdirectories, names in os.walk(inbox):
        for name in [*names, *(f"{d}/" for d in subdirectories if is_temporary(d))]:
            if not is_temporary(name.rstrip("/")):
                continue
            path = Path(directory) / name
            ignored.append(
                InboxEntry(
                    path.relative_to(inbox).as_posix() + ("/" if name.endswith("/") else ""),
                    None,
                    None,
                    path.lstat().st_size if not name.endswith("/") else 0,
                    "ignored",
                    "a temporary name (a writer's, while writing): rename it when it is complete",
                )
            )
        subdirectories[:] = [d for d in subdirectories if not is_temporary(d)]
    return ignored
