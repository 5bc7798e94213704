"""Granula's HTTP API (FastAPI): upload into the inbox, a file's status, its loaded rows."""

from granula_pipeline.api.app import create_app

__all__ = ["create_app"]
