"""Keys, Host, Origin and body limits, checked against a real `granula api` over TCP."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from granula_pipeline.api import create_app
from granula_pipeline.lib.access.keys import Scope, create_key, revoke_key
from granula_pipeline.lib.db.migrate import ensure_migrated
from granula_pipeline.settings import Settings
from granula_pipeline_tests.test_api.served import granula_api

pytestmark = pytest.mark.slow

CSV = b"id,name\n1,a\n2,b\n"


class Served:
    """The running API, its data folder and database, and one key per need."""

    def __init__(self, base: str, settings: Settings, tokens: dict[str, str]):
        self.base = base
        self.settings = settings
        self.tokens = tokens

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[key]}"}

    def upload(self, name: str, key: str = "all", **kwargs: object) -> httpx.Response:
        headers = {**self.auth(key), **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        return httpx.post(
            f"{self.base}/api/v1/upload",
            files={"file": (name, CSV, "text/csv")},
            headers=headers,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("served")
    settings = Settings(database_url=database_url, data_dir=data_dir)
    ensure_migrated(settings)
    # An upload that died before this start (kill -9): its staging file is old.
    dead = data_dir / "inbox" / ".orders.csv.0123456789ab.granula-tmp"
    dead.parent.mkdir(parents=True)
    dead.write_bytes(b"id\n1\n")
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        tokens = {
            "all": create_key(conn, "ops", [Scope.UPLOAD, Scope.READ])[1],
            "read": create_key(conn, "bi", [Scope.READ])[1],
            "upload": create_key(conn, "feeder", [Scope.UPLOAD])[1],
            "sales": create_key(conn, "sales", [Scope.READ, Scope.UPLOAD], ["sales"])[1],
        }
        revoked, tokens["revoked"] = create_key(conn, "gone", [Scope.READ])
        revoke_key(conn, revoked.key_id)
    env = {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        "MAX_UPLOAD_MB": "1",
        "API_IDLE_TIMEOUT_SECONDS": "2",
    }
    with granula_api(env) as base:
        yield Served(base, settings, tokens)


def test_a_dead_uploads_staging_file_is_removed_on_start(served):
    assert list((served.settings.inbox).rglob("*.granula-tmp")) == []


def test_without_a_key_or_with_a_bad_one_the_answer_is_401(served):
    for headers in ({}, {"Authorization": "Bearer nope"}, served.auth("revoked")):
        status = httpx.get(f"{served.base}/api/v1/status/1", headers=headers)
        upload = httpx.post(
            f"{served.base}/api/v1/upload", files={"file": ("x.csv", CSV)}, headers=headers
        )
        for response in (status, upload):
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert "API key" in response.json()["detail"]
    assert list(served.settings.inbox.rglob("x.csv")) == []


def test_a_key_without_the_scope_gets_403(served):
    refused = served.upload("scoped.csv", key="read")
    assert refused.status_code == 403
    assert "'upload' scope" in refused.json()["detail"]

    uploaded = served.upload("scoped.csv", key="upload")
    assert uploaded.status_code == 201
    public_id = uploaded.json()["public_id"]
    read_by_uploader = httpx.get(
        f"{served.base}/api/v1/status/{public_id}", **_as(served, "upload")
    )
    assert read_by_uploader.status_code == 403
    assert "'read' scope" in read_by_uploader.json()["detail"]
    read = httpx.get(f"{served.base}/api/v1/status/{public_id}", **_as(served, "read"))
    assert read.status_code == 200 and read.json()["status"] == "queued"


def test_a_key_limited_to_a_dataset_reads_and_uploads_only_that_one(served):
    other = served.upload("orders.csv").json()
    for path in (f"status/{other['public_id']}", f"results/{other['public_id']}"):
        response = httpx.get(f"{served.base}/api/v1/{path}", **_as(served, "sales"))
        assert response.status_code == 403
        assert "'orders'" in response.json()["detail"]

    refused = served.upload("orders_2.csv", key="sales")
    assert refused.status_code == 403
    assert list(served.settings.inbox.rglob("orders_2.csv")) == []

    own = served.upload("sales.csv", key="sales")
    assert own.status_code == 201
    results = httpx.get(f"{served.base}/api/v1/results/{own.json()['public_id']}", **_as(served))
    assert results.status_code == 200


def test_a_rebinding_host_and_a_foreign_origin_are_refused(served):
    rebound = httpx.get(
        f"{served.base}/api/v1/status/1", headers={"Host": "evil.example", **served.auth("all")}
    )
    assert rebound.status_code == 400

    foreign = served.upload("origin.csv", headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert "evil.example" in foreign.json()["detail"]
    assert list(served.settings.inbox.rglob("origin.csv")) == []

    port = served.base.rsplit(":", 1)[1]
    same = served.upload("origin.csv", headers={"Origin": f"http://127.0.0.1:{port}"})
    assert same.status_code == 201


def test_an_oversize_body_is_413_whatever_part_carries_it(served):
    big = b"x" * (3 * 2**20)
    as_file = httpx.post(
        f"{served.base}/api/v1/upload", files={"file": ("big.csv", big)}, **_as(served)
    )
    as_field = httpx.post(
        f"{served.base}/api/v1/upload",
        data={"note": big.decode()},
        files={"file": ("small.csv", CSV)},
        **_as(served),
    )
    for response in (as_file, as_field):
        assert response.status_code == 413
        assert "MAX_UPLOAD_MB" in response.json()["detail"]
    assert [p.name for p in served.settings.inbox.rglob("*") if "big" in p.name] == []
    assert [p.name for p in served.settings.inbox.rglob("*") if "small" in p.name] == []


def test_a_long_boundary_and_too_many_parts_are_client_mistakes(served):
    boundary = "b" * 300
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\nid\n1\n\r\n--{boundary}--\r\n"
    ).encode()
    long_boundary = httpx.post(
        f"{served.base}/api/v1/upload",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **served.auth("all")},
    )
    assert long_boundary.status_code == 400
    assert "boundary" in long_boundary.json()["detail"]

    many = httpx.post(
        f"{served.base}/api/v1/upload",
        data={f"f{i}": "x" for i in range(5000)},
        files={"file": ("many.csv", CSV)},
        **_as(served),
    )
    assert many.status_code == 400
    assert "parts" in many.json()["detail"]


def test_a_stalled_upload_is_dropped_with_408_and_leaves_nothing(served):
    host, port = served.base.removeprefix("http://").split(":")
    head = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="stalled.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\nid\n1\n"
    )
    request = (
        f"POST /api/v1/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {served.tokens['all']}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=20) as conn:
        conn.sendall(request + head)
        answer = conn.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408")
    assert list(served.settings.inbox.rglob("*stalled.csv*")) == []


def _as(served: Served, key: str = "all") -> dict[str, dict[str, str]]:
    return {"headers": served.auth(key)}


# Read once at collection from a bare app: the schema does not depend on the settings.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@hypothesis_settings(
    max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_with_a_key_no_generated_request_gets_a_server_error(case, served):
    response = case.call(base_url=served.base, headers=served.auth("all"))
    case.validate_response(response, checks=[not_a_server_error])


def test_a_trickling_upload_is_dropped_with_408_and_leaves_nothing(served):
    """A byte every 0.2 s never stalls for API_IDLE_TIMEOUT_SECONDS (2 s here), but is far under
    API_MIN_UPLOAD_KIB_PER_SECOND once 2 s have passed."""
    host, port = served.base.removeprefix("http://").split(":")
    request = (
        f"POST /api/v1/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {served.tokens['all']}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="file"; filename="trickle.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nid\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=20) as conn:
        conn.sendall(request)
        conn.settimeout(0.2)
        answer = b""
        while not answer and time.monotonic() - started < 15:
            try:
                conn.sendall(b"1")
                answer = conn.recv(4096)
            except TimeoutError:
                continue
        conn.settimeout(5)
        while chunk := conn.recv(4096):  # the rest of the answer, until the server closes
            answer += chunk
    assert answer.decode().startswith("HTTP/1.1 408"), answer
    assert "KiB/s" in answer.decode()
    assert time.monotonic() - started < 6
    assert list(served.settings.inbox.rglob("*trickle.csv*")) == []
