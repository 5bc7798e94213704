"""The header becomes column names a SQL user can type; a file that has no header is refused."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from psycopg import sql

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.csv.header import read_header
from granula_pipeline.lib.formats.names import column_names


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (["", "  ", "id"], ["column_1", "column_2", "id"]),
        (["Name", "name", "NAME"], ["name", "name_2", "name_3"]),
        (["id", "id_2", "id"], ["id", "id_2", "id_3"]),
        (["First Name", " padded  ", "a-b.c"], ["first_name", "padded", "a_b_c"]),
        (['"quoted"', 'Prix "HT" (€)'], ["quoted", "prix_ht"]),
        (["Café", "Année de début", "ÄRGER"], ["café", "année_de_début", "ärger"]),
        (["2020 sales", "1"], ["_2020_sales", "_1"]),
        (["%", "#"], ["column_1", "column_2"]),
    ],
)
def test_column_names_are_snake_case_unique_and_never_blank(source, expected):
    assert column_names(source) == expected


def test_decomposed_accents_give_the_same_name_as_composed_ones():
    decomposed = unicodedata.normalize("NFD", "Année")
    assert column_names([decomposed]) == column_names(["Année"]) == ["année"]


@pytest.mark.parametrize("name", ["_granula_file_id", "_granula_chunk_index", "_GRANULA_x"])
def test_source_names_never_take_a_lineage_column_name(name):
    [column] = column_names([name])
    assert not column.startswith("_granula_")


def test_long_names_fit_postgres_identifiers_and_stay_unique(db):
    source = ["x" * 70, "x" * 80, "é" * 40, "é" * 41, "short"]
    columns = column_names(source)
    assert all(len(c.encode("utf-8")) <= 63 for c in columns)
    assert len(set(columns)) == len(columns)
    # PostgreSQL truncates longer identifiers silently, which would merge distinct columns:
    # the table must come back with exactly the names Granula chose.
    db.execute(
        sql.SQL("CREATE TEMP TABLE long_names ({})").format(
            sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)
        )
    )
    stored = db.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'long_names'::regclass "
        "AND attnum > 0 ORDER BY attnum"
    ).fetchall()
    assert [name for (name,) in stored] == columns


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "file.csv"
    path.write_bytes(content)
    return path


def test_header_is_read_after_a_byte_order_mark(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbfid,Name\n1,a\n")
    header = read_header(path)
    assert header.source_names == ["id", "Name"]
    assert header.columns == ["id", "name"]
    assert (header.data_offset, header.first_data_line) == (11, 2)


def test_quoted_header_over_several_lines_sets_where_the_data_starts(tmp_path):
    content = b'id,"two\nline name"\r\n1,a\n'
    header = read_header(write(tmp_path, content))
    assert header.source_names == ["id", "two\nline name"]
    assert header.data_offset == content.index(b"1,a")
    assert header.first_data_line == 3


def test_header_without_a_newline_has_its_data_start_at_the_end(tmp_path):
    header = read_header(write(tmp_path, b"a,b"))
    assert (header.columns, header.data_offset) == (["a", "b"], 3)


def test_header_in_the_files_own_encoding_is_decoded_with_it(tmp_path):
    header = read_header(write(tmp_path, "Année,Prix\n".encode("cp1252")), "cp1252")
    assert header.source_names == ["Année", "Prix"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b" \n\r\n\t\n", "the file is empty"),
        (b"\xef\xbb\xbf", "the header line is blank"),
        (b",, ,\n1,2,3,4\n", "the header line is blank"),
        (b"id,caf\xe9\n1,2\n", "not utf-8 (byte 0xe9 at offset 6)"),
        (b"id,na\x00me\n1,2\n", "NUL byte"),
        (b'id,"never closed\n1,2\n', "no complete header line"),
    ],
)
def test_file_without_a_usable_header_is_bad_input(tmp_path, content, message):
    with pytest.raises(BadInputError, match=re.escape(message)):
        read_header(write(tmp_path, content))
