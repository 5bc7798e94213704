"""`granula prune`: old partitions go, and with --delete-rows their rows too."""

from __future__ import annotations

from datetime import timedelta

import pytest

from granula_pipeline.defs.partitions import inbox_partitions
from granula_pipeline.lib.control.retention import parse_age
from granula_pipeline.runs import ingest, prune
from granula_pipeline_tests.factories import write_orders

pytestmark = pytest.mark.slow


def age_file(db, file_id: int, days: int) -> None:
    db.execute(
        "UPDATE granula.files SET finished_at = now() - make_interval(days => %s) "
        "WHERE file_id = %s",
        (days, file_id),
    )


def test_prune_drops_old_partitions_and_keeps_recent_ones(instance, granula, settings, db):
    old, _ = ingest(instance, granula, write_orders(settings.inbox / "old.csv", 3))
    new, _ = ingest(instance, granula, write_orders(settings.inbox / "new.csv", 3, start=10))
    age_file(db, old.file_id, 40)

    result = prune(instance, granula, timedelta(days=30), delete_rows=False)

    assert result == {"pruned_partitions": 1, "deleted_rows": 0}
    assert instance.get_dynamic_partitions(inbox_partitions.name) == [new.partition_key]
    assert db.execute("SELECT count(*) FROM datasets.old").fetchone() == (3,)


def test_prune_with_delete_rows_removes_loaded_and_control_rows(instance, granula, settings, db):
    old, _ = ingest(instance, granula, write_orders(settings.inbox / "gone.csv", 4))
    age_file(db, old.file_id, 400)

    result = prune(instance, granula, timedelta(days=365), delete_rows=True)

    assert result == {"pruned_partitions": 1, "deleted_rows": 4}
    assert db.execute("SELECT count(*) FROM datasets.gone").fetchone() == (0,)
    assert db.execute(
        "SELECT count(*) FROM granula.files WHERE file_id = %s", (old.file_id,)
    ).fetchone() == (0,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90))],
)
def test_ages_parse(text, expected):
    assert parse_age(text) == expected


def test_bad_age_is_refused():
    with pytest.raises(ValueError, match="not an age"):
        parse_age("soon")
