"""GET /api/v1/status and /api/v1/results of a file uploaded, then loaded by the real job."""

from __future__ import annotations

from granula_pipeline.lib.control.results import MAX_LIMIT
from granula_pipeline.runs import ingest
from granula_pipeline_tests.factories import write_orders

TYPED_CSV = (
    b"id,name,amount,day,paid,seen_at\n"
    b'1,"a, b",1.5,2026-01-02,true,2026-01-02 10:11:12\n'
    b'2,"x\ny",2,2026-02-03,false,2026-02-03 00:00:00\n'
    b"3,,,,,\n"
    b"4,last,-inf,2026-03-04,true,2026-03-04 23:59:59\n"
)


def load_upload(memory_instance, granula, settings, response):
    """Load an uploaded file as the sensor's run would: through `ingest_file`, in process."""
    body = response.json()
    folder = settings.inbox / f"priority-{body['priority']}" if body["priority"] else settings.inbox
    record, result = ingest(memory_instance, granula, folder / body["filename"])
    assert result.success
    assert record.file_id == body["file_id"], "the run and the upload agree on the file"
    return record


def test_status_of_an_uploaded_file_says_queued(client, upload):
    uploaded = upload("waiting.csv", b"id\n1\n", priority=4).json()
    file_id, public_id = uploaded["file_id"], uploaded["public_id"]

    response = client.get(f"/api/v1/status/{public_id}")

    assert response.status_code == 200
    assert client.get(f"/api/v1/status/{file_id}").json() == response.json()
    assert response.json() == {
        "file_id": file_id,
        "public_id": public_id,
        "filename": "waiting.csv",
        "status": "queued",
        "total_chunks": None,
        "processed_chunks": 0,
        "failed_chunks": 0,
        "progress_percent": 0.0,
        "error_message": None,
    }


def test_status_and_results_of_an_unknown_file_are_404(client):
    for path in ("/api/v1/status/987654", "/api/v1/results/987654"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "no file with id 987654"}


def test_results_of_a_file_not_loaded_yet_are_empty(client, upload):
    file_id = upload("later.csv", b"id\n1\n").json()["file_id"]

    response = client.get(f"/api/v1/results/{file_id}")

    assert response.status_code == 200
    assert response.json() == {
        "items": [],
        "total": 0,
        "limit": 100,
        "offset": 0,
        "next": None,
    }


def test_a_loaded_file_reports_completed_and_its_typed_rows_in_file_order(
    client, upload, memory_instance, granula, settings
):
    uploaded = upload("typed.csv", TYPED_CSV, priority=5)
    record = load_upload(memory_instance, granula, settings, uploaded)
    file_id = record.file_id

    status = client.get(f"/api/v1/status/{file_id}").json()
    assert status == {
        "file_id": file_id,
        "public_id": str(record.public_id),
        "filename": "typed.csv",
        "status": "completed",
        "total_chunks": 1,
        "processed_chunks": 1,
        "failed_chunks": 0,
        "progress_percent": 100.0,
        "error_message": None,
    }

    response = client.get(f"/api/v1/results/{file_id}")
    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "id": 1,
                "chunk_index": 0,
                "data": {
                    "id": 1,
                    "name": "a, b",
                    "amount": 1.5,
                    "day": "2026-01-02",
                    "paid": True,
                    "seen_at": "2026-01-02T10:11:12",
                },
            },
            {
                "id": 2,
                "chunk_index": 0,
                "data": {
                    "id": 2,
                    "name": "x\ny",
                    "amount": 2.0,
                    "day": "2026-02-03",
                    "paid": False,
                    "seen_at": "2026-02-03T00:00:00",
                },
            },
            {
                "id": 3,
                "chunk_index": 0,
                "data": {
                    "id": 3,
                    "name": None,
                    "amount": None,
                    "day": None,
                    "paid": None,
                    "seen_at": None,
                },
            },
            {
                "id": 4,
                "chunk_index": 0,
                "data": {
                    "id": 4,
                    "name": "last",
                    "amount": "-Infinity",  # JSON has no infinities: said as a string
                    "day": "2026-03-04",
                    "paid": True,
                    "seen_at": "2026-03-04T23:59:59",
                },
            },
        ],
        "total": 4,
        "limit": 100,
        "offset": 0,
        "next": None,
    }


def test_results_page_through_the_rows_in_a_stable_order(
    client, upload, memory_instance, granula, settings, tmp_path
):
    source = write_orders(tmp_path / "paged.csv", 250)
    uploaded = upload("paged.csv", source.read_bytes(), priority=1)
    file_id = load_upload(memory_instance, granula, settings, uploaded).file_id
    url = f"/api/v1/results/{file_id}"

    page = client.get(url, params={"limit": 10, "offset": 5}).json()
    assert (page["total"], page["limit"], page["offset"]) == (250, 10, 5)
    assert [item["id"] for item in page["items"]] == list(range(6, 16))
    assert [item["data"]["id"] for item in page["items"]] == list(range(5, 15))
    assert page["items"][0]["data"] == {"id": 5, "name": "name 5, with comma", "value": 2.5}
    assert page["items"][1]["data"]["name"] == 'say "6"\nagain'
    assert client.get(url, params={"limit": 10, "offset": 5}).json() == page

    pages = [client.get(url, params={"limit": 100, "offset": o}).json() for o in (0, 100, 200)]
    ids = [item["data"]["id"] for p in pages for item in p["items"]]
    assert ids == list(range(250))

    beyond = client.get(url, params={"offset": 250}).json()
    assert beyond["items"] == [] and beyond["total"] == 250

    everything = client.get(url, params={"limit": MAX_LIMIT}).json()
    assert len(everything["items"]) == 250 and everything["limit"] == MAX_LIMIT


def test_results_refuse_a_limit_over_the_cap_and_a_negative_offset(client, upload):
    file_id = upload("bounds.csv", b"id\n1\n").json()["file_id"]
    url = f"/api/v1/results/{file_id}"

    for params, field in (
        ({"limit": MAX_LIMIT + 1}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
    ):
        response = client.get(url, params=params)
        assert response.status_code == 422, params
        assert response.json()["detail"][0]["loc"] == ["query", field]


def test_results_of_a_file_whose_table_was_dropped_say_so_with_410(
    client, upload, memory_instance, granula, settings, tmp_path, db
):
    source = write_orders(tmp_path / "dropped.csv", 20)
    record = load_upload(
        memory_instance, granula, settings, upload("dropped.csv", source.read_bytes())
    )
    db.execute(f"DROP TABLE {record.table_name}")

    answer = client.get(f"/api/v1/results/{record.file_id}")

    assert answer.status_code == 410
    assert f"the table {record.table_name}" in answer.json()["detail"]
    assert "no longer exists" in answer.json()["detail"]
    assert client.get(f"/api/v1/status/{record.file_id}").status_code == 200


def test_pages_after_a_cursor_are_the_pages_at_offsets(
    client, upload, memory_instance, granula, settings, tmp_path
):
    source = write_orders(tmp_path / "cursor.csv", 250)
    uploaded = upload("cursor.csv", source.read_bytes())
    public_id = load_upload(memory_instance, granula, settings, uploaded).public_id
    url = f"/api/v1/results/{public_id}"

    by_offset = [client.get(url, params={"limit": 100, "offset": o}).json() for o in (0, 100, 200)]
    by_cursor = [client.get(url, params={"limit": 100}).json()]
    while by_cursor[-1]["next"] is not None:
        after = by_cursor[-1]["next"]
        by_cursor.append(client.get(url, params={"limit": 100, "after": after}).json())

    assert [page["items"] for page in by_cursor] == [page["items"] for page in by_offset]
    assert [page["offset"] for page in by_cursor] == [0, 100, 200]
    assert by_offset[-1]["next"] is None and len(by_offset[-1]["items"]) == 50
    tampered = client.get(url, params={"after": "1;DROP"})
    assert tampered.status_code == 422
    assert "next" in tampered.json()["detail"]
