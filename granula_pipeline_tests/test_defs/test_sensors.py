"""The inbox sensor, ticked with a real Dagster instance against the real database."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from dagster import SensorResult, build_sensor_context

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.sensors import (
    LOOK_GAP_SECONDS,
    SETTLE_WAIT_SECONDS,
    build_inbox_sensor,
    run_key,
)
from granula_pipeline.lib.control import files as control
from granula_pipeline.lib.inbox.scan import relative_path_of
from granula_pipeline.settings import Settings

pytestmark = pytest.mark.slow
inbox_sensor = build_inbox_sensor(interval_seconds=5)


def tick(instance, granula: GranulaResource, cursor: str | None) -> SensorResult:
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"granula": granula})
    result = inbox_sensor(context)
    assert isinstance(result, SensorResult)
    return result


def write(path: Path, text: str, *, age_seconds: float = 60.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = path.stat().st_mtime - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def requested_files(result: SensorResult) -> list[str]:
    return [request.tags["granula/file"] for request in result.run_requests or []]


def settling(settings: Settings, seconds: float) -> GranulaResource:
    return GranulaResource.from_settings(settings.model_copy(update={"settle_seconds": seconds}))


def test_a_quiet_new_file_is_launched_at_the_first_look(instance, granula, settings, db):
    write(settings.inbox / "orders.csv", "id,name\n1,a\n")

    result = tick(instance, granula, None)

    assert requested_files(result) == ["orders.csv"]
    request = result.run_requests[0]
    assert request.job_name == "ingest_file"
    assert request.tags["dagster/priority"] == "0"
    assert request.tags["granula/dataset"] == "orders"
    assert request.tags["granula/size"] == "12 B"
    assert request.run_key == request.partition_key
    [add] = result.dynamic_partitions_requests
    assert list(add.partition_keys) == [request.partition_key]
    record = control.file_by_key(db, request.partition_key)
    assert record is not None and record.status == "queued" and record.dataset == "orders"


def test_a_file_being_written_waits_until_it_has_been_quiet_for_the_settle_time(
    instance, granula, settings
):
    slow = settling(settings, SETTLE_WAIT_SECONDS + 0.5)  # longer than a tick waits
    path = write(settings.inbox / "big.csv", "id\n1\n")  # its ctime is now, whatever its mtime
    first = tick(instance, slow, None)
    assert not first.run_requests
    assert "big.csv" in str(first.skip_reason)
    write(path, "id\n1\n2\n")  # grew since the last look
    assert not tick(instance, slow, first.cursor).run_requests

    time.sleep(SETTLE_WAIT_SECONDS + 0.5)
    assert requested_files(tick(instance, slow, first.cursor)) == ["big.csv"]


def test_a_file_about_to_settle_is_waited_for_within_the_tick(instance, granula, settings):
    write(settings.inbox / "just-dropped.csv", "id\n1\n", age_seconds=0)
    started = time.monotonic()
    result = tick(instance, settling(settings, 0.5), None)
    assert requested_files(result) == ["just-dropped.csv"]
    assert time.monotonic() - started < 3


def test_recently_modified_file_waits_for_the_settle_time(instance, settings, granula):
    write(settings.inbox / "fresh.csv", "id\n1\n", age_seconds=0)
    result = tick(instance, settling(settings, 3600), None)
    assert not result.run_requests
    assert "1 file(s) still being written or just arrived" in str(result.skip_reason)
    assert "fresh.csv" in str(result.skip_reason)


def test_the_skip_reason_names_the_first_waiting_files_and_counts_the_rest(
    instance, settings, granula
):
    for i in range(7):
        write(settings.inbox / f"w{i}.csv", "id\n1\n", age_seconds=0)
    reason = str(tick(instance, settling(settings, 3600), None).skip_reason)
    assert "7 file(s)" in reason and "w0.csv, w1.csv" in reason and "(+2 more)" in reason


def test_same_file_is_launched_only_once(instance, granula, settings):
    write(settings.inbox / "once.csv", "id\n1\n")
    launched = tick(instance, granula, None)
    assert requested_files(launched) == ["once.csv"]

    again = tick(instance, granula, launched.cursor)
    assert not again.run_requests
    assert again.dynamic_partitions_requests in (None, [])


def test_same_path_with_new_content_is_a_new_load(instance, granula, settings):
    path = write(settings.inbox / "daily.csv", "id\n1\n")
    first = tick(instance, granula, None)
    write(path, "id\n1\n2\n3\n", age_seconds=30)
    started = time.monotonic()
    second = tick(instance, granula, first.cursor)  # changed since the last look: looks again
    assert time.monotonic() - started >= LOOK_GAP_SECONDS

    assert requested_files(second) == ["daily.csv"]
    assert second.run_requests[0].partition_key != first.run_requests[0].partition_key


def test_priority_folder_sets_the_run_priority_and_order(instance, granula, settings):
    write(settings.inbox / "low.csv", "id\n1\n")
    write(settings.inbox / "priority-7" / "urgent.csv", "id\n1\n")
    write(settings.inbox / "priority-3" / "sales" / "jan.csv", "id\n1\n")
    result = tick(instance, granula, None)

    assert requested_files(result) == [
        "priority-7/urgent.csv",
        "priority-3/sales/jan.csv",
        "low.csv",
    ]
    priorities = [r.tags["dagster/priority"] for r in result.run_requests]
    assert priorities == ["7", "3", "0"]
    assert result.run_requests[1].tags["granula/dataset"] == "sales"


def test_small_files_of_one_priority_share_an_ingest_batch_run(instance, granula, settings, db):
    for i in range(3):
        write(settings.inbox / "orders" / f"day-{i}.csv", f"id\n{i}\n")
    write(settings.inbox / "priority-5" / "rush.csv", "id\n1\n")
    result = tick(instance, granula, None)

    rush, batch = result.run_requests
    assert rush.job_name == "ingest_file" and rush.tags["dagster/priority"] == "5"
    assert batch.job_name == "ingest_batch"
    keys = batch.run_config["ops"]["plan_batch"]["config"]["partition_keys"]
    assert [relative_path_of(key) for key in keys] == [f"orders/day-{i}.csv" for i in range(3)]
    assert batch.tags["granula/files"] == "3"
    assert rush.run_key == rush.partition_key and batch.run_key == run_key(keys)
    # The batch's key names every file: the same first file in another batch is another run.
    assert run_key([keys[0], keys[1]]) != run_key(keys) != run_key([keys[0], keys[2], keys[1]])
    assert batch.tags["granula/file"] == "orders/day-0.csv (+2 more)"
    assert batch.tags["granula/dataset"] == "orders"
    assert batch.tags["dagster/priority"] == "0"
    [add] = result.dynamic_partitions_requests
    assert set(add.partition_keys) == {*keys, rush.partition_key}
    assert all(control.file_by_key(db, key) is not None for key in keys)


def test_a_file_over_the_batch_size_has_a_run_of_its_own(instance, granula, settings, monkeypatch):
    write(settings.inbox / "small.csv", "id\n1\n")
    write(settings.inbox / "small2.csv", "id\n2\n")
    write(settings.inbox / "huge.csv", "id\n" + "1\n" * 600_000)  # 1.1 MiB
    monkeypatch.setenv("BATCH_MAX_MB", "1")
    result = tick(instance, granula, None)

    jobs = {r.tags["granula/file"]: r.job_name for r in result.run_requests}
    assert jobs == {"huge.csv": "ingest_file", "small.csv (+1 more)": "ingest_batch"}
    assert result.run_requests[0].tags["granula/size"] == "1.1 MiB"


@pytest.mark.parametrize(
    "name", [".orders.csv", "orders.csv.part", "orders.csv.tmp", "~orders.csv"]
)
def test_temporary_names_are_not_picked_up(instance, granula, settings, name):
    write(settings.inbox / name, "id\n1\n")
    result = tick(instance, granula, None)
    assert not result.run_requests
    assert "no new files" in str(result.skip_reason)
