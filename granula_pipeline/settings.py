"""Granula's settings: every knob read from the environment, typed, in one place."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from granula_pipeline.lib.model import ReadLimits

DEFAULT_DATA_DIR = Path("data")
# Where `granula up` writes its database's URL while it runs, for the commands run beside it.
STACK_DATABASE_URL = Path(".granula") / "database_url"


class MissingDatabase(RuntimeError):
    """No DATABASE_URL, where one is needed."""


class Settings(BaseSettings):
    """What an operator can set; each field's environment variable is its upper-case name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = Field(
        default="",
        description="PostgreSQL URL for the loaded tables and the control tables; "
        "empty means the embedded server that `granula up` starts.",
    )
    dagster_pg_url: str = Field(
        default="",
        description="PostgreSQL URL for Dagster's own storage; defaults to DATABASE_URL.",
    )
    chunk_size: int = Field(default=2_500_000, ge=1, description="Rows per chunk op.")
    chunk_max_mb: int = Field(default=64, ge=1, description="Bytes per chunk, at most, in MiB.")
    max_concurrency: int = Field(default=2, ge=1, description="Runs that load at once.")
    copy_streams: int = Field(
        default=2, ge=1, description="Connections that COPY one chunk's parts at once."
    )
    max_retries: int = Field(default=3, ge=0, description="Retries of a chunk op.")
    base_backoff: float = Field(default=1.0, ge=0, description="First retry wait, seconds.")
    max_backoff: float = Field(default=30.0, ge=0, description="Longest retry wait, seconds.")
    max_upload_mb: int = Field(default=500, ge=1, description="Largest file accepted, MiB.")
    max_decompressed_mb: int | None = Field(
        default=None,
        ge=1,
        description="Most bytes a gzip'd file may expand to, MiB; unset: 10 x MAX_UPLOAD_MB.",
    )
    max_gzip_ratio: float = Field(
        default=100,
        ge=1,
        description="A gzip'd file may expand to at most this many times the compressed bytes "
        "read so far (judged past the first 8 MiB).",
    )
    max_record_mb: int = Field(
        default=64, ge=1, description="Longest record (CSV record, NDJSON line) accepted, MiB."
    )
    max_run_seconds: int = Field(
        default=6 * 3600,
        ge=0,
        description="A run that takes longer is failed and its queue slot freed by the "
        "daemon's run monitoring; 0: no limit.",
    )
    allowed_content_types: str = Field(
        default="text/csv,application/csv,text/plain,text/tab-separated-values,"
        "application/x-ndjson,application/jsonl,application/vnd.apache.parquet",
        description="Content types (guessed from the file name) that are loaded.",
    )
    csv_delimiter: str = Field(
        default="",
        description="Field delimiter of .csv/.txt files (`tab` for a tab); empty: sniffed "
        "with the rest of the dialect (README, CSV dialects). .tsv files are always "
        "tab-separated.",
    )
    delete_file_on_complete: bool = False
    max_rejected_percent: float = Field(
        default=10.0, ge=0, le=100, description="More rejected rows than this fails the file."
    )
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR, description="Holds inbox/, processed/, failed/."
    )
    results_schema: str = Field(default="datasets", description="Schema of the loaded tables.")
    sensor_interval_seconds: int = Field(
        default=1,
        ge=1,
        description="Least time between two looks at the inbox. Dagster's sensor daemon looks "
        "every 5 s at most, so 1 means: at every turn of the daemon.",
    )
    batch_max_files: int = Field(
        default=100, ge=1, description="Most files the sensor puts in one run."
    )
    batch_max_mb: int = Field(
        default=64,
        ge=1,
        description="Most bytes of files in one run, in MiB; a larger file has a run of its own.",
    )
    watchdog_interval_seconds: int = Field(
        default=30, ge=1, description="How often to look for loads whose process died."
    )
    settle_seconds: float = Field(
        default=2.0, ge=0, description="A file must be unchanged this long before it is loaded."
    )
    dagster_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description="What `granula up`'s services and `granula ingest`/`retry` runs print "
        "(DEBUG: each sensor tick, every event of a run). Runs the daemon launches print at "
        "dagster.yaml's python_logs.python_log_level.",
    )

    @field_validator("dagster_log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    api_allowed_hosts: str = Field(
        default="",
        description="Host names `granula api` answers besides the one it binds and loopback's "
        "(comma-separated; a request with another Host header is refused, against DNS "
        "rebinding). Add the name clients use when a proxy is in front.",
    )
    api_allowed_origins: str = Field(
        default="",
        description="Web origins (https://app.example) allowed to send writes to the API besides "
        "its own; a POST from any other page is refused.",
    )
    api_pool_size: int = Field(default=10, ge=1, description="Connections the API keeps open.")
    api_pool_wait_seconds: float = Field(
        default=10, gt=0, description="Longest wait for a free connection before a 503."
    )
    api_statement_timeout_seconds: float = Field(
        default=30, gt=0, description="A query of the API that takes longer is cancelled (503)."
    )
    api_idle_timeout_seconds: float = Field(
        default=30,
        gt=0,
        description="An upload that sends nothing this long is dropped (408), as is one slower "
        "than API_MIN_UPLOAD_KIB_PER_SECOND on average past this long; also the keep-alive.",
    )
    api_min_upload_kib_per_second: float = Field(
        default=64, ge=0, description="Slowest average upload rate accepted; 0: no minimum."
    )

    @field_validator("results_schema")
    @classmethod
    def _plain_identifier(cls, value: str) -> str:
        if not value.isidentifier() or value.lower() != value:
            raise ValueError("RESULTS_SCHEMA must be a lower-case SQL identifier")
        return value

    @field_validator("csv_delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        value = {"tab": "\t", "\\t": "\t"}.get(value.lower(), value)
        if len(value) > 1 or value in ('"', "\n", "\r"):
            raise ValueError(
                "CSV_DELIMITER must be one character (or `tab`), not a quote or newline"
            )
        return value

    @property
    def inbox(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def processed_dir(self) -> Path:
        return self.data_dir / "processed"

    @property
    def failed_dir(self) -> Path:
        return self.data_dir / "failed"

    @property
    def chunk_max_bytes(self) -> int:
        return self.chunk_max_mb * 1024 * 1024

    @property
    def batch_max_bytes(self) -> int:
        return self.batch_max_mb * 1024 * 1024

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_request_bytes(self) -> int:
        """A whole request body at most: the file and 1 MiB for the multipart framing."""
        return self.max_upload_bytes + 2**20

    @property
    def read_limits(self) -> ReadLimits:
        """What reading one file may cost, in the engine's terms."""
        return ReadLimits(
            max_decompressed_bytes=(self.max_decompressed_mb or 10 * self.max_upload_mb) * 2**20,
            max_gzip_ratio=self.max_gzip_ratio,
            max_record_bytes=self.max_record_mb * 2**20,
        )

    @cached_property
    def content_types(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.allowed_content_types.split(",") if t.strip())

    def require_database_url(self) -> str:
        if not self.database_url:
            if STACK_DATABASE_URL.parent.is_dir():  # a stack was set up here: not running yet
                raise MissingDatabase(
                    "DATABASE_URL is not set and the `granula up` of this folder is not running, "
                    "or still starting: start it (or wait for its UI), or export DATABASE_URL."
                )
            raise MissingDatabase(
                "DATABASE_URL is not set: export it, or run `granula up` (embedded server)."
            )
        return self.database_url

    @property
    def psycopg_conninfo(self) -> str:
        """DATABASE_URL as libpq understands it (no SQLAlchemy driver suffix)."""
        return (
            make_url(self.require_database_url())
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )

    @property
    def sqlalchemy_url(self) -> str:
        """DATABASE_URL for SQLAlchemy with the psycopg 3 driver."""
        return sqlalchemy_url(self.require_database_url(), "psycopg")

    @property
    def dagster_storage_url(self) -> str:
        """Dagster's storage URL; dagster-postgres needs psycopg2 under SQLAlchemy 2.1."""
        return sqlalchemy_url(self.dagster_pg_url or self.require_database_url(), "psycopg2")


def sqlalchemy_url(url: str, driver: str) -> str:
    return (
        make_url(url).set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)
    )


def load_settings() -> Settings:
    """Read the settings from the environment now (not at import time); without DATABASE_URL,
    the database of the `granula up` running in this folder, if one is."""
    settings = Settings()
    if not settings.database_url and STACK_DATABASE_URL.is_file():
        url = STACK_DATABASE_URL.read_text().strip()
        settings = settings.model_copy(update={"database_url": url})
    return settings
