"""Each dataset's table as an asset, downstream of `file_status`, and what a file's load tells it.

Datasets are made by files, not by code: their assets are external asset specs (AssetSpec) built
from the tables that exist when the code location loads (one catalog query), and each file that
loads rows reports a materialization of its table with the table's row count and columns. A
dataset new since the code location loaded shows in the catalog from its first file on (by its
materializations); it joins the lineage graph when the code location reloads.

Callable from any op, of any job: `file_loaded_events` returns the events to log
(`context.log_event`), `report_file_failed` reports to the instance what a failed file shows (a
step that then fails loses what it logged).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from dagster import (
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


def report_file_failed(
    context_or_instance: OpExecutionContext | DagsterInstance,
    granula: GranulaResource,
    record: FileRecord,
    partition_key: str,
    run_id: str,
) -> None:
    """What a failed file shows, reported to the instance (an op's context, or its instance).

    Its partition is materialized with its outcome (status, error, counts, table): Dagster 1.13's
    partition page shows the metadata of a materialization only, not of an observation or a
    failure. That the file failed is said by its status, its error (the description), its failed
    checks and its run, which fails; rows it did load materialize its dataset.
    """
    instance = (
        context_or_instance
        if isinstance(context_or_instance, DagsterInstance)
        else context_or_instance.instance
    )
    metadata = {**status_metadata(record), **table_metadata(granula, record)}
    instance.report_runless_asset_event(
        AssetMaterialization(
            asset_key=FILE_STATUS,
            partition=partition_key,
            description=f"{record.status.value}: {record.error_message or 'no error recorded'}",
            metadata={**metadata, "run": MetadataValue.dagster_run(run_id)},
        )
    )
    for evaluation in check_evaluations(granula, record, partition_key):
        instance.report_runless_asset_event(evaluation)
    for materialization in file_loaded_events(granula, record, partition_key):
        instance.report_runless_asset_event(materialization)


def _schema(columns: Sequence[Column]) -> MetadataValue:
    return MetadataValue.table_schema(
        TableSchema(
            columns=[
                TableColumn(name=c.name, type=c.data_type, description=c.description)
                for c in columns
            ]
        )
    )
