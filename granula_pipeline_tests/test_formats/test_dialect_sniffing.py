"""The sniffer and the layout finder on their own: each dialect fact from a sample, the plain
fast path recognised as such, settings checked, and no parser's own error text shown."""

from __future__ import annotations

import csv
import re

import polars as pl
import pytest

from granula_pipeline.lib.errors import UNPARSED_CSV, BadInputError, describe
from granula_pipeline.lib.formats.csv.dialect import consistency, sniff, terminator
from granula_pipeline.lib.formats.csv.header import detect_layout
from granula_pipeline.lib.formats.source import dialect_hints
from granula_pipeline.lib.model import Dialect

TABLE = [["1", "Smith, John", "12.5"], ["2", "Ann", "7"], ["3", "Bo, Li", "0.5"]]


def written(delimiter=",", quote='"', end="\n", escape=None) -> bytes:
    lines = ["id" + delimiter + "name" + delimiter + "amount"]
    for row in TABLE:
        cells = [quote + v + quote if "," in v else v for v in row]
        lines.append(delimiter.join(cells))
    return (end.join(lines) + end).encode()


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (written(), (",", '"', "doubled", "LF", True)),
        (written(end="\r\n"), (",", '"', "doubled", "CRLF", True)),
        (written(end="\r"), (",", '"', "doubled", "CR", False)),
        (written(";"), (";", '"', "doubled", "LF", True)),
        (written(", "), (", ", '"', "doubled", "LF", False)),
        (written(quote="'"), (",", "'", "doubled", "LF", False)),
        (b'a,b\n1,"x \\"y\\", z"\n2,"w"\n', (",", '"', "backslash", "LF", False)),
        (b'a,b\n1,"x "y" z"\n2,w\n', (",", '"', "none", "LF", False)),
        (b"a~b~c\n1~2~3\n4~5~6\n", ("~", '"', "doubled", "LF", True)),
        (b"at\n2026-01-03 10:30:00\n", (",", '"', "doubled", "LF", True)),  # one column
        (b"note\nsee you at 10:30\nfine\n", (",", '"', "doubled", "LF", True)),
    ],
)
def test_each_dialect_fact_is_sniffed(sample, expected):
    dialect = sniff(sample, "utf-8", {}, ",")
    found = (dialect.delimiter, dialect.quote, dialect.escape, dialect.terminator)
    assert (*found, dialect.copyable) == expected


def test_set_facts_are_taken_as_set():
    dialect = sniff(written(";"), "utf-8", {"delimiter": ",", "header_rows": 0}, ";")
    assert (dialect.delimiter, dialect.header_rows) == (",", 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a\nb\n", "LF"), ("a\r\nb\r\n", "CRLF"), ("a\rb\r", "CR"), ("a\rb\nc\n", "mixed")],
)
def test_record_terminator(text, expected):
    assert terminator(text) == expected


def test_consistency_prefers_one_width_and_typed_cells():
    even = consistency([["1", "2.5"], ["2", "3"]])
    ragged = consistency([["1", "2.5"], ["2", "3", "x"]])
    untyped = consistency([['"1', '2"'], ['"2', '3"']])
    assert even > ragged and even > untyped and consistency([["a"], ["b"]]) == 0


def test_a_stored_dialect_reads_back_the_same():
    dialect = Dialect(";", "'", "backslash", "CR", 2, 3, ("Title",), 40, "fixed", True)
    assert Dialect.stored(dialect.facts()) == dialect
    assert Dialect.stored(None) is None


def test_the_layout_of_a_plain_file_is_its_first_line():
    layout = detect_layout(b"id,name\n1,a\n", Dialect(), "utf-8", whole=True)
    assert (layout.header.source_names, layout.header.data_offset) == (["id", "name"], 8)
    assert (layout.dialect.header_rows, layout.dialect.skip_lines, layout.dialect.copyable) == (
        1,
        0,
        True,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"quote": "`"}', "quote must be one of"),
        ('{"delimiter": "ab"}', "must be one character"),
        ('{"header_rows": -1}', "header_rows must be a whole number"),
        ('{"colour": "red"}', "unknown dialect settings ['colour']"),
        ("{not json", "is not valid JSON (line 1, column 2)"),
    ],
)
def test_a_bad_dialect_setting_says_what_to_fix(tmp_path, content, message):
    (tmp_path / ".granula-dialect.json").write_text(content)
    with pytest.raises(BadInputError, match=re.escape(message)):
        dialect_hints(tmp_path / "data.csv")


def test_a_file_setting_wins_over_its_folders(tmp_path):
    (tmp_path / ".granula-dialect.json").write_text('{"delimiter": "tab"}')
    (tmp_path / ".data.csv.dialect.json").write_text('{"delimiter": "comma-space"}')
    assert dialect_hints(tmp_path / "data.csv") == {"delimiter": ", "}
    assert dialect_hints(tmp_path / "other.csv") == {"delimiter": "\t"}


@pytest.mark.parametrize(
    "error",
    [
        csv.Error("new-line character seen in unquoted field"),
        pl.exceptions.ComputeError("could not parse `x` as dtype str"),
    ],
)
def test_a_parsers_own_error_is_never_shown_as_it_is(error):
    assert describe(error) == UNPARSED_CSV
    assert "ComputeError" not in describe(error) and "new-line" not in describe(error)


@pytest.mark.parametrize(
    ("content", "names", "rows"),
    [
        (b"region,2024,2025\nNorth,1,2\nSouth,3,4\n", ["region", "2024", "2025"], 1),
        (b"a,b,c\n1,2\n3,4\n5,6,7\n8,9,10\n11,12,13\n", ["a", "b", "c"], 1),
        (b"id,amount\n1,NA\n2,3.5\n3,4\n", ["id", "amount"], 1),
        (b"1,2.5\n2,3.5\n", ["column_1", "column_2"], 0),
    ],
)
def test_the_header_is_told_from_data(content, names, rows):
    layout = detect_layout(content, Dialect(), "utf-8", whole=True)
    assert (layout.header.source_names, layout.dialect.header_rows) == (names, rows)
    assert layout.dialect.skip_lines == 0


def test_many_doubled_quotes_on_an_unclosed_line_are_read_quickly():
    sample = b'a,b\n1,"' + b'""' * 5000 + b"\n"  # a quoted field that goes on to the next line
    assert sniff(sample, "utf-8", {}, ",").delimiter == ","
