"""gzip'd CSV and TSV: planned and read as streams of decompressed bytes, never whole in memory."""

from __future__ import annotations

import csv
import gzip
import io
import tracemalloc

import pytest
from dagster import DagsterInstance

from granula_pipeline.lib.formats.source import read_chunk_bytes
from granula_pipeline.lib.model import ChunkPlan
from granula_pipeline_tests.factories import order_row
from granula_pipeline_tests.loads import chunks, failed_copy, load

pytestmark = pytest.mark.slow

ROWS = 40


@pytest.fixture(scope="module")
def instance(memory_instance: DagsterInstance) -> DagsterInstance:
    return memory_instance


def orders(delimiter: str) -> bytes:
    """`id,name,value`; every third name holds quotes and a newline."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["id", "name", "value"])
    writer.writerows(order_row(i) for i in range(ROWS))
    return buffer.getvalue().encode()


@pytest.mark.parametrize(("name", "delimiter"), [("orders.csv.gz", ","), ("orders.tsv.gz", "\t")])
def test_gzip_file_loads_every_row_in_several_chunks(instance, settings, db, name, delimiter):
    plain = orders(delimiter)
    path = settings.inbox / name
    path.write_bytes(gzip.compress(plain))

    record = load(instance, settings, path, chunk_size=7)

    assert record.status == "completed", record.error_message
    assert (record.format, record.compression, record.delimiter) == ("csv", "gzip", delimiter)
    assert (record.total_rows, record.loaded_rows, record.rejected_rows) == (ROWS, ROWS, 0)
    loaded = db.execute(
        f"SELECT id, name, value, _granula_file_id, _granula_chunk_index FROM {record.table_name} "
        "WHERE _granula_file_id = %s ORDER BY id",
        (record.file_id,),
    ).fetchall()
    assert loaded == [(*order_row(i), record.file_id, i // 7) for i in range(ROWS)]
    assert [c[2] for c in chunks(db, record)] == [7, 7, 7, 7, 7, 5]
    last_byte = db.execute(
        "SELECT max(byte_end) FROM granula.chunks WHERE file_id = %s", (record.file_id,)
    ).fetchone()
    assert last_byte == (len(plain),), "byte ranges are offsets in the decompressed stream"
    assert (settings.processed_dir / f"{record.file_id}-{name}").exists()


def test_bad_rows_of_a_gzip_file_are_rejected_with_their_line(instance, settings, db):
    lines = ["id,name"] + [f"{i},n{i}" for i in range(30)] + ["99,too,many"]
    path = settings.inbox / "ragged.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))

    record = load(instance, settings, path, chunk_size=10)

    assert record.status == "completed_with_errors"
    assert (record.loaded_rows, record.rejected_rows) == (30, 1)
    assert db.execute(
        "SELECT line_number FROM granula.rejected_rows WHERE file_id = %s", (record.file_id,)
    ).fetchall() == [(32,)]


def _damaged(damage: str) -> bytes:
    packed = gzip.compress(orders(","))
    if damage == "truncated":
        return packed[: len(packed) - 20]
    if damage == "bad_crc":
        crc = bytes(b ^ 0xFF for b in packed[-8:-4])
        return packed[:-8] + crc + packed[-4:]
    return orders(",")  # not gzip at all


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("truncated", "the gzip file is truncated"),
        ("bad_crc", "the gzip file is corrupt: CRC check failed"),
        ("not_gzip", "the gzip file is corrupt: Not a gzipped file"),
    ],
)
def test_corrupt_gzip_file_fails_clearly_and_loads_nothing(
    instance, settings, db, damage, expected
):
    content = _damaged(damage)
    path = settings.inbox / f"broken_{damage}.csv.gz"
    path.write_bytes(content)

    record = load(instance, settings, path, chunk_size=7)

    assert record.status == "failed"
    assert record.error_message.startswith(expected), record.error_message
    assert failed_copy(settings, record).read_bytes() == content
    table = f"datasets.broken_{damage}"
    assert db.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,)


def test_gzip_other_than_csv_is_refused_with_what_to_do(instance, settings):
    path = settings.inbox / "events.ndjson.gz"
    path.write_bytes(gzip.compress(b'{"id": 1}\n'))

    record = load(instance, settings, path)

    assert record.status == "failed"
    assert "only CSV and TSV may be gzip'd" in record.error_message


def test_a_chunk_of_a_gzip_file_is_read_without_decompressing_the_file_into_memory(tmp_path):
    line = b"12345,some text that compresses well,6.5\n"
    plain = line * (24 * 1024 * 1024 // len(line))
    path = tmp_path / "large.csv.gz"
    path.write_bytes(gzip.compress(plain, compresslevel=1))
    start = len(plain) - 1024 * 1024
    chunk = ChunkPlan(0, start, len(plain), 1, 0)

    tracemalloc.start()
    data = read_chunk_bytes(path, chunk, "gzip")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert data == plain[start:]
    assert peak < 4 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 1 MiB chunk"
