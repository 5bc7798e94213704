"""What the `file_status` asset shows of a file: Dagster's standard metadata and its checks."""

import psycopg
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    TableColumn,
    TableSchema,
)
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.control.files import FileRecord
from granula_pipeline.settings import Settings

FILE_STATUS = AssetKey("file_status")
PREVIEW_ROWS = 5
ROWS_ADD_UP = "rows_add_up"
NO_FAILED_CHUNKS = "no_failed_chunks"
COLUMNS_UNCHANGED = "columns_unchanged"


def status_metadata(record: FileRecord) -> dict[str, MetadataValue]:
    """Counts, timing and status: cheap, available even when the database is not."""
    seconds = record.duration_seconds or 0.0
    rate = round(record.loaded_rows / seconds, 1) if seconds else 0.0
    return {
        "status": MetadataValue.text(record.status),
        "file_id": MetadataValue.int(record.file_id),
        "filename": MetadataValue.text(record.filename),
        "source_path": MetadataValue.path(record.path),
        "dataset": MetadataValue.text(record.dataset),
        "table": MetadataValue.text(record.table_name or ""),
        "error": MetadataValue.text(record.error_message or ""),
        "total_chunks": MetadataValue.int(record.total_chunks or 0),
        "processed_chunks": MetadataValue.int(record.processed_chunks),
        "failed_chunks": MetadataValue.int(record.failed_chunks),
        "source_rows": MetadataValue.int(record.total_rows or 0),
        "loaded_rows": MetadataValue.int(record.loaded_rows),
        "rejected_rows": MetadataValue.int(record.rejected_rows),
        "duration_seconds": MetadataValue.float(round(seconds, 3)),
        "rows_per_second": MetadataValue.float(rate),
        "dagster/row_count": MetadataValue.int(record.loaded_rows),
    }


def table_metadata(settings: Settings, record: FileRecord) -> dict[str, MetadataValue]:
    """The loaded table's name and columns, and previews of loaded and rejected rows."""
    if not record.table_name:
        return {}
    schema, table = record.table_name.split(".", 1)
    database = conninfo_to_dict(settings.psycopg_conninfo).get("dbname", "")
    with psycopg.connect(settings.psycopg_conninfo) as conn:
        columns = conn.execute(
            """
            SELECT column_name, data_type, col_description(%s::regclass, ordinal_position)
            FROM information_schema.columns WHERE table_schema = %s AND table_name = %s
            ORDER BY ordinal_position
            """,
            (record.table_name, schema, table),
        ).fetchall()
        preview = conn.execute(
            sql.SQL("SELECT * FROM {} WHERE _granula_file_id = %s LIMIT %s").format(
                sql.Identifier(schema, table)
            ),
            (record.file_id, PREVIEW_ROWS),
        )
        names = [d.name for d in preview.description or []]
        preview_rows = preview.fetchall()
        rejected = conn.execute(
            "SELECT line_number, reason, left(raw_text, 120) FROM granula.rejected_rows "
            "WHERE file_id = %s ORDER BY line_number LIMIT %s",
            (record.file_id, PREVIEW_ROWS),
        ).fetchall()
    return {
        "dagster/table_name": MetadataValue.text(f"{database}.{record.table_name}"),
        "dagster/column_schema": MetadataValue.table_schema(
            TableSchema(
                columns=[
                    TableColumn(name=name, type=data_type, description=description)
                    for name, data_type, description in columns
                ]
            )
        ),
        "preview": MetadataValue.md(_markdown(names, preview_rows)),
        "rejected_preview": MetadataValue.md(
            _markdown(["line", "reason", "raw text"], rejected) if rejected else "No rejected rows."
        ),
    }


def _markdown(names: list[str], rows: list[tuple]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", "⏎")[:80] if value is not None else ""

    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def check_results(settings: Settings, record: FileRecord) -> list[AssetCheckResult]:
    """The file's checks: its rows add up, no chunk failed, its columns match the last file's."""
    with psycopg.connect(settings.psycopg_conninfo) as conn:
        previous = control.previous_columns(conn, record)
    source, loaded, rejected = record.total_rows or 0, record.loaded_rows, record.rejected_rows
    added_up = AssetCheckResult(
        check_name=ROWS_ADD_UP,
        passed=record.duplicate_of is not None or source == loaded + rejected,
        metadata={"source_rows": source, "loaded_rows": loaded, "rejected_rows": rejected},
        description=f"source rows {source} = loaded {loaded} + rejected {rejected}",
    )
    chunks = AssetCheckResult(
        check_name=NO_FAILED_CHUNKS,
        passed=record.failed_chunks == 0,
        metadata={"failed_chunks": record.failed_chunks, "error": record.error_message or ""},
        description=(
            f"{record.failed_chunks} of {record.total_chunks} chunks failed: `granula retry "
            f"{record.file_id}` loads them once the cause is fixed"
            if record.failed_chunks
            else "every chunk committed"
        ),
    )
    current = {c["name"]: c["type"] for c in record.columns or []}
    before = {c["name"]: c["type"] for c in previous or []}
    changes = _column_changes(before, current) if previous is not None else []
    columns = AssetCheckResult(
        check_name=COLUMNS_UNCHANGED,
        passed=not changes,
        severity=AssetCheckSeverity.WARN,
        metadata={"changes": MetadataValue.md("\n".join(f"- {c}" for c in changes) or "none")},
        description="; ".join(changes) or "same columns as the dataset's previous file",
    )
    return [added_up, chunks, columns]


def _column_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    changes = [f"new column {name} ({kind})" for name, kind in after.items() if name not in before]
    changes += [f"column {name} missing" for name in before if name not in after]
    changes += [
        f"column {name}: {before[name]} -> {kind}"
        for name, kind in after.items()
        if name in before and before[name] != kind
    ]
    return changes


def check_evaluations(
    settings: Settings, record: FileRecord, partition: str
) -> list[AssetCheckEvaluation]:
    """The same checks as evaluations, to report on a file whose run failed."""
    return [
        AssetCheckEvaluation(
            asset_key=FILE_STATUS,
            check_name=result.check_name or "",
            passed=result.passed,
            metadata=result.metadata,
            severity=result.severity,
            description=result.description,
            partition=partition,
        )
        for result in check_results(settings, record)
    ]


def check_key(name: str) -> AssetCheckKey:
    return AssetCheckKey(FILE_STATUS, name)
