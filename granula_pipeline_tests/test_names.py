"""Names Granula gives columns, tables and inbox folders: distinct, kept by PostgreSQL, and safe."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from alembic import command
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from granula_pipeline.lib.db.upgrade import alembic_config
from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.names import (
    MAX_DATA_COLUMNS,
    assign_columns,
    column_names,
    header_keys,
)
from granula_pipeline.lib.inbox.scan import dataset_name, describe
from granula_pipeline.lib.inbox.submission import copy_into_inbox
from granula_pipeline.settings import sqlalchemy_url
from granula_pipeline_tests.loads import load

REPO = Path(__file__).resolve().parents[1]
SYSTEM_COLUMNS = {"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"}
NAMING_SECONDS = 5.0

T = TypeVar("T")


def within(seconds: float, function: Callable[[], T]) -> T:
    """`function()`, failing the test (not hanging it) if it has not returned after `seconds`;
    the thread it runs in is left behind."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def call() -> None:
        try:
            outcome.append(function())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still naming after {seconds} s"
    if failure:
        raise failure[0]
    return outcome[0]


def assert_valid_identifiers(names: list[str]) -> None:
    assert len(set(names)) == len(names)
    for name in names:
        assert name and "\x00" not in name
        assert len(name.encode()) <= 63, name
        assert not name.startswith("_granula_"), name
        assert name not in SYSTEM_COLUMNS, name


# --- thousands of equal names: naming ends (case 4) -------------------------------------------


def test_a_thousand_and_one_equal_long_names_are_named_quickly_and_distinctly():
    names = within(NAMING_SECONDS, lambda: column_names(["n" * 60] * 1001))

    assert names[0] == "n" * 60
    assert_valid_identifiers(names)


def test_as_many_equal_names_as_a_table_holds_are_named_quickly():
    for header in ("n" * 60, "é" * 40, "", "x"):
        names = within(NAMING_SECONDS, lambda h=header: column_names([h] * MAX_DATA_COLUMNS))
        assert len(names) == MAX_DATA_COLUMNS
        assert_valid_identifiers(names)


def test_more_columns_than_a_table_holds_are_refused_before_naming():
    with pytest.raises(BadInputError, match=r"5000 columns.*at most 1597"):
        within(NAMING_SECONDS, lambda: column_names(["n" * 60] * 5000))


def test_a_header_of_a_thousand_and_one_equal_long_names_loads(memory_instance, settings, db):
    path = settings.inbox / "wide.csv"
    path.write_text(",".join(["n" * 60] * 1001) + "\n" + ",".join(map(str, range(1001))) + "\n")

    record = within(120, lambda: load(memory_instance, settings, path))

    assert record.status == "completed"
    [(columns,)] = db.execute(
        "SELECT columns FROM granula.files WHERE file_id = %s", (record.file_id,)
    ).fetchall()
    assert len({c["name"] for c in columns}) == 1001
    schema, table = (record.table_name or "").split(".")
    last = columns[-1]["name"]
    assert db.execute(
        sql.SQL("SELECT {} FROM {}").format(sql.Identifier(last), sql.Identifier(schema, table))
    ).fetchall() == [(1000,)]


def test_a_header_wider_than_a_table_fails_the_file_saying_so(memory_instance, settings):
    path = settings.inbox / "too_wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(1700)) + "\n" + "1," * 1699 + "1\n")

    record = within(120, lambda: load(memory_instance, settings, path))

    assert record.status == "failed"
    assert "the header has 1700 columns" in (record.error_message or "")


# --- the property: any header gives distinct identifiers PostgreSQL keeps ----------------------

LOOKALIKES = ["a" * 59, "é" * 31, "n" * 60, "Order ID", "order_id", "", "2020", "_granula_", "xmin"]
HEADER = st.one_of(
    st.text(max_size=90),
    st.builds(lambda prefix, rest: prefix + rest, st.sampled_from(LOOKALIKES), st.text(max_size=6)),
    st.sampled_from(LOOKALIKES),
)


def repeated(pool: list[str], count: int) -> list[str]:
    """`count` headers drawn in turn from `pool`: wide headers, thick with equal names."""
    return [pool[i % len(pool)] for i in range(count)]


HEADERS = st.one_of(
    st.lists(HEADER, max_size=300),
    st.builds(repeated, st.lists(HEADER, min_size=1, max_size=40), st.integers(0, 2000)),
)


def kept_by_postgresql(db, names: list[str]) -> None:
    """PostgreSQL makes a table of exactly these columns: none truncated, refused or merged."""
    with db.transaction(force_rollback=True):
        db.execute(
            sql.SQL("CREATE TEMP TABLE naming ({})").format(
                sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(n)) for n in names)
                or sql.SQL("")
            )
        )
        stored = db.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'naming'::regclass "
            "AND attnum > 0 ORDER BY attnum"
        ).fetchall()
    assert [name for (name,) in stored] == names


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(headers=HEADERS)
def test_any_header_gives_distinct_identifiers_postgresql_keeps_within_a_time_bound(db, headers):
    started = time.monotonic()
    if len(headers) > MAX_DATA_COLUMNS:
        with pytest.raises(BadInputError):
            column_names(headers)
        return
    names = column_names(headers)
    assert time.monotonic() - started < NAMING_SECONDS

    assert len(names) == len(headers)
    assert_valid_identifiers(names)
    assert column_names(list(headers)) == names
    kept_by_postgresql(db, names)


@hypothesis_settings(max_examples=60, deadline=None)
@given(first=HEADERS, later=HEADERS)
def test_a_later_file_keeps_the_columns_of_headers_seen_before_and_names_new_ones_apart(
    first, later
):
    first, later = first[:MAX_DATA_COLUMNS], later[: MAX_DATA_COLUMNS - len(first)]
    named = column_names(first)
    known = dict(zip(header_keys(first), named, strict=True))

    started = time.monotonic()
    names = assign_columns(later, known=known, taken=set(named))
    assert time.monotonic() - started < NAMING_SECONDS

    assert_valid_identifiers(names)
    for key, name in zip(header_keys(later), names, strict=True):
        if key in known:
            assert name == known[key]
        else:
            assert name not in named
    assert assign_columns(later, known=known, taken=set(named)) == names


def test_headers_equal_but_for_unicode_composition_are_one_header():
    decomposed = unicodedata.normalize("NFD", "Année")
    assert header_keys(["Année", decomposed]) == [("Année", 1), ("Année", 2)]


# --- datasets: one safe path component (case 5) ------------------------------------------------


@pytest.mark.parametrize(
    "dataset",
    [
        "sales",
        "Sales 2026",
        'sales"2026',
        "sales;2026",
        "x" * 100,
        unicodedata.normalize("NFD", "café"),
    ],
)
def test_a_dataset_name_is_kept_in_nfc(dataset):
    assert dataset_name(dataset) == unicodedata.normalize("NFC", dataset)


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("../../escaped", "one folder name"),
        ("/tmp/escaped", "one folder name"),
        ("a/b", "one folder name"),
        ("a\\b", "one folder name"),
        ("..", "one folder name"),
        (".", "one folder name"),
        ("", "is empty"),
        (".hidden", "ignores"),
        ("sales.part", "ignores"),
        ("priority-3", "priority folder"),
        ("a\nb", "control character"),
        ("a\x00b", "control character"),
        ("x" * 201, "over 200 bytes"),
        ("%%%", "no letters or digits"),
    ],
)
def test_a_dataset_name_that_is_not_one_safe_folder_name_is_refused(dataset, message):
    with pytest.raises(BadInputError, match=message):
        dataset_name(dataset)


@pytest.mark.parametrize("dataset", ["../../escaped", "/escaped", "a/../../escaped"])
def test_copy_into_inbox_never_writes_outside_the_inbox(tmp_path, dataset):
    source = tmp_path / "f.csv"
    source.write_text("id\n1\n")
    inbox = tmp_path / "deep" / "inbox"
    inbox.mkdir(parents=True)
    absolute = dataset.startswith("/")
    if absolute:
        dataset = str(tmp_path / "escaped")

    with pytest.raises(BadInputError):
        copy_into_inbox(source, inbox, dataset=dataset)

    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "f.csv", "inbox"]


def test_describe_refuses_a_dataset_that_is_not_one_folder_name(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("id\n1\n")
    with pytest.raises(BadInputError):
        describe(path, tmp_path / "inbox", dataset="../x")


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_submit_refuses_a_dataset_that_would_leave_the_inbox(env, settings, tmp_path, where):
    source = tmp_path / "f.csv"
    source.write_text("id\n1\n")
    escaped = settings.data_dir.parent / f"escaped-{uuid.uuid4().hex[:8]}"
    dataset = f"../../{escaped.name}" if where == "relative" else str(escaped)

    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "granula_pipeline.cli",
                "submit",
                str(source),
                *("--dataset", dataset),
            ],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        written = escaped.exists()
    finally:
        shutil.rmtree(escaped, ignore_errors=True)

    assert not written
    assert done.returncode == 2
    assert "--dataset" in done.stderr and "one folder name" in done.stderr
    assert not list(settings.inbox.rglob("f.csv"))
    assert json.loads(done.stdout or "null") is None


# --- the records of tables made before 0007 ----------------------------------------------------


def test_the_migration_records_each_tables_dataset_and_columns_from_its_earliest_file(
    empty_database,
):
    config = alembic_config(sqlalchemy_url(empty_database, "psycopg"))
    command.upgrade(config, "0007-1")
    long_table = "é" * 32 + "north"
    files = [
        ("orders", "datasets.orders", [("order_id", "Order ID"), ("order_id_2", "order_id")]),
        # a later file loaded by position: its columns swapped, which must not count
        ("orders", "datasets.orders", [("order_id", "order_id"), ("order_id_2", "Order ID")]),
        (unicodedata.normalize("NFD", "café"), "datasets.cafe", [("id", "id"), ("id_2", "id")]),
        ("a;b", "datasets.a_b", [("x", "x")]),
        ('a"b', "datasets.a_b", [("x", "x")]),
        (long_table, f"datasets.{long_table}", [("y", "y")]),
    ]
    with psycopg.connect(empty_database, autocommit=True) as conn:
        for number, (dataset, table, columns) in enumerate(files):
            conn.execute(
                "INSERT INTO granula.files (partition_key, filename, path, dataset, table_name, "
                "columns) VALUES (%s, 'f.csv', '/in/f.csv', %s, %s, %s)",
                (
                    f"k{number}",
                    dataset,
                    table,
                    Jsonb([{"name": n, "type": "text", "header": h} for n, h in columns]),
                ),
            )

        command.upgrade(config, "head")

        cut = long_table.encode()[:63].decode(errors="ignore")
        assert conn.execute(
            "SELECT table_name, dataset FROM granula.dataset_tables ORDER BY 1"
        ).fetchall() == [("a_b", "a;b"), ("cafe", "café"), ("orders", "orders"), (cut, long_table)]
        assert conn.execute(
            "SELECT table_name, source_header, occurrence, column_name "
            "FROM granula.dataset_columns ORDER BY 1, 2, 3"
        ).fetchall() == [
            ("a_b", "x", 1, "x"),
            ("cafe", "id", 1, "id"),
            ("cafe", "id", 2, "id_2"),
            ("orders", "Order ID", 1, "order_id"),
            ("orders", "order_id", 1, "order_id_2"),
            (cut, "y", 1, "y"),
        ]
        assert conn.execute(
            "SELECT dataset FROM granula.files WHERE partition_key = 'k2'"
        ).fetchone() == ("café",)
