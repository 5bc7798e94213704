"""The OpenAPI schema documents the contract, and no request generated from it gets a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from granula_pipeline.api import create_app
from granula_pipeline.settings import Settings


def test_the_docs_and_the_schema_describe_the_three_endpoints(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()

    upload = spec["paths"]["/api/v1/upload"]["post"]
    body = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"]
    assert body["properties"]["file"]["format"] == "binary"
    assert {"201", "400", "409", "422"} <= upload["responses"].keys()
    (priority,) = upload["parameters"]
    assert (priority["schema"]["minimum"], priority["schema"]["maximum"]) == (0, 10)

    status = spec["paths"]["/api/v1/status/{file_id}"]["get"]
    assert {"200", "404"} <= status["responses"].keys()
    assert set(spec["components"]["schemas"]["FileStatus"]["properties"]) == {
        "file_id",
        "public_id",
        "filename",
        "status",
        "total_chunks",
        "processed_chunks",
        "failed_chunks",
        "progress_percent",
        "error_message",
    }
    results = spec["paths"]["/api/v1/results/{file_id}"]["get"]
    assert {p["name"] for p in results["parameters"]} == {"file_id", "limit", "offset", "after"}
    assert set(spec["components"]["schemas"]["ResultsPage"]["properties"]) == {
        "items",
        "total",
        "limit",
        "offset",
        "next",
    }
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from `granula keys create` (granula_<key_id>_<secret>).",
    }
    for operation in (upload, status, results):
        assert operation["security"] == [{"ApiKey": []}]
        assert {"401", "403"} <= operation["responses"].keys()
    assert "413" in upload["responses"]


# The schema does not depend on the settings: read it once, at collection, from a bare app.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@pytest.fixture
def small_app(settings):
    """The app with its lifespan entered (migrated, its pool open) for the calls of the test."""
    app = create_app(settings.model_copy(update={"max_upload_mb": 1}))
    with TestClient(app, base_url="http://127.0.0.1"):
        yield app


@schema.parametrize()
@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_no_generated_request_gets_a_server_error(case, small_app):
    response = case.call(app=small_app, headers={"Host": "127.0.0.1"})
    assert response.text != "Invalid host header"
    case.validate_response(response, checks=[not_a_server_error])
