"""The Granula resource: Granula's settings as Dagster shows them and hands them to steps."""

from functools import cached_property
from typing import Any

import psycopg
from dagster import ConfigurableResource, EnvVar, InitResourceContext

from granula_pipeline.lib.db import connect
from granula_pipeline.lib.db.migrate import ensure_migrated
from granula_pipeline.settings import Settings

# What a run reads; the intervals and run limits are fixed when the definitions are built.
RUN_SETTINGS = (
    "data_dir",
    "chunk_size",
    "chunk_max_mb",
    "copy_streams",
    "max_retries",
    "base_backoff",
    "max_backoff",
    "max_rejected_percent",
    "max_upload_mb",
    "max_decompressed_mb",
    "max_gzip_ratio",
    "max_record_mb",
    "max_run_seconds",
    "allowed_content_types",
    "csv_delimiter",
    "results_schema",
    "delete_file_on_complete",
    "settle_seconds",
)


class GranulaResource(ConfigurableResource):
    """Where Granula loads to and how. Each field is the setting of the same name (README,
    "Settings"); a field left unset (null) is read from the environment."""

    database_url: str | None = None
    data_dir: str | None = None
    chunk_size: int | None = None
    chunk_max_mb: int | None = None
    copy_streams: int | None = None
    max_retries: int | None = None
    base_backoff: float | None = None
    max_backoff: float | None = None
    max_rejected_percent: float | None = None
    max_upload_mb: int | None = None
    max_decompressed_mb: int | None = None
    max_gzip_ratio: float | None = None
    max_record_mb: int | None = None
    max_run_seconds: int | None = None
    allowed_content_types: str | None = None
    csv_delimiter: str | None = None
    results_schema: str | None = None
    delete_file_on_complete: bool | None = None
    settle_seconds: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "GranulaResource":
        """Every run setting written out, so the UI shows them; the database URL, a secret, as
        an EnvVar when it comes from the environment."""
        values: dict[str, Any] = {name: getattr(settings, name) for name in RUN_SETTINGS}
        values["data_dir"] = str(settings.data_dir)
        url = EnvVar("DATABASE_URL") if EnvVar("DATABASE_URL").get_value() else None
        return cls(database_url=url or settings.database_url or None, **values)

    @cached_property
    def settings(self) -> Settings:
        """The settings these fields give (an EnvVar read now, if Dagster has not yet)."""
        given = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            given[name] = value.get_value() if isinstance(value, EnvVar) else value
        return Settings.model_validate({k: v for k, v in given.items() if v is not None})

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        return connect(self.settings.psycopg_conninfo, autocommit=autocommit)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """A run or a sensor tick starts here: the control tables must be current."""
        ensure_migrated(self.settings)
