"""Granula's Dagster definitions: the status asset, its job, the inbox sensor, the resource, and
an asset per dataset's table."""

from dagster import (
    Definitions,
    Field,
    InitLoggerContext,
    LoggerDefinition,
    colored_console_logger,
    definitions,
    logger,
    mem_io_manager,
)

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
        jobs=[ingest_file],
        sensors=[
            build_inbox_sensor(settings.sensor_interval_seconds),
            build_lost_run_watchdog(settings.watchdog_interval_seconds),
        ],
        loggers={"console": console_logger(settings.dagster_log_level)},
        resources={
            "granula": granula,
            STATUS_IO_MANAGER: mem_io_manager,
            "plans_ahead": plans_ahead or PlansAhead(),
        },
    )


def console_logger(level: str) -> LoggerDefinition:
    """Dagster's console logger at `level` (DAGSTER_LOG_LEVEL) unless a run's config says
    otherwise: at INFO a run prints what its steps say, not each of its two dozen events."""

    @logger(
        config_schema={
            "log_level": Field(str, is_required=False, default_value=level),
            "name": Field(str, is_required=False, default_value="dagster"),
        },
        description="The colored console logger, at DAGSTER_LOG_LEVEL by default.",
    )
    def console(init_context: InitLoggerContext):
        return colored_console_logger.logger_fn(init_context)

    return console


@definitions
def defs() -> Definitions:
    """What the code location loads: the definitions over the environment's settings."""
    return build_definitions(load_settings())


def ingest_file_job():
    """The resolved `ingest_file` job, for `reconstructable` (re-execution from Python)."""
    return build_definitions(load_settings()).resolve_job_def(ingest_file.name)
