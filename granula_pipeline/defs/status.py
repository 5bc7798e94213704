"""What the `file_status` asset shows of a file: Dagster's standard metadata and its checks."""

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

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.control.catalog import file_table
from granula_pipeline.lib.model import FileRecord

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
        "status": MetadataValue.text(record.status.value),
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
        # Queued -> started: the wait before the load, which duration_seconds leaves out.
        "wait_seconds": MetadataValue.float(round(record.wait_seconds or 0.0, 3)),
        "rows_per_second": MetadataValue.float(rate),
        "dagster/row_count": MetadataValue.int(record.loaded_rows),
        **dialect_metadata(record),
    }


def dialect_metadata(record: FileRecord) -> dict[str, MetadataValue]:
    """How a CSV file is written, as its plan read it, and the lines before its table."""
    facts = record.dialect
    if not facts:
        return {}
    header = facts.get("header_rows", 1)
    described = (
        f"delimiter {facts.get('delimiter')!r}, quote {facts.get('quote')!r}, "
        f"escape {facts.get('escape')}, records end {facts.get('terminator')}, "
        + (f"header of {header} row(s)" if header else "no header (columns column_1..N)")
        + (f", header {facts['header_fix']}" if facts.get("header_fix") else "")
        + ("" if facts.get("copyable") else "; parsed record by record")
    )
    metadata: dict[str, MetadataValue] = {
        "dialect": MetadataValue.text(described),
        "preamble": MetadataValue.text("\n".join(facts.get("preamble") or [])),
    }
    if facts.get("second_table_line"):
        metadata["second_table"] = MetadataValue.text(
            f"a second table starts at line {facts['second_table_line']}: not loaded; "
            "split it into its own file"
        )
    return metadata


def table_metadata(granula: GranulaResource, record: FileRecord) -> dict[str, MetadataValue]:
    """The loaded table's name and columns, and previews of loaded and rejected rows."""
    with granula.connect() as conn:
        table = file_table(conn, record, rows=PREVIEW_ROWS)
    if table is None:
        return {}
    return {
        "dagster/table_name": MetadataValue.text(f"{table.database}.{table.table_name}"),
        "dagster/column_schema": MetadataValue.table_schema(
            TableSchema(
                columns=[
                    TableColumn(name=c.name, type=c.data_type, description=c.description)
                    for c in table.columns
                ]
            )
        ),
        "preview": MetadataValue.md(_markdown(table.preview_names, table.preview_rows)),
        "rejected_preview": MetadataValue.md(
            _markdown(["line", "reason", "raw text"], table.rejected)
            if table.rejected
            else "No rejected rows."
        ),
    }


def _markdown(names: list[str], rows: list[tuple]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", "⏎")[:80] if value is not None else ""

    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def check_results(granula: GranulaResource, record: FileRecord) -> list[AssetCheckResult]:
    """The file's checks: its rows add up, no chunk failed, its columns match the last file's."""
    with granula.connect() as conn:
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
    granula: GranulaResource, record: FileRecord, partition: str
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
        for result in check_results(granula, record)
    ]


def check_key(name: str) -> AssetCheckKey:
    return AssetCheckKey(FILE_STATUS, name)
