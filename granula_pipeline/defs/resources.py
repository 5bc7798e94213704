"""The Granula resource: the settings, as Dagster passes them to ops and sensors."""

from dagster import ConfigurableResource
from pydantic import Field

from granula_pipeline.settings import Settings, load_settings


class GranulaResource(ConfigurableResource):
    """Where Granula loads to and reads from; unset fields come from the environment."""

    database_url: str = Field(default="", description="Overrides DATABASE_URL.")
    data_dir: str = Field(default="", description="Overrides DATA_DIR (inbox, processed, failed).")
    chunk_size: int = Field(default=0, description="Overrides CHUNK_SIZE when above 0.")

    def settings(self) -> Settings:
        overrides: dict[str, object] = {}
        if self.database_url:
            overrides["database_url"] = self.database_url
        if self.data_dir:
            overrides["data_dir"] = self.data_dir
        if self.chunk_size > 0:
            overrides["chunk_size"] = self.chunk_size
        return Settings.model_validate({**load_settings().model_dump(), **overrides})
