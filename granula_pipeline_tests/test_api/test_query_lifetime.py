"""A query of the API ends with its request: cancelled when the client goes away, and after
API_STATEMENT_TIMEOUT_SECONDS whatever happens (served by uvicorn over TCP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import Request

from granula_pipeline.api import create_app
from granula_pipeline.api.database import APPLICATION_NAME, in_database
from granula_pipeline_tests.test_api.served import free_port


@pytest.fixture
def slow_api(settings) -> Iterator[str]:
    """The API with one more route whose query sleeps, on a real uvicorn server."""
    app = create_app(settings.model_copy(update={"api_statement_timeout_seconds": 3}))

    async def sleep(request: Request, seconds: float) -> dict[str, str]:
        await in_database(request, lambda conn: conn.execute("SELECT pg_sleep(%s)", (seconds,)))
        return {"slept": "yes"}

    app.add_api_route("/sleep", sleep)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def sleeping_queries(db: psycopg.Connection) -> int:
    found = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
        "AND state = 'active' AND query LIKE '%%pg_sleep%%'",
        (APPLICATION_NAME,),
    ).fetchone()
    return found[0] if found else 0


def test_a_query_is_cancelled_when_its_client_goes_away(slow_api, db):
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{slow_api}/sleep", params={"seconds": 10}, timeout=0.5)
    deadline = time.monotonic() + 1.5  # well before its statement timeout (3 s)
    while sleeping_queries(db) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sleeping_queries(db) == 0


def test_a_query_past_the_statement_timeout_is_a_503_that_says_so(slow_api, db):
    started = time.monotonic()
    response = httpx.get(f"{slow_api}/sleep", params={"seconds": 20}, timeout=30)
    assert response.status_code == 503
    assert "API_STATEMENT_TIMEOUT_SECONDS" in response.json()["detail"]
    assert time.monotonic() - started < 10
    assert sleeping_queries(db) == 0
