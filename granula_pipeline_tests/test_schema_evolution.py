"""A later file of a dataset that differs from the table: which rule applies, for real."""

from __future__ import annotations

import pytest

from granula_pipeline.lib.load.tables import widened_type
from granula_pipeline.runs import ingest

pytestmark = pytest.mark.slow


def load(instance, granula, settings, name: str, text: str, dataset: str):
    path = settings.inbox / name
    path.write_text(text)
    record, _ = ingest(instance, granula, path, dataset=dataset)
    return record


def column_types(db, table: str) -> dict[str, str]:
    rows = db.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'datasets' AND table_name = %s",
        (table,),
    ).fetchall()
    return dict(rows)


def test_new_column_is_added_and_missing_column_loads_as_null(instance, granula, settings, db):
    load(instance, granula, settings, "a.csv", "id,name\n1,a\n", "people")
    record = load(instance, granula, settings, "b.csv", "id,city\n2,Paris\n", "people")

    assert record.status == "completed"
    assert column_types(db, "people") == {
        "id": "bigint",
        "name": "text",
        "city": "text",
        "_granula_file_id": "bigint",
        "_granula_chunk_index": "integer",
    }
    assert db.execute("SELECT id, name, city FROM datasets.people ORDER BY id").fetchall() == [
        (1, "a", None),
        (2, None, "Paris"),
    ]


def test_integer_column_widens_to_numeric_for_decimals(instance, granula, settings, db):
    load(instance, granula, settings, "a.csv", "id,amount\n1,10\n", "amounts")
    record = load(instance, granula, settings, "b.csv", "id,amount\n2,10.25\n", "amounts")

    assert record.status == "completed"
    assert column_types(db, "amounts")["amount"] == "numeric"
    assert db.execute("SELECT amount::text FROM datasets.amounts ORDER BY id").fetchall() == [
        ("10",),
        ("10.25",),
    ]


def test_number_column_widens_to_text_when_words_arrive(instance, granula, settings, db):
    load(instance, granula, settings, "a.csv", "code\n7\n", "codes")
    record = load(instance, granula, settings, "b.csv", "code\nA-7\n", "codes")

    assert record.status == "completed"
    assert column_types(db, "codes")["code"] == "text"
    assert db.execute("SELECT code FROM datasets.codes ORDER BY code").fetchall() == [
        ("7",),
        ("A-7",),
    ]


def test_dates_widen_to_timestamps(instance, granula, settings, db):
    load(instance, granula, settings, "a.csv", "at\n2026-01-02\n", "moments")
    record = load(instance, granula, settings, "b.csv", "at\n2026-01-03 10:30:00\n", "moments")
    assert record.status == "completed"
    assert column_types(db, "moments")["at"] == "timestamp without time zone"


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        ("bigint", "bigint", "bigint"),
        ("bigint", "double precision", "numeric"),
        ("double precision", "bigint", "double precision"),
        ("numeric", "double precision", "numeric"),
        ("bigint", "text", "text"),
        ("text", "bigint", "text"),
        ("date", "timestamp with time zone", "timestamp with time zone"),
        ("boolean", "bigint", "text"),
    ],
)
def test_widening_rules(current, incoming, expected):
    assert widened_type(current, incoming) == expected
