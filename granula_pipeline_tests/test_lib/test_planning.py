"""plan_file cuts a file into chunks of whole records, whatever its quoted fields hold."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats import chunking as planning
from granula_pipeline.lib.formats.chunking import plan_file
from granula_pipeline.lib.formats.csv import records as record_rule
from granula_pipeline.lib.formats.csv.header import read_header
from granula_pipeline.lib.model import FilePlan

# Field text rich in the bytes that make CSV hard: separators, quotes and line ends.
FIELD = st.text(alphabet=st.sampled_from(list('ab é,"\n\r ')), max_size=12)


def plan(path: Path, *, chunk_rows: int = 1_000, max_bytes: int = 1 << 30) -> FilePlan:
    header = read_header(path)
    return plan_file(
        path,
        data_offset=header.data_offset,
        first_line=header.first_data_line,
        chunk_rows=chunk_rows,
        max_bytes=max_bytes,
    )


def records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def csv_bytes(
    rows: list[list[str]], *, terminator: str = "\n", trailing: bool = True, quote_all: bool = False
) -> bytes:
    """RFC 4180 CSV; unlike csv.writer with an LF terminator, it quotes a field holding a CR."""
    lines = [",".join(_field(value, quote_all) for value in row) + terminator for row in rows]
    text = "".join(lines)
    return (text if trailing else text.removesuffix(terminator)).encode("utf-8")


def _field(value: str, quote_all: bool) -> str:
    if quote_all or any(special in value for special in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def assert_whole_records(content: bytes, result: FilePlan, data_offset: int) -> None:
    """Chunks tile the data; each holds whole records, counted and numbered right."""
    assert result.chunks, "a file with data rows has at least one chunk"
    assert result.chunks[0].byte_start == data_offset
    assert result.chunks[-1].byte_end == len(content) == result.size_bytes
    for before, after in zip(result.chunks, result.chunks[1:], strict=False):
        assert before.byte_end == after.byte_start
    assert [chunk.index for chunk in result.chunks] == list(range(len(result.chunks)))

    from_chunks = []
    for chunk in result.chunks:
        chunk_records = records(content[chunk.byte_start : chunk.byte_end])
        assert len(chunk_records) == chunk.planned_rows
        assert chunk.first_line == 1 + content.count(b"\n", 0, chunk.byte_start)
        from_chunks.extend(chunk_records)
    assert from_chunks == records(content[data_offset:])
    assert result.planned_rows == len(from_chunks)


@given(
    rows=st.lists(st.lists(FIELD, min_size=3, max_size=3), min_size=1, max_size=25),
    terminator=st.sampled_from(["\n", "\r\n"]),
    trailing=st.booleans(),
    quote_all=st.booleans(),
    chunk_rows=st.integers(min_value=1, max_value=6),
    max_bytes=st.integers(min_value=1, max_value=80),
    block_bytes=st.integers(min_value=1, max_value=64),
)
@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
def test_chunks_hold_whole_records_whatever_the_quoted_fields_contain(
    tmp_path_factory, rows, terminator, trailing, quote_all, chunk_rows, max_bytes, block_bytes
):
    # Tiny read blocks put quotes and line ends on block edges, as 8 MiB blocks do in big files.
    content = csv_bytes(
        [["x", "y", "z"], *rows], terminator=terminator, trailing=trailing, quote_all=quote_all
    )
    path = tmp_path_factory.mktemp("plan") / "data.csv"
    path.write_bytes(content)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(planning, "BLOCK_BYTES", block_bytes)
        result = plan(path, chunk_rows=chunk_rows, max_bytes=max_bytes)

    assert_whole_records(content, result, read_header(path).data_offset)
    assert result.planned_rows == len(rows)
    assert not any(
        record_rule.has_stray_quotes(content[c.byte_start : c.byte_end]) for c in result.chunks
    ), "well-formed: COPY as it is"
    for chunk in result.chunks:
        assert chunk.planned_rows <= chunk_rows
        last_record_start = chunk.byte_start + len(
            csv_bytes(
                records(content[chunk.byte_start : chunk.byte_end])[:-1],
                terminator=terminator,
                quote_all=quote_all,
            )
        )
        # A chunk closes at the first record end that reaches max_bytes, never later.
        assert last_record_start - chunk.byte_start < max_bytes


@given(
    rows=st.lists(st.lists(FIELD, min_size=3, max_size=3), min_size=1, max_size=25),
    terminator=st.sampled_from(["\n", "\r\n"]),
    trailing=st.booleans(),
    parts=st.integers(min_value=2, max_value=5),
)
@settings(max_examples=300, deadline=None, database=None)
def test_parts_of_a_chunk_are_whole_records_of_about_equal_size(rows, terminator, trailing, parts):
    data = csv_bytes(rows, terminator=terminator, trailing=trailing)
    cuts = record_rule.split_records(data, parts)

    assert len(cuts) < parts
    assert cuts == sorted(set(cuts)) and all(0 < cut < len(data) for cut in cuts)
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert [r for piece in pieces for r in records(piece)] == records(data)
    ends, _ = record_rule.record_ends(data)
    for k, cut in enumerate(cuts, start=1):
        assert cut in ends, "a cut is a record end"
        # ... the first one at or after its share of the bytes
        target = len(data) * k // parts
        assert not [end for end in ends if max(target, cuts[k - 2] if k > 1 else 0) < end < cut]


def test_chunk_limits_falling_inside_a_quoted_multiline_field_do_not_split_it(tmp_path):
    field = 'one, "two"\nthree\n"four",\n'
    content = csv_bytes([["id", "note"], ["1", field], ["2", field], ["3", "plain"]])
    path = tmp_path / "notes.csv"
    path.write_bytes(content)
    data_offset = read_header(path).data_offset
    for max_bytes in range(1, len(content)):
        result = plan(path, max_bytes=max_bytes)
        assert_whole_records(content, result, data_offset)
        assert [r[1] for r in records(content[data_offset:])] == [field, field, "plain"]


def test_planned_rows_match_the_csv_module_and_first_lines_count_physical_lines(tmp_path):
    content = b'a,b\n1,"x\ny"\n2,z\n3,"p\n\nq"\n4,w\n'
    path = tmp_path / "lines.csv"
    path.write_bytes(content)
    result = plan(path, chunk_rows=1)
    assert [c.planned_rows for c in result.chunks] == [1, 1, 1, 1]
    assert [c.first_line for c in result.chunks] == [2, 4, 5, 8]
    assert result.planned_rows == len(records(content)) - 1


def test_file_without_trailing_newline_counts_its_last_record(tmp_path):
    path = tmp_path / "open_end.csv"
    path.write_bytes(b'a,b\n1,2\n3,"last\nrecord"')
    result = plan(path, chunk_rows=1)
    assert [c.planned_rows for c in result.chunks] == [1, 1]
    assert result.chunks[-1].byte_end == path.stat().st_size
    assert result.chunks[-1].first_line == 3


def test_crlf_file_cuts_after_each_record_terminator(tmp_path):
    content = b'a,b\r\n1,"x\r\ny"\r\n2,z\r\n'
    path = tmp_path / "crlf.csv"
    path.write_bytes(content)
    result = plan(path, chunk_rows=1)
    assert [(c.byte_start, c.byte_end) for c in result.chunks] == [(5, 15), (15, 20)]
    assert [c.first_line for c in result.chunks] == [2, 4]
    assert records(content[15:20]) == [["2", "z"]]


def test_file_with_bom_plans_from_after_the_header(tmp_path):
    content = b"\xef\xbb\xbfa,b\n1,2\n"
    path = tmp_path / "bom.csv"
    path.write_bytes(content)
    result = plan(path)
    assert (result.chunks[0].byte_start, result.chunks[0].byte_end) == (7, len(content))
    assert result.planned_rows == 1


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b'a,b\n1,"never closed\n2,3\n', 2),
        (b'a,b\n1,2\n3,4\n5,"x\ny"\n6,"open\n7,8\n', 6),
        (b'a,b\n1,2\n3,"no end', 3),
    ],
)
@pytest.mark.parametrize("block_bytes", [3, planning.BLOCK_BYTES])
def test_unterminated_quote_is_bad_input_naming_the_line_it_opens_on(
    tmp_path, monkeypatch, content, line, block_bytes
):
    monkeypatch.setattr(planning, "BLOCK_BYTES", block_bytes)
    path = tmp_path / "open_quote.csv"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match="never closed") as raised:
        plan(path)
    assert raised.value.line == line


@pytest.mark.parametrize("field", [b"37'36\"N 121'2\"W", b'a""b', b'5\'10""', b'"ab"c'])
def test_quote_inside_an_unquoted_field_flags_only_its_chunk(tmp_path, field):
    # PostgreSQL would drop such quotes: a flagged chunk goes through the parser, which keeps them.
    content = b'id,where\n1,"plain, ""quoted"""\n2,' + field + b'\n3,"",""""\n'
    path = tmp_path / "coordinates.csv"
    path.write_bytes(content)
    result = plan(path, chunk_rows=1)
    flags = [
        record_rule.has_stray_quotes(content[c.byte_start : c.byte_end]) for c in result.chunks
    ]
    assert flags == [False, True, False]
    # Judged in place, as a loader's part is: the same answer for each range of the whole file.
    ranges = [(c.byte_start, c.byte_end) for c in result.chunks]
    assert [record_rule.has_stray_quotes(content, ",", a, b) for a, b in ranges] == flags


def test_content_hash_is_the_whole_files_hash_whatever_the_chunking(tmp_path, monkeypatch):
    content = csv_bytes([["id", "text"], *([str(i), f"row {i}\nline"] for i in range(200))])
    path = tmp_path / "hashed.csv"
    path.write_bytes(content)
    expected = hashlib.blake2b(content, digest_size=20).hexdigest()
    hashes = {plan(path, chunk_rows=rows).content_hash for rows in (1, 7, 1000)}
    monkeypatch.setattr(planning, "BLOCK_BYTES", 5)
    hashes.add(plan(path, chunk_rows=3).content_hash)
    assert hashes == {expected}

    copy = tmp_path / "elsewhere.csv"
    copy.write_bytes(content)
    assert plan(copy).content_hash == expected
    copy.write_bytes(content.replace(b"row 199", b"row 198"))
    assert plan(copy).content_hash != expected
