"""A later file of a dataset that differs from the table: which rule applies, for real."""

from __future__ import annotations

import unicodedata

import pytest
from psycopg import sql

from granula_pipeline.lib.load.tables import ROW_COLUMN, widened_type
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
        "WHERE table_schema = 'datasets' AND table_name = %s AND column_name <> %s",
        (table, ROW_COLUMN),
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


def mapped_columns(db, record) -> dict[str, str]:
    """The file's headers and the table columns they loaded into, as granula.files records them."""
    [(columns,)] = db.execute(
        "SELECT columns FROM granula.files WHERE file_id = %s", (record.file_id,)
    ).fetchall()
    return {c["header"]: c["name"] for c in columns}


def test_a_later_file_with_its_columns_in_another_order_loads_each_value_under_its_header(
    instance, granula, settings, db
):
    load(instance, granula, settings, "a.csv", "Order ID,order_id\nA1,a1\n", "reordered")
    record = load(instance, granula, settings, "b.csv", "order_id,Order ID\nb2,B2\n", "reordered")

    assert record.status == "completed"
    assert mapped_columns(db, record) == {"Order ID": "order_id", "order_id": "order_id_2"}
    rows = db.execute("SELECT order_id, order_id_2 FROM datasets.reordered ORDER BY 1").fetchall()
    assert rows == [("A1", "a1"), ("B2", "b2")]


def test_headers_equal_in_their_first_63_bytes_load_into_columns_of_their_own(
    instance, granula, settings, db
):
    prefix = "a" * 59
    first = load(
        instance, granula, settings, "a.csv", f"k,{prefix}_customer_name\n1,Alice\n", "cards"
    )
    second = load(
        instance,
        granula,
        settings,
        "b.csv",
        f"k,{prefix}_credit_card\n2,4111111111111111\n",
        "cards",
    )

    assert second.status == "completed"
    name = mapped_columns(db, first)[f"{prefix}_customer_name"]
    card = mapped_columns(db, second)[f"{prefix}_credit_card"]
    assert name != card
    assert len(name.encode()) <= 63 and len(card.encode()) <= 63
    assert set(column_types(db, "cards")) == {
        "k",
        name,
        card,
        "_granula_file_id",
        "_granula_chunk_index",
    }
    rows = db.execute(
        sql.SQL("SELECT k, {}, {}::text FROM datasets.cards ORDER BY k").format(
            sql.Identifier(name), sql.Identifier(card)
        )
    ).fetchall()
    assert rows == [(1, "Alice", None), (2, None, "4111111111111111")]


@pytest.mark.parametrize(
    ("dataset", "other"),
    [
        ("x" * 63 + "_north", "x" * 63 + "_south"),
        ("é" * 32 + "north", "é" * 32 + "south"),
        ('sales"2026', "sales;2026"),
    ],
    ids=["after-63-bytes", "after-63-bytes-multibyte", "quote-or-semicolon"],
)
def test_two_datasets_never_share_a_table(instance, granula, settings, db, dataset, other):
    first = load(instance, granula, settings, "a.csv", "id\n1\n", dataset)
    second = load(instance, granula, settings, "b.csv", "id\n1\n", other)

    assert (first.status, second.status) == ("completed", "completed")
    assert second.duplicate_of is None
    assert first.table_name != second.table_name
    for record in (first, second):
        schema, table = record.table_name.split(".")
        assert len(table.encode()) <= 63
        assert db.execute(
            sql.SQL("SELECT _granula_file_id, id FROM {}").format(sql.Identifier(schema, table))
        ).fetchall() == [(record.file_id, 1)]


def test_a_dataset_name_composed_or_decomposed_is_one_dataset(instance, granula, settings, db):
    composed, decomposed = "café", unicodedata.normalize("NFD", "café")
    first = load(instance, granula, settings, "a.csv", "id\n1\n", composed)
    second = load(instance, granula, settings, "b.csv", "id\n1\n", decomposed)

    assert second.dataset == first.dataset == composed
    assert first.table_name == "datasets.café"
    assert second.duplicate_of == first.file_id
    third = load(instance, granula, settings, "c.csv", "id\n2\n", decomposed)
    assert (third.dataset, third.table_name) == (composed, "datasets.café")
    assert db.execute('SELECT id FROM datasets."café" ORDER BY id').fetchall() == [(1,), (2,)]


def test_a_table_from_before_headers_were_recorded_matches_its_columns_by_name_once(
    instance, granula, settings, db
):
    load(instance, granula, settings, "a.csv", "id,name\n1,a\n", "older")
    db.execute("DELETE FROM granula.dataset_columns WHERE table_name = 'older'")
    record = load(instance, granula, settings, "b.csv", "name,id,city\nb,2,Paris\n", "older")

    assert record.status == "completed"
    assert mapped_columns(db, record) == {"name": "name", "id": "id", "city": "city"}
    assert db.execute("SELECT id, name, city FROM datasets.older ORDER BY id").fetchall() == [
        (1, "a", None),
        (2, "b", "Paris"),
    ]
    assert db.execute(
        "SELECT source_header, column_name FROM granula.dataset_columns "
        "WHERE table_name = 'older' ORDER BY 1"
    ).fetchall() == [("city", "city"), ("id", "id"), ("name", "name")]
