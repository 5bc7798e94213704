"""`granula api --load`: an uploaded file is loaded by the API's own worker, without a daemon."""

from __future__ import annotations

from fastapi.testclient import TestClient

from granula_pipeline.api import create_app
from granula_pipeline.runs import BackgroundLoader


def test_an_upload_is_loaded_in_the_background_and_leaves_the_inbox(
    settings, granula, memory_instance
):
    loader = BackgroundLoader(memory_instance, granula)
    loads = []

    def on_upload(record):
        loads.append(loader(record))

    with TestClient(
        create_app(settings, on_upload=on_upload), base_url="http://127.0.0.1"
    ) as client:
        uploaded = client.post(
            "/api/v1/upload",
            params={"priority": 6},
            files={"file": ("rush.csv", b"id,name\n1,a\n2,b\n", "text/csv")},
        )
        assert uploaded.status_code == 201
        file_id = uploaded.json()["file_id"]
        loader.close()

        (load,) = loads
        assert load.result().file_id == file_id
        status = client.get(f"/api/v1/status/{file_id}").json()
        assert (status["status"], status["progress_percent"]) == ("completed", 100.0)
        rows = client.get(f"/api/v1/results/{file_id}").json()
        assert [item["data"] for item in rows["items"]] == [
            {"id": 1, "name": "a"},
            {"id": 2, "name": "b"},
        ]
    assert not (settings.inbox / "priority-6" / "rush.csv").exists()
    assert (settings.processed_dir / "priority-6" / f"{file_id}-rush.csv").exists()
