"""POST /api/v1/upload: the file lands in the inbox atomically, registered as the sensor will."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from granula_pipeline.api import create_app
from granula_pipeline.lib.inbox.scan import scan_inbox

CSV = b"id,name\n1,a\n2,b\n"


def files_under(folder: Path) -> list[str]:
    """Every file under the folder, temporary ones included."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_upload_places_the_file_in_its_priority_folder_and_registers_it(upload, settings, db):
    response = upload("orders.csv", CSV, priority=7)

    assert response.status_code == 201
    body = response.json()
    assert body["filename"] == "orders.csv"
    assert body["status"] == "queued"
    assert body["priority"] == 7
    assert files_under(settings.inbox) == ["priority-7/orders.csv"]
    assert (settings.inbox / "priority-7" / "orders.csv").read_bytes() == CSV
    row = db.execute(
        "SELECT partition_key, dataset, priority, status, size_bytes, path"
        " FROM granula.files WHERE file_id = %s",
        (body["file_id"],),
    ).fetchone()
    (seen,) = scan_inbox(settings.inbox)  # what the sensor finds on its next tick
    assert row == (
        seen.partition_key,
        "orders",
        7,
        "queued",
        len(CSV),
        str((settings.inbox / "priority-7" / "orders.csv").absolute()),
    )


def test_upload_without_priority_lands_in_the_inbox_itself(upload, settings):
    response = upload("plain.csv", CSV)

    assert response.status_code == 201
    assert response.json()["priority"] == 0
    assert files_under(settings.inbox) == ["plain.csv"]


def test_content_type_parameters_are_ignored(upload, settings):
    response = upload("typed.csv", CSV, content_type="text/csv; charset=utf-8")

    assert response.status_code == 201
    assert files_under(settings.inbox) == ["typed.csv"]


def test_a_content_type_not_allowed_is_refused_with_the_allowed_ones(upload, settings, db):
    response = upload("report.csv", b"%PDF-1.7", content_type="application/pdf")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "application/pdf" in detail and "ALLOWED_CONTENT_TYPES" in detail
    assert "text/csv" in detail
    assert files_under(settings.inbox) == []
    assert db.execute(
        "SELECT count(*) FROM granula.files WHERE filename = 'report.csv'"
    ).fetchone() == (0,)


def test_a_name_the_loader_would_refuse_is_refused_now(upload, settings):
    response = upload("notes.pdf", CSV)

    assert response.status_code == 400
    assert "notes.pdf" in response.json()["detail"]
    assert files_under(settings.inbox) == []


def test_a_name_the_sensor_would_ignore_is_refused(upload, settings):
    for name in (".hidden.csv", "orders.csv.part", "~orders.csv"):
        response = upload(name, CSV)
        assert response.status_code == 400, name
        assert "name" in response.json()["detail"]
    assert files_under(settings.inbox) == []


def test_a_name_without_suffix_gets_csv(upload, settings):
    response = upload("export", CSV)

    assert response.status_code == 201
    assert response.json()["filename"] == "export.csv"
    assert files_under(settings.inbox) == ["export.csv"]


def test_folders_in_the_file_name_are_dropped(upload, settings):
    response = upload("../../escape/orders.csv", CSV, priority=2)

    assert response.status_code == 201
    assert response.json()["filename"] == "orders.csv"
    assert files_under(settings.data_dir) == ["inbox/priority-2/orders.csv"]


def test_a_file_over_max_upload_mb_is_refused_and_nothing_is_left(settings, db):
    small = settings.model_copy(update={"max_upload_mb": 1})
    content = b"id,name\n" + b"1,abcdefghijklmnopqrstuvwxyz\n" * 56_000  # 1.5 MiB
    assert 1.5 * 2**20 <= len(content) < 1.6 * 2**20
    with TestClient(create_app(small), base_url="http://127.0.0.1") as client:
        response = client.post("/api/v1/upload", files={"file": ("big.csv", content, "text/csv")})

    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "MAX_UPLOAD_MB=1" in detail
    assert files_under(settings.data_dir) == []
    assert db.execute(
        "SELECT count(*) FROM granula.files WHERE filename = 'big.csv'"
    ).fetchone() == (0,)


def test_reading_stops_as_soon_as_the_limit_is_passed(settings):
    """A 20 MiB upload against a 1 MiB limit: the app stops consuming the body near 1 MiB."""
    small = settings.model_copy(update={"max_upload_mb": 1})
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        parts = [
            b"--b0undary\r\n",
            b'Content-Disposition: form-data; name="file"; filename="huge.csv"\r\n',
            b"Content-Type: text/csv\r\n\r\n",
            b"id,name\n",
        ]
        for part in parts:
            yield part
        for _ in range(320):  # 320 x 64 KiB = 20 MiB
            sent += 65536
            yield b"1,abcdefg\n" * 6553 + b"123456"
        yield b"\r\n--b0undary--\r\n"

    async def post() -> httpx.Response:
        app = create_app(small)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c,
        ):
            return await c.post(
                "/api/v1/upload",
                content=body(),
                headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
            )

    response = asyncio.run(post())

    assert response.status_code == 413
    assert "MAX_UPLOAD_MB=1" in response.json()["detail"]
    assert sent <= 2 * 2**20
    assert files_under(settings.data_dir) == []


def test_an_empty_file_is_refused(upload, settings):
    response = upload("empty.csv", b"")

    assert response.status_code == 400
    assert "empty" in response.json()["detail"]
    assert files_under(settings.inbox) == []


def test_a_request_without_a_file_field_is_unprocessable(client, settings):
    with_other_field = client.post("/api/v1/upload", files={"other": ("a.csv", CSV, "text/csv")})
    without_body = client.post("/api/v1/upload")
    text_not_file = client.post("/api/v1/upload", data={"file": "id\n1\n"}, files={"x": ("", b"")})

    for response in (with_other_field, without_body, text_not_file):
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "file"]
    assert files_under(settings.inbox) == []


def test_a_priority_outside_zero_to_ten_is_unprocessable(upload, settings):
    for priority in (-1, 11):
        response = upload("orders.csv", CSV, priority=priority)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "priority"]
    assert files_under(settings.inbox) == []


def test_a_name_still_waiting_in_the_inbox_is_not_overwritten(upload, settings):
    first = upload("orders.csv", CSV, priority=3)
    second = upload("orders.csv", b"id,name\n9,z\n", priority=3)

    assert first.status_code == 201
    assert second.status_code == 409
    assert "already waiting" in second.json()["detail"]
    assert (settings.inbox / "priority-3" / "orders.csv").read_bytes() == CSV
    assert files_under(settings.inbox) == ["priority-3/orders.csv"]


def test_a_malformed_or_cut_short_multipart_body_is_refused(client, settings):
    def post(body: bytes):
        return client.post(
            "/api/v1/upload",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        )

    endless_header = b"--xyz\r\nX-Padding: " + b"a" * 20_000 + b"\r\n\r\ndata\r\n--xyz--\r\n"
    cut_short = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="cut.csv"\r\n'
    cut_short += b"Content-Type: text/csv\r\n\r\nid\n1\n"

    many_headers = b"--xyz\r\n" + b"X-Padding: aaaaaaaaaa\r\n" * 2000 + b"\r\nx\r\n--xyz--\r\n"

    refused = post(endless_header)
    assert refused.status_code == 400 and "malformed" in refused.json()["detail"]
    refused = post(many_headers)
    assert refused.status_code == 400 and "malformed" in refused.json()["detail"]
    interrupted = post(cut_short)
    assert interrupted.status_code == 400 and "ended before" in interrupted.json()["detail"]
    assert files_under(settings.inbox) == []
