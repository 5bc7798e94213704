"""Each dataset's table as an asset, downstream of `file_status`, and what a file's load tells it.

Datasets are made by files, not by code: their assets are external asset specs (AssetSpec) built
from the tables that exist when the code location loads (one catalog query), and each file that
loads rows reports a materialization of its table with the table's row count and columns. A
dataset new since the code location loaded shows in the catalog from its first file on (by its
materializations); it joins the lineage graph when the code location reloads.

Callable from any op, of any job: `file_loaded_events` and `file_failed_events` return the events
to log or yield; `report_file_failed` reports a failed file's to the instance (a step that then
fails loses what it logged).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    if not record.table_name or record.duplicate_of is not None or not record.loaded_rows:
        return []
    with granula.connect() as conn:
        table = catalog.dataset_table(conn, record.table_name)
        rows = catalog.loaded_rows(conn, record.table_name)
        database = conn.info.dbname
    if table is None:
        return []
    loaded_at = record.finished_at or record.updated_at
    return [
        AssetMaterialization(
            asset_key=dataset_key(record.table_name),
            description=f"{record.loaded_rows} rows from {record.filename}",
            metadata={
                "dagster/row_count": MetadataValue.int(rows),
                "dagster/table_name": MetadataValue.text(f"{database}.{record.table_name}"),
                "dagster/column_schema": _schema(table.columns),
                "dataset": MetadataValue.text(record.dataset),
                "last_file": MetadataValue.text(record.filename),
                "last_file_id": MetadataValue.int(record.file_id),
                "last_file_partition": MetadataValue.text(partition_key),
                "last_file_rows": MetadataValue.int(record.loaded_rows),
                "last_file_status": MetadataValue.text(record.status.value),
                "loaded_at": MetadataValue.timestamp(loaded_at),
            },
        )
    ]


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
