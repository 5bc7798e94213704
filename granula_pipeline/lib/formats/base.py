"""What every file format does for Granula, and what the formats read chunk by chunk add."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from granula_pipeline.lib.model import ChunkPlan, LoadTarget, ParsedChunk, Survey, SurveyRequest


class Format(Protocol):
    """A file format: how a file in it is surveyed (planned into chunks, typed) before it loads.

    A format whose chunks go to COPY as the file's bytes (CSV) needs nothing more; the loader
    parses the bytes PostgreSQL refuses. The others are `RecordFormat`s.
    """

    def survey(self, request: SurveyRequest) -> Survey:
        """Plan the file (unless `planned`: a retry keeps its plan) and type its columns."""
        ...


@runtime_checkable
class RecordFormat(Format, Protocol):
    """A format whose chunks are read into records before they go to COPY."""

    def read_chunk(self, path: Path, target: LoadTarget, chunk: ChunkPlan) -> ParsedChunk:
        """The chunk's records as text columns with their lines, and the records set aside."""
        ...
