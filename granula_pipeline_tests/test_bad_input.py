"""Whatever a user drops, the file ends with a status and an error a person understands."""

from __future__ import annotations

from pathlib import Path

import pytest

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.runs import ingest

pytestmark = pytest.mark.slow


def load(instance, granula, path: Path, **kwargs):
    record, result = ingest(instance, granula, path, **kwargs)
    return record, result


def drop(settings, name: str, content: bytes) -> Path:
    path = settings.inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def failed_copy(settings, record) -> Path:
    [moved] = list(settings.failed_dir.rglob(f"{record.file_id}-*"))
    return moved


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("blank.csv", b"\n\n  \n", "the file is empty"),
        ("binary.csv", b"PK\x03\x04" + bytes(range(256)) * 10, "ZIP archive"),
        ("noise.csv", bytes(range(32)) * 400, "looks binary"),
        ("utf16.csv", "id,name\n1,é\n".encode("utf-16"), "UTF-16"),
        (
            "unclosed.csv",
            b'id,name\n1,"a\n2,b\n',
            "never closed; check for a stray double quote (line 2)",
        ),
        ("sheet.xlsx", b"id\n1\n", "content type"),
    ],
)
def test_refused_file_fails_with_a_clear_error_and_moves_to_failed(
    instance, granula, settings, name, content, expected
):
    path = drop(settings, name, content)
    record, result = load(instance, granula, path)

    assert not result.success
    assert record.status == "failed"
    assert expected in record.error_message
    assert "Traceback" not in record.error_message
    assert not path.exists()
    assert failed_copy(settings, record).read_bytes() == content


def test_file_over_the_size_limit_is_refused(instance, settings, database_url, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_MB", "1")
    granula = GranulaResource(database_url=database_url, data_dir=str(settings.data_dir))
    path = drop(settings, "huge.csv", b"id\n" + b"1234567\n" * 140_000)
    record, _ = load(instance, granula, path)
    assert record.status == "failed"
    assert "over MAX_UPLOAD_MB=1" in record.error_message


def test_symlink_out_of_the_inbox_is_refused(instance, granula, settings, tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_text("id\n1\n")
    link = settings.inbox / "link.csv"
    link.symlink_to(outside)
    record, _ = load(instance, granula, link)
    assert record.status == "failed"
    assert "outside the inbox" in record.error_message
    assert str(tmp_path) not in record.error_message, "user-facing errors name no server path"
    assert outside.read_text() == "id\n1\n", "the link's target is never touched"


def test_bad_rows_are_quarantined_and_the_rest_loads(instance, settings, database_url, db):
    # 34 chunks of 10 rows: types are inferred from the start of every other chunk, so a value
    # in chunk 1 is not in the sample, and `x12` there cannot be typed as the bigint `id` is.
    granula = GranulaResource(
        database_url=database_url, data_dir=str(settings.data_dir), chunk_size=10
    )
    good = [f"{i},name {i},{i}.5" for i in range(340)]
    good[12] = "x12,wrong,1"  # line 14, chunk 1
    good[3] = "3,too,many,fields"  # line 5
    good[200] = "200,short"  # line 202: padded with a NULL value
    path = drop(settings, "mixed.csv", ("id,name,value\n" + "\n".join(good) + "\n").encode())
    record, _ = load(instance, granula, path)

    assert record.status == "completed_with_errors"
    assert (record.total_rows, record.loaded_rows, record.rejected_rows) == (340, 338, 2)
    assert "2 rows were rejected" in record.error_message
    rejected = db.execute(
        "SELECT line_number, raw_text, reason FROM granula.rejected_rows WHERE file_id = %s "
        "ORDER BY line_number",
        (record.file_id,),
    ).fetchall()
    assert [r[0] for r in rejected] == [5, 14]
    assert (
        rejected[0][1] == "3,too,many,fields" and "4 fields but the header has 3" in rejected[0][2]
    )
    assert rejected[1][1] == "x12,wrong,1"
    assert "'x12' in column 'id' is not a valid bigint" in rejected[1][2]
    padded = db.execute(
        "SELECT name, value FROM datasets.mixed WHERE id = 200 AND _granula_file_id = %s",
        (record.file_id,),
    ).fetchone()
    assert padded == ("short", None)
    loaded = db.execute(
        "SELECT count(*), count(DISTINCT id) FROM datasets.mixed WHERE _granula_file_id = %s",
        (record.file_id,),
    ).fetchone()
    assert loaded == (338, 338)
    assert (settings.processed_dir / f"{record.file_id}-mixed.csv").exists()


def test_too_many_rejects_fail_the_file(instance, settings, database_url, monkeypatch, db):
    monkeypatch.setenv("MAX_REJECTED_PERCENT", "5")
    granula = GranulaResource(database_url=database_url, data_dir=str(settings.data_dir))
    rows = [f"{i},{i}" for i in range(90)] + [f"{i},{i},extra" for i in range(10)]
    path = drop(settings, "mostly_bad.csv", ("a,b\n" + "\n".join(rows) + "\n").encode())
    record, _ = load(instance, granula, path)
    assert record.status == "failed"
    assert "10 of 100 rows were rejected, over MAX_REJECTED_PERCENT=5" in record.error_message


def test_a_threshold_failure_names_the_first_rejected_lines_and_why(instance, granula, settings):
    path = drop(settings, "ragged.csv", b"a,b\n1,1\n2,2,extra\n3,3\n")
    record, _ = load(instance, granula, path)
    assert record.status == "failed"
    assert record.error_message == (
        "1 of 3 rows were rejected, over MAX_REJECTED_PERCENT=10: line 3: this record has 3 "
        "fields but the header has 2; see granula.rejected_rows for each line and why"
    )


def test_a_file_the_database_refuses_ends_in_failed_not_in_the_inbox(
    instance, granula, settings, db
):
    # Not bad input as such: PostgreSQL cannot take the rows (here a view has the table's name).
    db.execute("CREATE SCHEMA IF NOT EXISTS datasets")
    db.execute("CREATE VIEW datasets.blocked AS SELECT 1::bigint AS id")
    path = drop(settings, "blocked.csv", b"id\n1\n2\n")
    record, result = load(instance, granula, path)
    assert not result.success
    assert record.status == "failed"
    assert record.error_message.startswith("PostgreSQL: ")
    assert "Traceback" not in record.error_message
    assert not path.exists(), "a failed file must leave the inbox, so a new copy can come in"
    assert failed_copy(settings, record).read_bytes() == b"id\n1\n2\n"


def test_a_symlink_loop_fails_saying_so_and_leaves_the_inbox(instance, granula, settings):
    first, second = settings.inbox / "loop_a.csv", settings.inbox / "loop_b.csv"
    first.symlink_to(second)
    second.symlink_to(first)
    record, result = load(instance, granula, first)
    assert not result.success and record.status == "failed"
    assert "symbolic link that leads nowhere" in record.error_message
    assert not first.is_symlink(), "the link leaves the inbox, so the name is free again"
    assert failed_copy(settings, record).is_symlink()


def test_latin1_file_is_detected_and_loaded_exactly(instance, granula, settings, db):
    path = drop(settings, "latin.csv", "id,city\n1,Montréal\n2,Zürich\n".encode("cp1252"))
    record, _ = load(instance, granula, path)
    assert record.status == "completed"
    assert db.execute("SELECT city FROM datasets.latin ORDER BY id").fetchall() == [
        ("Montréal",),
        ("Zürich",),
    ]


def test_invalid_utf8_and_nul_rows_are_rejected_with_their_line(instance, granula, settings, db):
    # A UTF-8 file (it has "é" written as UTF-8) with one stray byte and one NUL byte.
    rows = b"".join(b"%d,caf\xc3\xa9 %d\n" % (i, i) for i in range(10, 70000))
    content = b"id,name\n" + rows + b"1,ok\n2,caf\xc3\n3,nul\x00here\n4,fine\n"
    path = drop(settings, "dirty.csv", content)
    record, _ = load(instance, granula, path)

    assert record.status == "completed_with_errors"
    reasons = dict(
        db.execute(
            "SELECT line_number, reason FROM granula.rejected_rows WHERE file_id = %s",
            (record.file_id,),
        ).fetchall()
    )
    assert len(reasons) == 2
    assert any("byte 0xc3" in r and "'name'" in r for r in reasons.values())
    assert any("NUL byte" in r for r in reasons.values())
    assert record.loaded_rows == 69990 + 2


def test_blank_duplicate_and_odd_header_names_get_usable_columns(instance, granula, settings, db):
    header = ',name,Name,"Prix ""HT"" (€)",name,Année de début\n'
    path = drop(settings, "odd names & spaces é.csv", (header + "1,a,b,2.5,c,2020\n").encode())
    record, _ = load(instance, granula, path)
    assert record.status == "completed"
    columns = [
        r[0]
        for r in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'datasets' "
            "AND table_name = %s ORDER BY ordinal_position",
            (record.table_name.split(".")[1],),
        ).fetchall()
    ]
    assert columns[:6] == ["column_1", "name", "name_2", "prix_ht", "name_3", "année_de_début"]


def test_five_megabyte_field_loads_whole(instance, granula, settings, db):
    big = "x" * (5 * 1024 * 1024)
    path = drop(settings, "wide.csv", f'id,blob\n1,"{big}"\n2,small\n'.encode())
    record, _ = load(instance, granula, path)
    assert record.status == "completed"
    assert db.execute("SELECT length(blob) FROM datasets.wide ORDER BY id").fetchall() == [
        (len(big),),
        (5,),
    ]


def test_same_content_twice_is_recognised_and_not_loaded_again(instance, granula, settings, db):
    first = drop(settings, "daily.csv", b"id\n1\n2\n")
    original, _ = load(instance, granula, first)
    again = drop(settings, "daily-copy.csv", b"id\n1\n2\n")
    duplicate, _ = load(instance, granula, again, dataset="daily")

    assert duplicate.status == "completed" and duplicate.duplicate_of == original.file_id
    assert "same content as file" in duplicate.error_message
    assert db.execute("SELECT count(*) FROM datasets.daily").fetchone() == (2,)

    forced = drop(settings, "daily-forced.csv", b"id\n1\n2\n")
    reloaded, _ = load(instance, granula, forced, dataset="daily", force=True)
    assert reloaded.duplicate_of is None and reloaded.loaded_rows == 2
    assert db.execute("SELECT count(*) FROM datasets.daily").fetchone() == (4,)


def test_a_bad_file_does_not_stop_the_next_one(instance, granula, settings, db):
    bad, _ = load(instance, granula, drop(settings, "bad.csv", b""))
    good, _ = load(instance, granula, drop(settings, "good.csv", b"id\n1\n"))
    assert bad.status == "failed" and good.status == "completed"
