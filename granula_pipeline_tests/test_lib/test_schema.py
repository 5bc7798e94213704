"""infer_columns gives each column the PostgreSQL type that holds every sampled value exactly."""

from __future__ import annotations

import pytest

from granula_pipeline.lib.formats.csv.records import whole_records
from granula_pipeline.lib.formats.types import infer_columns


def inferred(*lines: str) -> str:
    """The type of the single column sampled from `lines`."""
    sample = "".join(f"{line}\n" for line in lines).encode()
    [column] = infer_columns(sample, ["value"], ["Value"])
    return column.pg_type


@pytest.mark.parametrize(
    ("values", "pg_type"),
    [
        (["1", "-2", "30"], "bigint"),
        (["0", "10"], "bigint"),
        (["1.5", "-2.25", "1e3", "3"], "double precision"),
        (["0.5", "0.25"], "double precision"),
        (["true", "false", "True"], "boolean"),
        (["2024-01-02", "2024-02-29"], "date"),
        (["2024-01-02 03:04:05", "2024-01-02T03:04:05"], "timestamp without time zone"),
        (["2024-01-02T03:04:05Z", "2024-01-02T03:04:05+02:00"], "timestamp with time zone"),
        (["12:30:00", "13:00:01"], "time without time zone"),
        (["hello", "world"], "text"),
        (["1", "x"], "text"),
        (["2024-13-45"], "text"),
        (["01/02/2024", "13/04/2024"], "text"),  # day or month first depends on the country
    ],
)
def test_column_type_fits_every_value(values, pg_type):
    assert inferred(*values) == pg_type


@pytest.mark.parametrize("values", [["00123", "45"], ["007", "1.5"], ["-0123", "1"], [" 01", "2"]])
def test_numbers_with_leading_zeros_stay_text(values):
    # "00123" is an identifier (zip code, account number): as a number it would lose its zeros.
    assert inferred(*values) == "text"


@pytest.mark.parametrize("values", [["12345678901234567890", "1"], ["-9223372036854775809"]])
def test_integers_beyond_bigint_are_numeric(values):
    assert inferred(*values) == "numeric"


@pytest.mark.parametrize("token", ["NA", "N/A", "n/a", "#N/A", "null", "NULL", "None", "nan", ""])
@pytest.mark.parametrize(
    ("typed", "pg_type"),
    [("42", "bigint"), ("4.5", "double precision"), ("true", "boolean"), ("2024-01-02", "date")],
)
def test_missing_value_tokens_do_not_turn_a_typed_column_into_text(token, typed, pg_type):
    assert inferred(typed, token, typed) == pg_type


def test_column_of_only_missing_value_tokens_is_text():
    assert inferred("NA", "null", "") == "text"


def test_each_column_keeps_its_name_and_source_name():
    sample = b'1,a,"x, y"\n2,b,"z\nw"\n'
    columns = infer_columns(sample, ["id", "name", "note"], ["ID", "Name", "Note"])
    assert [(c.name, c.pg_type, c.source_name) for c in columns] == [
        ("id", "bigint", "ID"),
        ("name", "text", "Name"),
        ("note", "text", "Note"),
    ]


def test_empty_sample_makes_every_column_text():
    columns = infer_columns(b"", ["a", "b"], ["A", "B"])
    assert [c.pg_type for c in columns] == ["text", "text"]


def test_sample_is_cut_at_the_last_record_end_outside_quotes():
    assert whole_records(b'1,"a\nb"\n2,"c\nd') == b'1,"a\nb"\n'
    assert whole_records(b'1,"a\nb') == b""
    assert whole_records(b"1,a\n2,b\n") == b"1,a\n2,b\n"
