"""Each dataset's table as an asset, downstream of `file_status`, and what a file's load tells it.

Datasets are made by files, not by code: their assets are external asset specs (AssetSpec) built
from the tables that exist when the code location loads (one catalog query), and each file that
loads rows reports a materialization of its table with the table's row count and columns. A
dataset new since the code location loaded shows in the catalog from its first file on (by its
materializations); it joins the lineage graph when the code location reloads.

Callable from any op, of any job: `file_loaded_events` (one file), `datasets_loaded_events` (a
batch: each table once) and `file_failed_events` return the events to log or yield;
`report_file_failed` reports a failed file's to the instance (a step that then fails loses what
it logged).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg
from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    DagsterInstance,
    MetadataValue,
    OpExecutionContext,
    TableColumn,
    TableSchema,
)

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.status import (
    FILE_STATUS,
    check_evaluations,
    status_metadata,
    table_metadata,
)
from granula_pipeline.lib.control import datasets as catalog
from granula_pipeline.lib.control.catalog import TableColumn as Column
from granula_pipeline.lib.model import FileRecord

DATASETS_GROUP = "datasets"


def dataset_key(table_name: str) -> AssetKey:
    """The asset of the table `schema.table`: `schema/table`, e.g. datasets/orders."""
    return AssetKey(table_name.split(".", 1))


def dataset_specs(granula: GranulaResource) -> list[AssetSpec]:
    """An asset spec per dataset's table, with its columns; none if the database is down (the
    code location still loads, and the tables show by their materializations)."""
    try:
        with granula.connect() as conn:
            tables = catalog.dataset_tables(conn, granula.settings.results_schema)
    except psycopg.Error:
        return []
    return [
        AssetSpec(
            key=dataset_key(table.qualified_name),
            deps=[FILE_STATUS],
            kinds={"postgres"},
            group_name=DATASETS_GROUP,
            description=(
                f"The table {table.qualified_name}: the rows of every file loaded into "
                f"dataset {table.dataset}."
            ),
            metadata={
                "dataset": table.dataset,
                "dagster/table_name": table.qualified_name,
                "dagster/column_schema": _schema(table.columns),
            },
        )
        for table in tables
    ]


def file_loaded_events(
    granula: GranulaResource, record: FileRecord, partition_key: str
) -> list[AssetMaterialization]:
    """The file's table's materialization, if the file put rows in it (none for a duplicate or
    a file that loaded nothing): the whole table's row count and columns, the file and when."""
    return datasets_loaded_events(granula, [(record, partition_key)])


def datasets_loaded_events(
    granula: GranulaResource, loads: Iterable[tuple[FileRecord, str]]
) -> list[AssetMaterialization]:
    """One materialization per table that files of `loads` (record, partition key) put rows in,
    naming the last of them: what a batch of many small files of a dataset reports once."""
    by_table: dict[str, list[tuple[FileRecord, str]]] = defaultdict(list)
    for record, key in loads:
        if record.table_name and record.duplicate_of is None and record.loaded_rows:
            by_table[record.table_name].append((record, key))
    if not by_table:
        return []
    events = []
    with granula.connect() as conn:
        database = conn.info.dbname
        for table_name, files in by_table.items():
            table = catalog.dataset_table(conn, table_name)
            if table is None:
                continue
            last, key = max(files, key=_when_loaded)
            events.append(
                _materialization(
                    table, last, key, database, catalog.loaded_rows(conn, table_name), len(files)
                )
            )
    return events


def _when_loaded(load: tuple[FileRecord, str]) -> tuple[datetime, int]:
    record = load[0]
    return record.finished_at or record.updated_at, record.file_id


def _materialization(
    table: catalog.DatasetTable,
    last: FileRecord,
    partition_key: str,
    database: str,
    rows: int,
    files: int,
) -> AssetMaterialization:
    loaded_at = last.finished_at or last.updated_at
    return AssetMaterialization(
        asset_key=dataset_key(table.qualified_name),
        description=(
            f"{last.loaded_rows} rows from {last.filename}"
            if files == 1
            else f"{files} files, the last {last.filename} ({last.loaded_rows} rows)"
        ),
        metadata={
            "dagster/row_count": MetadataValue.int(rows),
            "dagster/table_name": MetadataValue.text(f"{database}.{table.qualified_name}"),
            "dagster/column_schema": _schema(table.columns),
            "dataset": MetadataValue.text(last.dataset),
            "files_loaded": MetadataValue.int(files),
            "last_file": MetadataValue.text(last.filename),
            "last_file_id": MetadataValue.int(last.file_id),
            "last_file_partition": MetadataValue.text(partition_key),
            "last_file_rows": MetadataValue.int(last.loaded_rows),
            "last_file_status": MetadataValue.text(last.status.value),
            "loaded_at": MetadataValue.timestamp(loaded_at),
        },
    )


def file_failed_events(
    granula: GranulaResource, record: FileRecord, partition_key: str, run_id: str
) -> list[AssetMaterialization | AssetCheckEvaluation]:
    """What a failed file shows: its partition materialized with its outcome (status, error,
    counts, table), its checks, and its dataset's table if it loaded rows into it.

    A materialization, not an observation: Dagster 1.13's partition page shows the metadata of a
    materialization only, not of an observation or a failure. That the file failed is said by
    its status, its error (the description), its failed checks and its run, which fails.
    """
    metadata = {**status_metadata(record), **table_metadata(granula, record)}
    outcome = AssetMaterialization(
        asset_key=FILE_STATUS,
        partition=partition_key,
        description=f"{record.status.value}: {record.error_message or 'no error recorded'}",
        metadata={**metadata, "run": MetadataValue.dagster_run(run_id)},
    )
    return [
        outcome,
        *check_evaluations(granula, record, partition_key),
        *file_loaded_events(granula, record, partition_key),
    ]


def report_file_failed(
    context_or_instance: OpExecutionContext | DagsterInstance,
    granula: GranulaResource,
    record: FileRecord,
    partition_key: str,
    run_id: str,
) -> None:
    """`file_failed_events`, reported to the instance (from an op's context, or the instance
    itself): what a step that then fails must do, as events it logs are dropped."""
    instance = (
        context_or_instance
        if isinstance(context_or_instance, DagsterInstance)
        else context_or_instance.instance
    )
    for event in file_failed_events(granula, record, partition_key, run_id):
        instance.report_runless_asset_event(event)


def _schema(columns: Sequence[Column]) -> MetadataValue:
    return MetadataValue.table_schema(
        TableSchema(
            columns=[
                TableColumn(name=c.name, type=c.data_type, description=c.description)
                for c in columns
            ]
        )
    )
