"""Asset checks of each file: its rows add up, no chunk failed, its columns did not change."""

import warnings
from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSpec,
    PreviewWarning,
    multi_asset_check,
)

from granula_pipeline.defs.partitions import inbox_partitions
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.status import (
    COLUMNS_UNCHANGED,
    FILE_STATUS,
    NO_FAILED_CHUNKS,
    ROWS_ADD_UP,
    check_results,
)
from granula_pipeline.lib.control import files as control

# Per-partition checks are a Dagster preview feature, chosen knowingly: said here once, not in
# every command's output.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning
)


CHECKS = {
    ROWS_ADD_UP: "Every source row is loaded or rejected: source = loaded + rejected.",
    NO_FAILED_CHUNKS: "Every chunk of the file committed.",
    COLUMNS_UNCHANGED: "Warns when the file's columns differ from the dataset's previous file.",
}


@multi_asset_check(
    specs=[
        AssetCheckSpec(name, asset=FILE_STATUS, description=text, partitions_def=inbox_partitions)
        for name, text in CHECKS.items()
    ],
    description="The file's three checks, evaluated in one step from its row in granula.files.",
)
def file_checks(
    context: AssetCheckExecutionContext, granula: GranulaResource
) -> Iterator[AssetCheckResult]:
    with granula.connect() as conn:
        record = control.file_by_key(conn, context.partition_key)
    if record is None:
        for name in CHECKS:
            yield AssetCheckResult(
                asset_key=FILE_STATUS,
                check_name=name,
                passed=False,
                description="the file is not registered",
            )
        return
    yield from check_results(granula, record)
