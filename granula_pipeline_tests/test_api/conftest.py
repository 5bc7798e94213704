"""An HTTP client on the API app, over the module's fresh database and a per-test data folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from granula_pipeline.api import create_app
from granula_pipeline.settings import Settings

Upload = Callable[..., httpx.Response]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def upload(client: TestClient) -> Upload:
    """POST a file to the upload endpoint the way `curl -F file=@name` does."""

    def post(
        name: str, content: bytes, *, priority: int | None = None, content_type: str = "text/csv"
    ) -> httpx.Response:
        params = {} if priority is None else {"priority": priority}
        return client.post(
            "/api/v1/upload", params=params, files={"file": (name, content, content_type)}
        )

    return post
