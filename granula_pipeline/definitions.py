"""Granula's Dagster definitions: the status asset, its job, the inbox sensor, the resource."""

from dagster import Definitions, mem_io_manager

from granula_pipeline.defs.checks import file_checks
from granula_pipeline.defs.ingest import STATUS_IO_MANAGER, file_status, ingest_file
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.sensors import inbox_sensor
from granula_pipeline.defs.watchdog import lost_run_watchdog


def build_definitions(granula: GranulaResource) -> Definitions:
    return Definitions(
        assets=[file_status],
        asset_checks=[file_checks],
        jobs=[ingest_file],
        sensors=[inbox_sensor, lost_run_watchdog],
        resources={"granula": granula, STATUS_IO_MANAGER: mem_io_manager},
    )


defs = build_definitions(GranulaResource())


def ingest_file_job():
    """The resolved `ingest_file` job, for `reconstructable` (re-execution from Python)."""
    return defs.resolve_job_def("ingest_file")
