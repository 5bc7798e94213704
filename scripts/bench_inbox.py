"""Benchmark the path users take: files dropped into the inbox of a running stack.

Starts the real stack (`granula up`: the Dagster daemon, webserver and code location, with
Dagster's storage in PostgreSQL) on a fresh database, then, in the same run:

  single   one file of R rows dropped into an idle inbox, `--single` times, one after another:
           the latency from the drop (the file's rename into the inbox) to `completed`
  burst    N files of R rows dropped at once: files/min from the first drop to the last file
           completed, rows/s, and the p50/p95 latency from drop to `completed`
  large    one large file (`--large-rows`) alone, then the mix: the burst's N small files
           plus two large files at once; the large files' rows/s in each
  ingest   `granula ingest FILE` in a loop, on the first `--loop-files` small files
  copy     `psql \\copy` in a loop, one process per file, of the same N small files

Every file is checked loaded exactly once (rows counted in the table per file). Prints a table,
writes JSON and, with --chart, a PNG.

    .venv/bin/python scripts/bench_inbox.py                 # 200 x 1,000 rows, mix with 2 x 2M
    .venv/bin/python scripts/bench_inbox.py --files 50 --no-large --single 3   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (
    DEFAULT_ADMIN_URL,
    REPO,
    Size,
    fresh_database,
    generate,
    git_revision,
    granula_command,
)

DATASET = "bench"


@dataclass
class Phase:
    name: str
    files: int
    rows: int
    seconds: float
    latencies: list[float]
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def files_per_minute(self) -> float:
        return 60 * self.files / self.seconds if self.seconds else 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def summary(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "files_per_minute": round(self.files_per_minute, 1),
            "rows_per_second": round(self.rows_per_second),
            "p50_seconds": round(self.percentile(0.5), 2),
            "p95_seconds": round(self.percentile(0.95), 2),
        }


def write_small(folder: Path, index: int, rows: int) -> Path:
    """A small export: `id,name,value`, ids unique across files (so contents differ)."""
    path = folder / f"export_{index:05d}.csv"
    start = index * rows
    lines = ["id,name,value\n"]
    lines += [f"{i},name {i % 97},{(i % 1000) / 4}\n" for i in range(start, start + rows)]
    path.write_text("".join(lines))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stack:
    """`granula up` on `url` with its inbox in `data_dir`, run from a scratch folder so its
    `.granula/` is not the user's."""

    def __init__(self, url: str, data_dir: Path, scratch: Path, env: dict[str, str]) -> None:
        for name in ("workspace.yaml", "dagster.yaml"):
            shutil.copy(REPO / name, scratch / name)
        self.url, self.inbox = url, data_dir / "inbox"
        env = {**env, "DATABASE_URL": url, "DATA_DIR": str(data_dir)}
        subprocess.run([*granula_command(), "migrate"], env=env, check=True, capture_output=True)
        self.process = subprocess.Popen(
            [*granula_command(), "up", "--port", str(free_port())],
            cwd=scratch,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(scratch / "stack.log").open("w"),
            start_new_session=True,
        )

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def drop(files: list[Path], inbox: Path) -> dict[str, float]:
    """Move `files` into the inbox's dataset folder, each by an atomic rename; when each landed."""
    target = inbox / DATASET
    target.mkdir(parents=True, exist_ok=True)
    dropped = {}
    for path in files:
        staging = target / f".{path.name}.part"
        shutil.copy(path, staging)
    for path in files:
        (target / f".{path.name}.part").rename(target / path.name)
        dropped[path.name] = time.time()
    return dropped


def wait_completed(url: str, names: set[str], timeout: float) -> dict[str, tuple[float, int]]:
    """Wait until every file of `names` has ended; (finished_at, loaded_rows) of each."""
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT filename, status, extract(epoch FROM finished_at), loaded_rows "
                "FROM granula.files WHERE filename = ANY(%s) AND finished_at IS NOT NULL "
                "AND status IN ('completed', 'completed_with_errors', 'failed')",
                (sorted(names),),
            ).fetchall()
        ended = {name: (float(at), int(loaded)) for name, status, at, loaded in rows}
        bad = [name for name, status, _, _ in rows if status != "completed"]
        if bad:
            raise RuntimeError(f"not completed: {bad[:5]}")
        if len(ended) == len(names):
            return ended
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(names) - len(ended)} of {len(names)} files not loaded")
        time.sleep(0.2)


def through_inbox(
    name: str, stack: Stack, files: list[Path], rows_of: dict[str, int], timeout: float
) -> Phase:
    dropped = drop(files, stack.inbox)
    ended = wait_completed(stack.url, set(dropped), timeout)
    for file, (_, loaded) in ended.items():
        if loaded != rows_of[file]:
            raise RuntimeError(f"{file}: {loaded} rows loaded of {rows_of[file]}")
    first, last = min(dropped.values()), max(at for at, _ in ended.values())
    return Phase(
        name,
        len(files),
        sum(rows_of[f.name] for f in files),
        last - first,
        [ended[f][0] - dropped[f] for f in dropped],
        breakdown(stack.url, dropped),
    )


STAGES = (
    "drop -> registered by the sensor",
    "registered -> run created",
    "run created -> run started (queue, process start)",
    "run started -> file's load started",
    "file's load (planned, copied, settled)",
    "file finished -> run ended",
)


def breakdown(url: str, dropped: dict[str, float]) -> dict[str, float]:
    """Where a file's seconds went, from Dagster's storage and granula.files: medians."""
    deadline = time.monotonic() + 60
    while True:  # the runs end a moment after their files: checks, events
        rows = _stage_marks(url, dropped)
        if all(None not in marks for marks in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    spans: list[list[float]] = [[] for _ in STAGES]
    for name, *marks in rows:
        times = [dropped[name], *marks]
        for index in range(len(STAGES)):
            if times[index] is not None and times[index + 1] is not None:
                spans[index].append(float(times[index + 1]) - float(times[index]))
    return {
        stage: round(statistics.median(s), 2) for stage, s in zip(STAGES, spans, strict=True) if s
    }


def _stage_marks(url: str, dropped: dict[str, float]) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT f.filename, extract(epoch FROM f.created_at), "
            "extract(epoch FROM r.create_timestamp AT TIME ZONE 'UTC'), r.start_time, "
            "extract(epoch FROM f.started_at), extract(epoch FROM f.finished_at), r.end_time "
            "FROM granula.files f JOIN runs r ON r.run_id = f.run_id WHERE f.filename = ANY(%s)",
            (sorted(dropped),),
        ).fetchall()


def sensor_ticks(url: str) -> dict[str, float]:
    """How long the inbox sensor's ticks took (Dagster's tick records: start -> end)."""
    with psycopg.connect(url) as conn:
        spans = sorted(
            float(row[0])
            for row in conn.execute(
                "SELECT (tick_body::json ->> 'end_timestamp')::float "
                "- (tick_body::json ->> 'timestamp')::float FROM job_ticks "
                "WHERE tick_body::json ->> 'job_name' = 'inbox_sensor' "
                "AND tick_body::json ->> 'end_timestamp' IS NOT NULL"
            ).fetchall()
        )
    if not spans:
        return {"ticks": 0, "longest": 0.0, "p95": 0.0}
    return {"ticks": len(spans), "longest": spans[-1], "p95": spans[int(0.95 * (len(spans) - 1))]}


def check_exactly_once(url: str, rows_of: dict[str, int]) -> None:
    """Each file dropped is in the table once, with each of its rows once."""
    with psycopg.connect(url) as conn:
        counted = conn.execute(
            f"SELECT f.filename, count(t.*), count(DISTINCT t.id) FROM granula.files f "
            f"LEFT JOIN datasets.{DATASET} t ON t._granula_file_id = f.file_id "
            f"WHERE f.filename = ANY(%s) GROUP BY f.filename",
            (sorted(rows_of),),
        ).fetchall()
    found = {name: (int(total), int(distinct)) for name, total, distinct in counted}
    wrong = {
        name: found.get(name) for name, rows in rows_of.items() if found.get(name) != (rows, rows)
    }
    if wrong:
        raise RuntimeError(f"rows not loaded exactly once: {dict(list(wrong.items())[:5])}")


def ingest_loop(files: list[Path], admin_url: str, env: dict[str, str]) -> Phase:
    with fresh_database(admin_url) as url, tempfile.TemporaryDirectory() as data_dir:
        run_env = {k: v for k, v in env.items() if k != "DAGSTER_HOME"}
        run_env.update(DATABASE_URL=url, DATA_DIR=data_dir)
        subprocess.run(
            [*granula_command(), "migrate"], env=run_env, check=True, capture_output=True
        )
        started, latencies, rows = time.perf_counter(), [], 0
        for path in files:
            began = time.perf_counter()
            done = subprocess.run(
                [*granula_command(), "ingest", str(path), "--dataset", DATASET],
                env=run_env,
                capture_output=True,
                text=True,
            )
            summary = json.loads(done.stdout.strip().splitlines()[-1])
            if summary.get("status") != "completed":
                raise RuntimeError(f"granula ingest {path.name}: {summary}")
            rows += int(summary["loaded_rows"])
            latencies.append(time.perf_counter() - began)
        return Phase(
            "granula ingest loop", len(files), rows, time.perf_counter() - started, latencies
        )


def copy_loop(files: list[Path], admin_url: str) -> Phase:
    with fresh_database(admin_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE copied (id bigint, name text, value double precision)")
        started, latencies, rows = time.perf_counter(), [], 0
        for path in files:
            began = time.perf_counter()
            done = subprocess.run(
                [
                    "psql",
                    "-X",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    url,
                    "-c",
                    f"\\copy copied FROM '{path}' WITH (FORMAT csv, HEADER true)",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows += int(done.stdout.split()[-1])
            latencies.append(time.perf_counter() - began)
        return Phase("psql \\copy loop", len(files), rows, time.perf_counter() - started, latencies)


def line(phase: Phase) -> str:
    return (
        f"| {phase.name} | {phase.files} | {phase.rows:,} | {phase.seconds:.1f} | "
        f"{phase.files_per_minute:.0f} | {phase.rows_per_second:,.0f} | "
        f"{phase.percentile(0.5):.1f} | {phase.percentile(0.95):.1f} |"
    )


def draw_chart(phases: list[Phase], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [p for p in phases if p.name in ("burst", "granula ingest loop", "psql \\copy loop")]
    figure, (rate, latency) = plt.subplots(1, 2, figsize=(10, 3.8))
    rate.barh([p.name for p in shown], [p.files_per_minute for p in shown], color="#4f46e5")
    rate.set_xlabel("files per minute (higher is better)")
    for index, phase in enumerate(shown):
        rate.text(phase.files_per_minute, index, f" {phase.files_per_minute:.0f}", va="center")
    timed = [p for p in phases if p.name in ("single", "burst")]
    latency.bar(
        [f"{p.name}\np50" for p in timed] + [f"{p.name}\np95" for p in timed],
        [p.percentile(0.5) for p in timed] + [p.percentile(0.95) for p in timed],
        color="#059669",
    )
    latency.set_ylabel("seconds from drop to completed")
    figure.suptitle("Granula through the inbox, beside granula ingest and psql \\copy loops")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200, help="small files in the burst")
    parser.add_argument("--rows", type=int, default=1000, help="rows per small file")
    parser.add_argument("--single", type=int, default=5, help="single-file drops, one by one")
    parser.add_argument("--large-rows", type=int, default=2_000_000)
    parser.add_argument("--no-large", action="store_true", help="skip the large-file phases")
    parser.add_argument("--loop-files", type=int, default=20, help="files for the ingest loop")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-out")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--chart", nargs="?", const=REPO / "docs" / "bench_inbox.png", type=Path)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    if shutil.which("psql") is None:
        parser.error("psql is not on PATH")

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    source = Path(tempfile.mkdtemp(prefix="granula-bench-inbox-"))
    small = [write_small(source, i, args.rows) for i in range(args.files + args.single + 1)]
    warmup, singles, burst = small[0], small[1 : 1 + args.single], small[1 + args.single :]
    rows_of = {p.name: args.rows for p in small}
    large: list[Path] = []
    if not args.no_large:
        for seed in (1, 2, 3):
            made = generate(Size(args.large_rows, 3), args.workdir / "data", seed)
            large.append(shutil.copy(made, source / f"large_{seed}.csv"))
            rows_of[f"large_{seed}.csv"] = args.large_rows
    mix = [write_small(source, 100_000 + i, args.rows) for i in range(args.files)]
    rows_of.update({p.name: args.rows for p in mix})

    phases: list[Phase] = []
    with fresh_database(args.admin_url) as url, tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"
        stack = Stack(url, data_dir, Path(scratch), env)
        try:
            print("stack starting; warm-up file...", file=sys.stderr)
            through_inbox("warm-up", stack, [warmup], rows_of, args.timeout)
            time.sleep(3)
            single = Phase("single", 0, 0, 0.0, [])
            for path in singles:
                one = through_inbox("single", stack, [path], rows_of, args.timeout)
                single.files += 1
                single.rows += one.rows
                single.seconds += one.seconds
                single.latencies += one.latencies
                for stage, seconds in one.stages.items():
                    single.stages.setdefault(stage, 0.0)
                    single.stages[stage] += seconds / args.single
                time.sleep(2)
            phases.append(single)
            print(line(single), file=sys.stderr)
            phases.append(through_inbox("burst", stack, burst, rows_of, args.timeout))
            print(line(phases[-1]), file=sys.stderr)
            if large:
                time.sleep(3)
                through_inbox("large alone", stack, large[:1], rows_of, args.timeout)
                phases.append(_load_span("large alone (load)", url, large[:1], rows_of))
                print(line(phases[-1]), file=sys.stderr)
                time.sleep(3)
                mixed = through_inbox("mix", stack, mix + large[1:], rows_of, args.timeout)
                phases.append(mixed)
                phases.append(_load_span("large in the mix (load)", url, large[1:], rows_of))
                print(line(mixed), file=sys.stderr)
            ticks = sensor_ticks(url)
            dropped = [warmup, *singles, *burst, *((mix + large) if large else [])]
            check_exactly_once(url, {p.name: rows_of[p.name] for p in dropped})
        finally:
            stack.stop()
    phases.append(ingest_loop(burst[: args.loop_files], args.admin_url, env))
    phases.append(copy_loop(burst, args.admin_url))

    print(f"\nrevision {git_revision()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print("| phase | files | rows | seconds | files/min | rows/s | p50 s | p95 s |")
    print("|---|---|---|---|---|---|---|---|")
    for phase in phases:
        print(line(phase))
    print(
        f"\ninbox sensor: {ticks['ticks']} ticks, longest {ticks['longest']:.2f}s, "
        f"p95 {ticks['p95']:.2f}s (Dagster's sensor gRPC deadline: 60 s)"
    )
    for phase in phases:
        if phase.stages:
            print(f"\n{phase.name}: where a file's seconds went (median per file)")
            for stage, seconds in phase.stages.items():
                print(f"  {stage:<52} {seconds:6.2f}")
    out = args.json or args.workdir / "bench_inbox.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"phases": [p.summary() for p in phases], "ticks": ticks}, indent=2))
    if args.chart:
        draw_chart(phases, args.chart)
    shutil.rmtree(source, ignore_errors=True)
    return 0


def _load_span(name: str, url: str, files: list[Path], rows_of: dict[str, int]) -> Phase:
    """`files` by their own load time, from the first start to the last finish."""
    with psycopg.connect(url) as conn:
        spans = conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM granula.files "
            "WHERE filename = ANY(%s)",
            ([p.name for p in files],),
        ).fetchone()
    return Phase(name, len(files), sum(rows_of[p.name] for p in files), float(spans[0]), [])


if __name__ == "__main__":
    sys.exit(main())
