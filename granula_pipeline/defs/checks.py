"""Asset checks of each file: its rows add up, no chunk failed, its columns did not change."""

import warnings

import psycopg
from dagster import AssetCheckExecutionContext, AssetCheckResult, PreviewWarning, asset_check

from granula_pipeline.defs.partitions import inbox_partitions
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.status import (
    COLUMNS_UNCHANGED,
    FILE_STATUS,
    NO_FAILED_CHUNKS,
    ROWS_ADD_UP,
    check_results,
)
from granula_pipeline.lib import control

# Per-partition checks are a Dagster preview feature, chosen knowingly: said here once, not in
# every command's output.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning
)


def _result(context: AssetCheckExecutionContext, granula: GranulaResource, name: str):
    settings = granula.settings()
    with psycopg.connect(settings.psycopg_conninfo) as conn:
        record = control.file_by_key(conn, context.partition_key)
    if record is None:
        return AssetCheckResult(passed=False, description="the file is not registered")
    [result] = [r for r in check_results(settings, record) if r.check_name == name]
    return result


@asset_check(
    asset=FILE_STATUS,
    name=ROWS_ADD_UP,
    partitions_def=inbox_partitions,
    description="Every source row is loaded or rejected: source = loaded + rejected.",
)
def rows_add_up(context: AssetCheckExecutionContext, granula: GranulaResource) -> AssetCheckResult:
    return _result(context, granula, ROWS_ADD_UP)


@asset_check(
    asset=FILE_STATUS,
    name=NO_FAILED_CHUNKS,
    partitions_def=inbox_partitions,
    description="Every chunk of the file committed.",
)
def no_failed_chunks(
    context: AssetCheckExecutionContext, granula: GranulaResource
) -> AssetCheckResult:
    return _result(context, granula, NO_FAILED_CHUNKS)


@asset_check(
    asset=FILE_STATUS,
    name=COLUMNS_UNCHANGED,
    partitions_def=inbox_partitions,
    description="Warns when the file's columns differ from the dataset's previous file.",
)
def columns_unchanged(
    context: AssetCheckExecutionContext, granula: GranulaResource
) -> AssetCheckResult:
    return _result(context, granula, COLUMNS_UNCHANGED)


file_checks = [rows_add_up, no_failed_chunks, columns_unchanged]
