"""What a file can make Granula spend is bounded: the bytes it expands to, its longest record."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from granula_pipeline.settings import Settings
from granula_pipeline_tests.loads import chunks, load

REPO = Path(__file__).resolve().parents[1]
GRANULA = str(Path(sys.executable).parent / "granula")
MiB = 1024 * 1024


def gzip_bomb(path: Path, header: bytes, line: bytes, mib: int) -> Path:
    """A .csv.gz of `mib` MiB of `line` after `header`, a few KiB per MiB: one gzip member
    repeated (readers see one stream), so it is written at once whatever it expands to."""
    member = gzip.compress(line * (8 * MiB // len(line)), compresslevel=9)
    with path.open("wb") as out:
        out.write(gzip.compress(header))
        for _ in range(mib // 8):
            out.write(member)
    return path


def granula_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        **extra,
    }
    env.pop("DAGSTER_HOME", None)
    return env


def granula_ingest(env: dict[str, str], path: Path, *args: str, timeout: float) -> dict:
    """`granula ingest PATH`, as a user runs it; its JSON summary. Fails past `timeout`."""
    try:
        done = subprocess.run(
            [GRANULA, "ingest", str(path), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"granula ingest {path.name} still running after {timeout}s")
    return json.loads(done.stdout.strip().splitlines()[-1])


# Decompressed bytes


@pytest.mark.parametrize(
    ("limits", "line", "mib", "expected"),
    [
        # The case, the ratio aside: a file under MAX_UPLOAD_MB=1 expanding to 500 MiB
        # passes the cap (10 x MAX_UPLOAD_MB) long before its end.
        (
            {"MAX_UPLOAD_MB": "1", "MAX_GZIP_RATIO": "10000"},
            b"1\n",
            504,
            "over MAX_DECOMPRESSED_MB=10",
        ),
        # 2 GiB of newlines from 2 MiB: far under the default cap of 5000 MiB, but 1000-fold.
        ({}, b"\n", 2048, "over MAX_GZIP_RATIO=100"),
    ],
    ids=["decompressed-cap", "ratio"],
)
def test_gzip_that_expands_past_a_limit_fails_while_planning(
    settings, tmp_path, limits, line, mib, expected
):
    path = gzip_bomb(tmp_path / "bomb.csv.gz", b"id\n", line, mib)
    assert path.stat().st_size < mib * MiB // 500

    started = time.monotonic()
    summary = granula_ingest(granula_env(settings, **limits), path, timeout=30)
    elapsed = time.monotonic() - started

    assert summary["status"] == "failed"
    assert summary["error"].startswith("the gzip file expands to more than")
    assert expected in summary["error"]
    assert not summary["total_chunks"], "refused before any chunk was planned"
    assert elapsed < 15, f"{elapsed:.1f}s: planning should stop at the limit"


# The longest record


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("long.csv", b"id,text\n1,a\n2," + b"x" * (3 * MiB) + b"\n3,c\n", 3),
        (
            "long.ndjson",
            b'{"id": 1}\n{"id": 2, "text": "' + b"x" * (3 * MiB) + b'"}\n{"id": 3}\n',
            2,
        ),
    ],
    ids=["csv", "ndjson"],
)
def test_record_over_max_record_mb_fails_before_any_chunk_reads_it(
    memory_instance, settings, db, name, content, line
):
    path = settings.inbox / name
    path.write_bytes(content)
    record = load(memory_instance, settings.model_copy(update={"max_record_mb": 1}), path)

    assert record.status == "failed"
    assert "over MAX_RECORD_MB=1" in (record.error_message or "")
    assert (record.error_message or "").endswith(f"(line {line})")
    assert chunks(db, record) == [], "no chunk was planned, so none read the record"


def test_quoted_field_running_past_max_record_mb_points_at_a_stray_quote(memory_instance, settings):
    path = settings.inbox / "stray.csv"
    path.write_bytes(b'id,text\n1,"a\n' + b"2,b\n" * (MiB // 2) + b"3,c\n")
    record = load(memory_instance, settings.model_copy(update={"max_record_mb": 1}), path)

    assert record.status == "failed"
    assert "over MAX_RECORD_MB=1" in (record.error_message or "")
    assert "stray double quote" in (record.error_message or "")
    assert (record.error_message or "").endswith("(line 2)")
