"""Granula's Dagster definitions: the status asset, its job, the inbox sensor, the resource, and
an asset per dataset's table."""

from dagster import Definitions, FilesystemIOManager, definitions, mem_io_manager

from granula_pipeline.defs.batch import ingest_batch
from granula_pipeline.defs.checks import file_checks
from granula_pipeline.defs.datasets import dataset_specs
from granula_pipeline.defs.ingest import STATUS_IO_MANAGER, file_status, ingest_file
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.sensors import build_inbox_sensor
from granula_pipeline.defs.watchdog import build_lost_run_watchdog
from granula_pipeline.lib.load.file import PlansAhead
from granula_pipeline.settings import Settings, load_settings


def build_definitions(
    settings: Settings,
    *,
    granula: GranulaResource | None = None,
    plans_ahead: PlansAhead | None = None,
) -> Definitions:
    """Granula's definitions over `settings` (`granula` overrides the resource built from them;
    `plans_ahead` hands in-process runs the loads `granula ingest` planned ahead)."""
    granula = granula or GranulaResource.from_settings(settings)
    return Definitions(
        assets=[file_status, *dataset_specs(granula)],
        asset_checks=[file_checks],
        jobs=[ingest_file, ingest_batch],
        sensors=[
            build_inbox_sensor(settings.sensor_interval_seconds),
            build_lost_run_watchdog(settings.watchdog_interval_seconds),
        ],
        resources={
            "granula": granula,
            # Named, so a run in this process (`granula ingest`) stores its steps' outputs on disk
            # too, as a launched run does: a re-execution from failure reads them from there.
            "io_manager": FilesystemIOManager(),
            STATUS_IO_MANAGER: mem_io_manager,
            "plans_ahead": plans_ahead or PlansAhead(),
        },
    )


@definitions
def defs() -> Definitions:
    """What the code location loads: the definitions over the environment's settings."""
    return build_definitions(load_settings())


def ingest_file_job():
    """The resolved `ingest_file` job, for `reconstructable` (re-execution from Python)."""
    return build_definitions(load_settings()).resolve_job_def(ingest_file.name)


def ingest_batch_job():
    """The resolved `ingest_batch` job, for `reconstructable` (re-execution from Python)."""
    return build_definitions(load_settings()).resolve_job_def(ingest_batch.name)
