"""The inbox sensor, ticked with a real Dagster instance against the real database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import SensorResult, build_sensor_context

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.sensors import build_inbox_sensor
from granula_pipeline.lib.control import files as control

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


def test_new_file_is_launched_once_it_has_been_seen_unchanged(instance, granula, settings, db):
    write(settings.inbox / "orders.csv", "id,name\n1,a\n")

    first = tick(instance, granula, None)
    assert not first.run_requests
    assert "not settled" in str(first.skip_reason)
    second = tick(instance, granula, first.cursor)

    assert requested_files(second) == ["orders.csv"]
    request = second.run_requests[0]
    assert request.tags["dagster/priority"] == "0"
    assert request.tags["granula/dataset"] == "orders"
    assert request.run_key == request.partition_key
    [add] = second.dynamic_partitions_requests
    assert list(add.partition_keys) == [request.partition_key]
    record = control.file_by_key(db, request.partition_key)
    assert record is not None and record.status == "queued" and record.dataset == "orders"


def test_growing_file_waits_until_it_stops_changing(instance, granula, settings):
    path = write(settings.inbox / "big.csv", "id\n1\n")
    cursor = tick(instance, granula, None).cursor
    write(path, "id\n1\n2\n")  # grew since the last look (its mtime is old: only size tells)
    grown = tick(instance, granula, cursor)
    assert not grown.run_requests

    settled = tick(instance, granula, grown.cursor)
    assert requested_files(settled) == ["big.csv"]


def test_recently_modified_file_waits_for_the_settle_time(instance, settings, database_url):
    slow = GranulaResource(database_url=database_url, data_dir=str(settings.data_dir))
    os.environ["SETTLE_SECONDS"] = "3600"
    try:
        write(settings.inbox / "fresh.csv", "id\n1\n", age_seconds=0)
        cursor = tick(instance, slow, None).cursor
        assert not tick(instance, slow, cursor).run_requests
    finally:
        del os.environ["SETTLE_SECONDS"]


def test_same_file_is_launched_only_once(instance, granula, settings):
    write(settings.inbox / "once.csv", "id\n1\n")
    cursor = tick(instance, granula, None).cursor
    launched = tick(instance, granula, cursor)
    assert requested_files(launched) == ["once.csv"]

    again = tick(instance, granula, launched.cursor)
    assert not again.run_requests
    assert again.dynamic_partitions_requests in (None, [])


def test_same_path_with_new_content_is_a_new_load(instance, granula, settings):
    path = write(settings.inbox / "daily.csv", "id\n1\n")
    cursor = tick(instance, granula, None).cursor
    first = tick(instance, granula, cursor)
    write(path, "id\n1\n2\n3\n", age_seconds=30)
    seen = tick(instance, granula, first.cursor)
    second = tick(instance, granula, seen.cursor)

    assert requested_files(second) == ["daily.csv"]
    assert second.run_requests[0].partition_key != first.run_requests[0].partition_key


def test_priority_folder_sets_the_run_priority_and_order(instance, granula, settings):
    write(settings.inbox / "low.csv", "id\n1\n")
    write(settings.inbox / "priority-7" / "urgent.csv", "id\n1\n")
    write(settings.inbox / "priority-3" / "sales" / "jan.csv", "id\n1\n")
    cursor = tick(instance, granula, None).cursor
    result = tick(instance, granula, cursor)

    assert requested_files(result) == [
        "priority-7/urgent.csv",
        "priority-3/sales/jan.csv",
        "low.csv",
    ]
    priorities = [r.tags["dagster/priority"] for r in result.run_requests]
    assert priorities == ["7", "3", "0"]
    assert result.run_requests[1].tags["granula/dataset"] == "sales"


@pytest.mark.parametrize(
    "name", [".orders.csv", "orders.csv.part", "orders.csv.tmp", "~orders.csv"]
)
def test_temporary_names_are_not_picked_up(instance, granula, settings, name):
    write(settings.inbox / name, "id\n1\n")
    cursor = tick(instance, granula, None).cursor
    result = tick(instance, granula, cursor)
    assert not result.run_requests
    assert "no new files" in str(result.skip_reason)
