"""Bring the control schema up to date; safe to call from every process at start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(sqlalchemy_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade_database(sqlalchemy_url: str) -> None:
    """Apply every migration not yet applied (a no-op when the schema is current)."""
    command.upgrade(alembic_config(sqlalchemy_url), "head")
