"""Benchmark `granula ingest FILE` against a bare `psql \\copy` of the same file.

For each size, the file is generated once (scripts/generate_csv.py), then the two loaders run in
alternation, `--reps` times each:

  granula  `granula ingest FILE` as a subprocess (start-up included) into a fresh database whose
           control tables `granula migrate` made beforehand (untimed, as at installation), with
           an ephemeral Dagster instance (DAGSTER_HOME unset) and a fresh DATA_DIR;
  copy     `psql -c "\\copy t FROM FILE (FORMAT csv, HEADER)"` into a freshly created table with
           the data columns and types of the table Granula created (no lineage columns).

The table reports the median of the repetitions, or the best with `--statistic best` (the JSON
keeps every sample). The best is the steadier figure on a shared machine: other work only ever
adds time. Each run's load average is kept in the JSON, to tell a quiet machine from a busy one. Row
counts are checked: `COPY n` from psql, and `loaded_rows` plus `count(*)` for Granula. Peak RSS is
the Granula process's `ru_maxrss` (os.wait4); psutil also samples the process tree every 100 ms.

    python scripts/bench.py                       # 1k, 100k, 1M, 5M x 3 cols; 2M x 10 cols
    python scripts/bench.py --quick
    python scripts/bench.py --sizes 1M,20M,2Mx10 --reps 5 --chart
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "scripts" / "generate_csv.py"
DEFAULT_SIZES = "1k,100k,1M,5M,2Mx10"
QUICK_SIZES = "1k,100k,200kx10"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SAMPLE_SECONDS = 0.1
SIZE_SPEC = re.compile(r"^(\d+(?:\.\d+)?)([km]?)(?:x(\d+))?$", re.IGNORECASE)
MULTIPLIERS = {"": 1, "k": 1_000, "m": 1_000_000}
LINEAGE_PREFIX = "_granula_"


@dataclass(frozen=True)
class Size:
    rows: int
    columns: int

    @property
    def label(self) -> str:
        return f"{self.rows}x{self.columns}"


def parse_sizes(text: str) -> list[Size]:
    """`1k,100k,1M,2Mx10`: rows with an optional k/M suffix, then `xN` for N columns (default 3)."""
    sizes = []
    for item in text.split(","):
        match = SIZE_SPEC.match(item.strip())
        if not match:
            raise argparse.ArgumentTypeError(f"bad size {item!r}; write e.g. 100k, 1M or 2Mx10")
        rows = int(float(match.group(1)) * MULTIPLIERS[match.group(2).lower()])
        sizes.append(Size(rows, int(match.group(3) or 3)))
    return sizes


def generate(size: Size, folder: Path, seed: int) -> Path:
    """The benchmark file for `size`, generated unless an identical one is already there."""
    path = folder / f"bench_{size.rows}x{size.columns}_s{seed}.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                str(GENERATOR),
                "-n",
                str(size.rows),
                "--columns",
                str(size.columns),
                "--seed",
                str(seed),
                "-o",
                str(path),
            ],
            check=True,
        )
    return path


def database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def fresh_database(admin_url: str, prefix: str = "granula_bench") -> Iterator[str]:
    """A new, empty database for one run, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass
class ProcessRun:
    seconds: float
    returncode: int
    max_rss_mb: float
    sampled_tree_rss_mb: float
    stdout: str
    stderr: str


def run_measured(command: list[str], env: dict[str, str], timeout: float) -> ProcessRun:
    """Run `command`, timing it to its exit and sampling its memory every SAMPLE_SECONDS.

    A thread waits for the exit, so the time is exact whatever the sampling interval; the
    sampling itself (about 1 ms of CPU a sample) is kept rare enough not to slow the run.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        ended: dict[str, Any] = {}

        def wait() -> None:
            _, ended["status"], ended["usage"] = os.wait4(process.pid, 0)
            ended["seconds"] = time.perf_counter() - started

        waiter = threading.Thread(target=wait)
        waiter.start()
        peak_tree = 0
        watched = psutil.Process(process.pid)
        while waiter.is_alive():
            peak_tree = max(peak_tree, _tree_rss(watched))
            if time.perf_counter() - started > timeout:
                process.kill()
            waiter.join(SAMPLE_SECONDS)
        process.returncode = os.waitstatus_to_exitcode(ended["status"])
        out.seek(0)
        err.seek(0)
        return ProcessRun(
            seconds=ended["seconds"],
            returncode=process.returncode,
            max_rss_mb=ended["usage"].ru_maxrss / 1024,  # kilobytes on Linux
            sampled_tree_rss_mb=peak_tree / 2**20,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        for member in [process, *process.children(recursive=True)]:
            total += member.memory_info().rss
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        pass
    return total


def granula_command(env: dict[str, str] | None = None) -> list[str]:
    """`granula` from this venv (the console script), or the module if it is not installed or
    another checkout is benchmarked (`--source`, put first on PYTHONPATH)."""
    script = Path(sys.executable).parent / "granula"
    if script.exists() and not (env or {}).get("PYTHONPATH"):
        return [str(script)]
    return [sys.executable, "-m", "granula_pipeline.cli"]


@dataclass
class GranulaRun:
    seconds: float
    job_seconds: float
    loaded_rows: int
    counted_rows: int
    chunks: int
    status: str
    max_rss_mb: float
    sampled_tree_rss_mb: float
    column_types: list[tuple[str, str]] = field(default_factory=list)
    chunk_seconds: list[float] = field(default_factory=list)


CHUNK_LOG = re.compile(r"chunk (\d+) \(lines \d+\+\): loaded, (\d+) rows.*? via (\w+) in ([\d.]+)s")


def run_granula(
    path: Path,
    admin_url: str,
    *,
    extra_env: dict[str, str] | None = None,
    timeout: float = 600,
    instance: str = "memory",
) -> GranulaRun:
    """`granula ingest path` into a fresh database; the summary, checked against the table.

    `instance`: "memory" (DAGSTER_HOME unset: an ephemeral instance) or "postgres" (a
    DAGSTER_HOME with the repository's dagster.yaml, Dagster's storage in the same database, as
    under `granula up`)."""
    with (
        fresh_database(admin_url) as url,
        tempfile.TemporaryDirectory() as data_dir,
        tempfile.TemporaryDirectory() as home,
    ):
        env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
        env.update(
            DATABASE_URL=url,
            DATA_DIR=data_dir,
            MAX_UPLOAD_MB=str(max(500, path.stat().st_size // 2**20 + 1)),
            **(extra_env or {}),
        )
        # Installing Granula's control tables is done once per database, not per file: untimed.
        subprocess.run([*granula_command(env), "migrate"], env=env, check=True, capture_output=True)
        if instance == "postgres":  # Dagster's tables too, made by a first start: untimed
            shutil.copyfile(REPO / "dagster.yaml", Path(home) / "dagster.yaml")
            env.update(
                DAGSTER_HOME=home,
                DAGSTER_PG_URL=url.replace("postgresql://", "postgresql+psycopg2://", 1),
            )
            env.setdefault("MAX_CONCURRENCY", "2")
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from dagster import DagsterInstance as I; I.get().dispose()",
                ],
                env=env,
                check=True,
                capture_output=True,
            )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # as for COPY: earlier runs' dirty pages are not its cost
        run = run_measured([*granula_command(env), "ingest", str(path)], env, timeout)
        lines = run.stdout.strip().splitlines()
        try:
            summary = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError) as exc:
            raise RuntimeError(
                f"granula ingest printed no JSON summary (exit {run.returncode}):\n"
                f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
            ) from exc
        if summary.get("status") != "completed":
            raise RuntimeError(f"granula ingest did not complete: {summary}\n{run.stderr[-4000:]}")
        schema, table = summary["table"].split(".")
        with psycopg.connect(url) as conn:
            counted = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            ).fetchone()[0]
            types = conn.execute(
                """
                SELECT column_name, data_type FROM information_schema.columns
                WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position
                """,
                (schema, table),
            ).fetchall()
    return GranulaRun(
        seconds=run.seconds,
        job_seconds=float(summary.get("duration_seconds") or 0.0),
        loaded_rows=int(summary["loaded_rows"]),
        counted_rows=int(counted),
        chunks=int(summary.get("total_chunks") or 0),
        status=summary["status"],
        max_rss_mb=run.max_rss_mb,
        sampled_tree_rss_mb=run.sampled_tree_rss_mb,
        column_types=[(n, t) for n, t in types if not n.startswith(LINEAGE_PREFIX)],
        chunk_seconds=[float(m.group(4)) for m in CHUNK_LOG.finditer(run.stderr)],
    )


@dataclass
class CopyRun:
    seconds: float
    rows: int


def run_copy(path: Path, url: str, column_types: list[tuple[str, str]]) -> CopyRun:
    """`psql \\copy` of the whole file into a freshly created table of the given columns."""
    table = sql.Identifier("bench_copy")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(
            sql.SQL("CREATE TABLE {} ({})").format(
                table,
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in column_types
                ),
            )
        )
        conn.execute("CHECKPOINT")  # the previous run's dirty pages are not this run's cost
    names = ", ".join(f'"{n}"' for n, _ in column_types)
    command = f"\\copy bench_copy ({names}) FROM '{path}' WITH (FORMAT csv, HEADER true)"
    started = time.perf_counter()
    done = subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", command],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    match = re.search(r"COPY (\d+)", done.stdout)
    if done.returncode or not match:
        raise RuntimeError(f"psql \\copy failed: {done.stdout}{done.stderr}")
    return CopyRun(seconds, int(match.group(1)))


@dataclass
class SizeResult:
    rows: int
    columns: int
    megabytes: float
    chunks: int
    column_types: list[tuple[str, str]]
    copy_seconds: list[float]
    granula_seconds: list[float]
    granula_job_seconds: list[float]
    granula_max_rss_mb: list[float]
    granula_tree_rss_mb: list[float]
    rows_ok: bool
    statistic: str = "median"
    load_averages: list[float] = field(default_factory=list)
    # With --instance both: each rep's `granula ingest` again on a PostgreSQL Dagster instance,
    # right after the in-memory one (paired samples, for a ratio on a busy machine).
    granula_pg_seconds: list[float] = field(default_factory=list)
    granula_pg_job_seconds: list[float] = field(default_factory=list)

    def instance_ratio(self) -> tuple[float, float] | None:
        """Median over reps of (PostgreSQL instance s / in-memory s): whole command, and job."""
        if not self.granula_pg_seconds:
            return None
        pairs = zip(self.granula_pg_seconds, self.granula_seconds, strict=True)
        jobs = zip(self.granula_pg_job_seconds, self.granula_job_seconds, strict=True)
        return (
            statistics.median(pg / memory for pg, memory in pairs),
            statistics.median(pg / memory for pg, memory in jobs if memory),
        )

    def summary(self) -> dict[str, Any]:
        pick = min if self.statistic == "best" else statistics.median
        copy_s = pick(self.copy_seconds)
        granula_s = pick(self.granula_seconds)
        job_s = pick(self.granula_job_seconds)
        return {
            "copy_s": copy_s,
            "copy_rows_per_s": self.rows / copy_s,
            "granula_s": granula_s,
            "granula_rows_per_s": self.rows / granula_s,
            "granula_mb_per_s": self.megabytes / granula_s,
            "granula_job_s": job_s,
            "startup_and_teardown_s": granula_s - job_s,
            "ratio_to_copy": copy_s / granula_s,  # Granula's rows/s over COPY's
            "peak_rss_mb": max(self.granula_max_rss_mb),
            "best_copy_s": min(self.copy_seconds),
            "best_granula_s": min(self.granula_seconds),
        }


def bench_size(
    size: Size,
    path: Path,
    admin_url: str,
    copy_url: str,
    reps: int,
    extra_env: dict[str, str],
    statistic: str,
    instance: str = "memory",
) -> SizeResult:
    result = SizeResult(
        rows=size.rows,
        columns=size.columns,
        megabytes=path.stat().st_size / 1e6,
        chunks=0,
        column_types=[],
        copy_seconds=[],
        granula_seconds=[],
        granula_job_seconds=[],
        granula_max_rss_mb=[],
        granula_tree_rss_mb=[],
        rows_ok=True,
        statistic=statistic,
    )
    for rep in range(reps):
        result.load_averages.append(os.getloadavg()[0])
        # Granula goes first so that COPY gets the exact column types Granula chose.
        granula = run_granula(
            path,
            admin_url,
            extra_env=extra_env,
            instance="memory" if instance == "both" else instance,
        )
        if instance == "both":
            on_pg = run_granula(path, admin_url, extra_env=extra_env, instance="postgres")
            result.granula_pg_seconds.append(on_pg.seconds)
            result.granula_pg_job_seconds.append(on_pg.job_seconds)
            print(
                f"  {size.label} rep {rep + 1}/{reps}: granula on a PostgreSQL instance "
                f"{on_pg.seconds:6.2f}s (job {on_pg.job_seconds:5.2f}s)",
                flush=True,
            )
        result.column_types = result.column_types or granula.column_types
        result.chunks = granula.chunks
        result.granula_seconds.append(granula.seconds)
        result.granula_job_seconds.append(granula.job_seconds)
        result.granula_max_rss_mb.append(granula.max_rss_mb)
        result.granula_tree_rss_mb.append(granula.sampled_tree_rss_mb)
        copy = run_copy(path, copy_url, result.column_types)
        result.copy_seconds.append(copy.seconds)
        ok = granula.loaded_rows == granula.counted_rows == copy.rows == size.rows
        result.rows_ok &= ok
        print(
            f"  {size.label} rep {rep + 1}/{reps}: granula {granula.seconds:6.2f}s "
            f"(job {granula.job_seconds:5.2f}s, {granula.chunks} chunks, "
            f"rss {granula.max_rss_mb:5.0f} MB)  copy {copy.seconds:6.2f}s  "
            f"rows {'ok' if ok else 'MISMATCH'}",
            flush=True,
        )
        if not ok:
            print(
                f"  row counts: file {size.rows}, granula loaded {granula.loaded_rows}, "
                f"table {granula.counted_rows}, copy {copy.rows}",
                flush=True,
            )
    return result


TABLE_HEADER = (
    f"{'rows':>10} {'cols':>4} {'MB':>7} {'chunks':>6} {'COPY s':>7} {'COPY rows/s':>12} "
    f"{'Granula s':>9} {'job s':>6} {'Granula rows/s':>14} {'MB/s':>6} {'Granula/COPY':>12} "
    f"{'peak RSS MB':>11} {'rows':>4}"
)


def table_line(result: SizeResult) -> str:
    s = result.summary()
    return (
        f"{result.rows:>10,} {result.columns:>4} {result.megabytes:>7.1f} {result.chunks:>6} "
        f"{s['copy_s']:>7.2f} {s['copy_rows_per_s']:>12,.0f} {s['granula_s']:>9.2f} "
        f"{s['granula_job_s']:>6.2f} {s['granula_rows_per_s']:>14,.0f} "
        f"{s['granula_mb_per_s']:>6.1f} {s['ratio_to_copy']:>12.2f} {s['peak_rss_mb']:>11.0f} "
        f"{'ok' if result.rows_ok else 'BAD':>4}"
    )


def draw_chart(results: list[SizeResult], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for columns in sorted({r.columns for r in results}):
        group = sorted((r for r in results if r.columns == columns), key=lambda r: r.megabytes)
        mb = [r.megabytes for r in group]
        marker = "o" if columns == 3 else "s"
        axes.plot(
            mb,
            [r.summary()["granula_rows_per_s"] for r in group],
            marker=marker,
            color="tab:blue",
            label=f"granula ingest ({columns} cols)",
        )
        axes.plot(
            mb,
            [r.summary()["copy_rows_per_s"] for r in group],
            marker=marker,
            color="tab:orange",
            linestyle="--",
            label=f"psql \\copy ({columns} cols)",
        )
        for r in group:
            axes.annotate(
                f"{r.rows:,}",
                (r.megabytes, r.summary()["granula_rows_per_s"]),
                textcoords="offset points",
                xytext=(4, -12),
                fontsize=7,
            )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("file size (MB)")
    axes.set_ylabel(f"rows per second ({results[0].statistic}, start-up included)")
    axes.set_title("Granula vs PostgreSQL COPY")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out, dpi=120)


def git_revision() -> str:
    """The commit measured, with `+dirty` when the working tree differs from it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{head}+dirty" if dirty else head


def server_version(admin_url: str) -> str:
    with psycopg.connect(admin_url) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=None,
        help=f"comma-separated sizes, e.g. 1M or 2Mx10 (default {DEFAULT_SIZES})",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"a small run: {QUICK_SIZES}, 2 repetitions"
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions per size (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("GRANULA_BENCH_ADMIN_URL", DEFAULT_ADMIN_URL),
        help="a database on the server where the benchmark databases are made",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO / "bench-out",
        help="generated files go in WORKDIR/data (default bench-out/)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="results file (default WORKDIR/bench.json)"
    )
    parser.add_argument(
        "--chart",
        nargs="?",
        type=Path,
        const=REPO / "docs" / "bench.png",
        default=None,
        help="write a PNG chart (default path docs/bench.png)",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="CHUNK_SIZE for granula (default: Granula's own)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="benchmark the Granula of another checkout (a git worktree of an older revision)",
    )
    parser.add_argument(
        "--statistic",
        choices=["median", "best"],
        default="median",
        help="which repetition the table shows (default median)",
    )
    parser.add_argument(
        "--instance",
        choices=["memory", "postgres", "both"],
        default="memory",
        help="granula ingest's Dagster instance: in memory (no DAGSTER_HOME, the default), "
        "PostgreSQL storage in the loaded database (as beside `granula up`), or both in turn "
        "each rep (prints their ratio)",
    )
    parser.add_argument(
        "--delete-files",
        action="store_true",
        help="delete each generated file after its size is measured",
    )
    args = parser.parse_args(argv)
    sizes = args.sizes or parse_sizes(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    reps = args.reps or (2 if args.quick else 3)
    if shutil.which("psql") is None:
        parser.error("psql is not on PATH")
    extra_env = {"CHUNK_SIZE": str(args.chunk_size)} if args.chunk_size else {}
    if args.source:
        extra_env["PYTHONPATH"] = str(args.source.resolve())
    command = " ".join([*granula_command(extra_env), "ingest", "FILE"])
    chunk_size = args.chunk_size or os.environ.get("CHUNK_SIZE") or "default"
    print(
        f"granula: {command}  (CHUNK_SIZE={chunk_size})"
        f"\nPostgreSQL {server_version(args.admin_url)}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {args.statistic} of {reps} reps, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results: list[SizeResult] = []
    failed: list[str] = []
    with fresh_database(args.admin_url, "granula_bench_copy") as copy_url:
        for size in sizes:
            path = generate(size, args.workdir / "data", args.seed)
            try:
                results.append(
                    bench_size(
                        size,
                        path,
                        args.admin_url,
                        copy_url,
                        reps,
                        extra_env,
                        args.statistic,
                        args.instance,
                    )
                )
            except RuntimeError as exc:
                failed.append(size.label)
                print(f"  {size.label}: FAILED, skipped: {exc}", flush=True)
            if args.delete_files:
                path.unlink()
    print()
    print(TABLE_HEADER)
    for result in results:
        print(table_line(result))
    for result in results:
        ratio = result.instance_ratio()
        if ratio is not None:
            print(
                f"{result.rows:>10,} x{result.columns}: PostgreSQL instance / in memory, median "
                f"of paired reps: {ratio[0]:.3f} (whole command), {ratio[1]:.3f} (job)"
            )
    out = args.json or args.workdir / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "granula_command": command,
                "chunk_size": args.chunk_size,
                "reps": reps,
                "statistic": args.statistic,
                "postgres": server_version(args.admin_url),
                "cpus": os.cpu_count(),
                "git": git_revision(),
                "failed_sizes": failed,
                "results": [{**asdict(r), **r.summary()} for r in results],
            },
            indent=2,
        )
    )
    print(f"\nresults: {out}")
    if args.chart:
        draw_chart(results, args.chart)
        print(f"chart: {args.chart}")
    return 0 if all(r.rows_ok for r in results) and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
