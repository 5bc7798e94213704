"""Placing files in the inbox: atomic, never overwriting, under names the sensor will load."""

from __future__ import annotations

import pytest

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.inbox.submission import copy_into_inbox, inbox_folder, upload_name

CSV_TYPES = frozenset({"text/csv", "application/csv"})


def test_copy_into_inbox_uses_the_priority_and_dataset_folders_and_leaves_no_staging(tmp_path):
    source = tmp_path / "orders.csv"
    source.write_bytes(b"id\n1\n")
    inbox = tmp_path / "inbox"

    placed = copy_into_inbox(source, inbox, priority=3, dataset="sales")

    assert placed == inbox / "priority-3" / "sales" / "orders.csv"
    assert placed.read_bytes() == b"id\n1\n"
    assert [p.name for p in placed.parent.iterdir()] == ["orders.csv"]


def test_copy_into_inbox_never_overwrites_a_waiting_file(tmp_path):
    source = tmp_path / "orders.csv"
    source.write_bytes(b"id\n2\n")
    waiting = tmp_path / "inbox" / "orders.csv"
    waiting.parent.mkdir()
    waiting.write_bytes(b"id\n1\n")

    with pytest.raises(FileExistsError):
        copy_into_inbox(source, tmp_path / "inbox")

    assert waiting.read_bytes() == b"id\n1\n"
    assert [p.name for p in waiting.parent.iterdir()] == ["orders.csv"]


def test_priority_zero_is_the_inbox_itself_and_eleven_is_refused(tmp_path):
    assert inbox_folder(tmp_path, priority=0) == tmp_path
    assert inbox_folder(tmp_path, priority=10) == tmp_path / "priority-10"
    with pytest.raises(ValueError):
        inbox_folder(tmp_path, priority=11)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("orders.csv", "orders.csv"),
        ("C:\\Users\\me\\orders.csv", "orders.csv"),
        ("../../etc/orders.csv", "orders.csv"),
        ("export", "export.csv"),
    ],
)
def test_upload_names_keep_only_the_file_name(sent, kept):
    assert upload_name(sent, CSV_TYPES) == kept


@pytest.mark.parametrize(
    "refused", ["", "..", ".env.csv", "orders.csv.part", "~lock.csv", "a\nb.csv", "report.xlsx"]
)
def test_upload_names_the_sensor_or_loader_would_not_take_are_refused(refused):
    with pytest.raises(BadInputError):
        upload_name(refused, CSV_TYPES)
