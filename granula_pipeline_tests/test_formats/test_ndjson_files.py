"""NDJSON / JSON Lines: one object per line, typed, in chunks of lines; bad lines set aside."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from dagster import DagsterInstance

from granula_pipeline_tests.loads import chunks, column_types, failed_copy, load, rejected

pytestmark = pytest.mark.slow

ROWS = 45


@pytest.fixture(scope="module")
def instance(memory_instance: DagsterInstance) -> DagsterInstance:
    return memory_instance


def event(i: int) -> dict:
    record = {
        "id": i,
        "Name": ["plain", 'say "hi"', "two\nlines", "naïve ✓", "back\\slash"][i % 5],
        "score": i * 0.5 if i % 2 else i,  # integers and floats: double precision
        "active": i % 3 == 0,
        "created": (datetime(2026, 1, 1) + timedelta(hours=i)).isoformat(),
        "tags": [f"t{i}", i],
        "meta": {"source": "api", "depth": {"n": i}},
    }
    if i % 4 == 0:
        record["note"] = None
    elif i % 4 == 1:
        record["note"] = f"note {i}"  # and absent otherwise: NULL
    return record


def ndjson(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


@pytest.mark.parametrize("name", ["events.ndjson", "events_lines.jsonl"])
def test_ndjson_file_loads_every_object_typed_in_several_chunks(instance, settings, db, name):
    path = settings.inbox / name
    path.write_bytes(ndjson([event(i) for i in range(ROWS)]))

    record = load(instance, settings, path, chunk_size=10)

    assert record.status == "completed", record.error_message
    assert record.format == "ndjson"
    assert (record.total_rows, record.loaded_rows, record.rejected_rows) == (ROWS, ROWS, 0)
    assert column_types(db, record) == {
        "id": "bigint",
        "name": "text",
        "score": "double precision",
        "active": "boolean",
        "created": "timestamp without time zone",
        "tags": "jsonb",
        "meta": "jsonb",
        "note": "text",
        "_granula_file_id": "bigint",
        "_granula_chunk_index": "integer",
    }
    loaded = db.execute(
        f"SELECT id, name, score, active, created, tags, meta, note, _granula_file_id, "
        f"_granula_chunk_index FROM {record.table_name} WHERE _granula_file_id = %s ORDER BY id",
        (record.file_id,),
    ).fetchall()
    expected = [
        (
            e["id"],
            e["Name"],
            float(e["score"]),
            e["active"],
            datetime.fromisoformat(e["created"]),
            e["tags"],
            e["meta"],
            e.get("note"),
            record.file_id,
            e["id"] // 10,
        )
        for e in map(event, range(ROWS))
    ]
    assert loaded == expected
    assert [c[1:] for c in chunks(db, record)] == [("loaded", n, n) for n in (10, 10, 10, 10, 5)]
    assert (settings.processed_dir / f"{record.file_id}-{name}").exists()


def test_bad_lines_are_rejected_with_their_line_number_and_the_rest_loads(instance, settings, db):
    # 34 chunks of 10 lines: types come from every other chunk, so the string id (chunk 1) and
    # the unknown key (chunk 3) are not in the sample, as in a large file.
    lines = [json.dumps({"id": i, "name": f"n{i}"}) for i in range(340)]
    lines[3] = '{"id": 3, "name": "unterminated}'  # line 4
    lines[12] = '["an", "array"]'  # line 13
    lines[17] = json.dumps({"id": "seventeen", "name": "n17"})  # line 18
    lines[35] = json.dumps({"id": 35, "name": "n35", "surprise": 1})  # line 36
    lines[100] = "   "  # a blank line is skipped, as in CSV
    path = settings.inbox / "dirty.ndjson"
    path.write_text("\n".join(lines) + "\n")

    record = load(instance, settings, path, chunk_size=10)

    assert record.status == "completed_with_errors"
    assert (record.loaded_rows, record.rejected_rows) == (335, 4)
    reasons = rejected(db, record)
    assert [line for line, _ in reasons] == [4, 13, 18, 36]
    assert reasons[0][1].startswith("not valid JSON at column 19: Unterminated string")
    assert reasons[1][1] == "a JSON list where each line must hold an object"
    assert reasons[2][1] == "'seventeen' in column 'id' is not a valid bigint"
    assert reasons[3][1].startswith("key 'surprise' is not one of the file's columns")
    assert db.execute(
        f"SELECT count(DISTINCT id) FROM {record.table_name} WHERE _granula_file_id = %s",
        (record.file_id,),
    ).fetchone() == (335,)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "garbage.ndjson",
            b"this is not json\n<html>\n",
            "no line of the file's sample holds a JSON",
        ),
        ("binary.jsonl", bytes(range(32)) * 100, "looks binary"),
        ("empty.ndjson", b"", "the file is empty"),
    ],
)
def test_corrupt_ndjson_file_fails_clearly_and_moves_to_failed(
    instance, settings, db, name, content, expected
):
    path = settings.inbox / name
    path.write_bytes(content)

    record = load(instance, settings, path)

    assert record.status == "failed"
    assert expected in record.error_message
    assert failed_copy(settings, record).read_bytes() == content
    table = name.split(".")[0]
    assert db.execute("SELECT to_regclass(%s)", (f"datasets.{table}",)).fetchone() == (None,)
