"""Measure what one chunk op costs beyond its own work, by loading one file with many CHUNK_SIZEs.

Method. The same file (default 1M rows x 3 columns) is loaded with each CHUNK_SIZE, so the rows
and bytes are fixed and only the number of chunk ops n changes. Each load runs in a fresh Python
process (like `granula ingest`: ephemeral Dagster instance, in-process executor, fresh database)
that calls `granula_pipeline.defs.launch.ingest()` with the engine's entry points wrapped in
timers (prepare_load, load_chunk, settle_file) and Granula's own code in the op bodies too
(GranulaResource.settings, _observe_if_ended: the "op shells"). Then:

  library s   time inside the engine and the op shells (planning, every chunk's load, settling)
  dagster s   the `ingest()` call minus the library time: Dagster's own work for the run
  wall s      the whole process, start-up included; `wall - planning` takes out prepare_load,
              whose schema inference depends on how many chunks are sampled, not on n linearly

and least-squares lines against n give the marginal cost of one more chunk op:

  dagster s = a + b * n      b is Dagster's cost per chunk op (step events, dynamic output
                             pickling, input loading, the collect in record_outcome)
  library s = c + d * n      d is the engine's fixed cost per chunk (connections, savepoint,
                             thread pool, control-table updates), apart from the rows
  wall s    = e + f * n      f = b + d, the cost a user sees

Each figure is the smallest of the `--reps` loads by default (`--statistic best`): on a shared
machine other work only ever adds time, so the minimum is the steadiest estimate.

The event log of each run also gives per-step figures (step duration minus the chunk's engine
time, op shell included, and the gap between steps) as a cross-check of b.

    python scripts/bench_chunk_overhead.py
    python scripts/bench_chunk_overhead.py --rows 1M --chunk-sizes 10k,50k,100k,250k,1M --reps 2
    python scripts/bench_chunk_overhead.py --instance postgres   # Dagster storage in PostgreSQL
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench import (
    DEFAULT_ADMIN_URL,
    REPO,
    Size,
    fresh_database,
    generate,
    parse_sizes,
    run_measured,
)

DEFAULT_CHUNK_SIZES = "10k,50k,100k,250k,1M"
SHELL_FUNCTIONS = ["_observe_if_ended"]
INSTANCE_YAML = """\
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
telemetry:
  enabled: false
"""


def child(path: Path) -> int:
    """One load, in this process; print what it cost as JSON."""
    started = time.perf_counter()
    from dagster import DagsterEventType, DagsterInstance

    from granula_pipeline.defs import ingest as ingest_defs
    from granula_pipeline.defs.resources import GranulaResource
    from granula_pipeline.runs import ingest

    spent = {"prepare": 0.0, "chunks": 0.0, "settle": 0.0, "shell": 0.0}

    def timed(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - begin

        return wrapper

    ingest_defs.prepare_load = timed("prepare", ingest_defs.prepare_load)
    ingest_defs.load_chunk_rows = timed("chunks", ingest_defs.load_chunk_rows)
    ingest_defs.settle_file = timed("settle", ingest_defs.settle_file)
    # Granula's own code in the op bodies (settings, status checks) is not Dagster's cost either.
    GranulaResource.settings = timed("shell", GranulaResource.settings)
    for name in SHELL_FUNCTIONS:
        if hasattr(ingest_defs, name):
            setattr(ingest_defs, name, timed("shell", getattr(ingest_defs, name)))
    imported = time.perf_counter()
    instance_cm = (
        DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    )
    with instance_cm as instance:
        ready = time.perf_counter()
        record, result = ingest(instance, GranulaResource(), path)
        ingested = time.perf_counter()
        events = [
            (e.timestamp, e.step_key, e.dagster_event.event_type)
            for e in instance.all_logs(result.run_id)
            if e.dagster_event is not None
        ]
    starts = {k: t for t, k, kind in events if kind == DagsterEventType.STEP_START}
    ends = {k: t for t, k, kind in events if kind == DagsterEventType.STEP_SUCCESS}
    steps = sorted((starts[k], ends[k], k) for k in starts if k in ends)
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(steps)]
    load_steps = [(s, e, k) for s, e, k in steps if ".load_chunk[" in k]
    outputs = result.output_for_node("file_status.load_chunk")
    chunk_seconds = {f"file_status.load_chunk[{key}]": r.seconds for key, r in outputs.items()}
    in_step_overhead = [e - s - chunk_seconds.get(k, 0.0) for s, e, k in load_steps]
    library = sum(spent.values())
    print(
        json.dumps(
            {
                "status": record.status,
                "chunks": record.total_chunks,
                "loaded_rows": record.loaded_rows,
                "import_s": imported - started,
                "instance_s": ready - imported,
                "ingest_s": ingested - ready,
                "library_s": library,
                "dagster_s": (ingested - ready) - library,
                **{f"{name}_s": seconds for name, seconds in spent.items()},
                "plan_step_s": next((e - s for s, e, k in steps if "plan_chunks" in k), None),
                "median_in_step_overhead_s": statistics.median(in_step_overhead or [0.0]),
                "median_gap_s": statistics.median(gaps or [0.0]),
            }
        ),
        flush=True,
    )
    return 0 if record.status == "completed" else 1


def measure(
    path: Path, chunk_size: int, admin_url: str, instance: str, timeout: float
) -> dict[str, Any]:
    with fresh_database(admin_url, "granula_overhead") as url, tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
        env.update(
            DATABASE_URL=url,
            DATA_DIR=tmp,
            CHUNK_SIZE=str(chunk_size),
            MAX_UPLOAD_MB=str(max(500, path.stat().st_size // 2**20 + 1)),
        )
        if instance == "postgres":
            home = Path(tmp) / "dagster_home"
            home.mkdir()
            (home / "dagster.yaml").write_text(INSTANCE_YAML)
            env.update(
                DAGSTER_HOME=str(home),
                DAGSTER_PG_URL=url.replace("postgresql://", "postgresql+psycopg2://", 1),
            )
        run = run_measured(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(path)], env, timeout
        )
    try:
        report = json.loads(run.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        raise RuntimeError(
            f"the load printed no report:\n{run.stdout}\n{run.stderr[-4000:]}"
        ) from exc
    if report["status"] != "completed":
        raise RuntimeError(f"the load did not complete: {report}\n{run.stderr[-4000:]}")
    planning = report["prepare_s"]
    return {
        **report,
        "chunk_size": chunk_size,
        "wall_s": run.seconds,
        "wall_less_planning_s": run.seconds - planning,
        "peak_rss_mb": run.max_rss_mb,
    }


def fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares y = intercept + slope * x, and R²."""
    slope, intercept = np.polyfit(xs, ys, 1)
    predicted = intercept + slope * np.asarray(xs)
    residual = float(np.sum((np.asarray(ys) - predicted) ** 2))
    total = float(np.sum((np.asarray(ys) - np.mean(ys)) ** 2)) or 1.0
    return float(intercept), float(slope), 1.0 - residual / total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", default="1M", help="rows of the file, e.g. 1M (3 columns)")
    parser.add_argument("--chunk-sizes", default=DEFAULT_CHUNK_SIZES)
    parser.add_argument("--reps", type=int, default=2, help="loads per CHUNK_SIZE (default 2)")
    parser.add_argument(
        "--instance",
        choices=["ephemeral", "postgres"],
        default="ephemeral",
        help="Dagster storage: in memory (as `granula ingest`), or PostgreSQL",
    )
    parser.add_argument(
        "--admin-url", default=os.environ.get("GRANULA_BENCH_ADMIN_URL", DEFAULT_ADMIN_URL)
    )
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-out")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default WORKDIR/chunk_overhead_<instance>.json)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--statistic",
        choices=["best", "median"],
        default="best",
        help="per figure, the smallest of the loads (default: other work only adds time) or the "
        "median",
    )
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)
    size = parse_sizes(args.rows)[0]
    chunk_sizes = [s.rows for s in parse_sizes(args.chunk_sizes)]
    path = generate(Size(size.rows, size.columns), args.workdir / "data", 0)
    print(
        f"{path.name}: {size.rows:,} rows, {path.stat().st_size / 1e6:.1f} MB, "
        f"Dagster instance {args.instance}, {args.statistic} of {args.reps}, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    rows = []
    pick = min if args.statistic == "best" else statistics.median
    for chunk_size in chunk_sizes:
        samples = [
            measure(path, chunk_size, args.admin_url, args.instance, args.timeout)
            for _ in range(args.reps)
        ]
        runs.extend(samples)
        row = {
            key: pick([s[key] for s in samples])
            for key in samples[0]
            if isinstance(samples[0][key], (int, float))
        }
        rows.append(row)
        print(
            f"  CHUNK_SIZE={chunk_size:>9,}: {int(row['chunks']):>4} chunks, "
            f"wall {row['wall_s']:6.2f}s, dagster {row['dagster_s']:5.2f}s, "
            f"chunks {row['chunks_s']:5.2f}s",
            flush=True,
        )
    print()
    print(
        f"{'CHUNK_SIZE':>10} {'chunks':>6} {'wall s':>7} {'ingest s':>8} {'prepare s':>9} "
        f"{'chunks s':>8} {'shell s':>7} {'dagster s':>9} {'in-step ms':>10} {'gap ms':>6} "
        f"{'RSS MB':>6}"
    )
    for row in rows:
        print(
            f"{int(row['chunk_size']):>10,} {int(row['chunks']):>6} {row['wall_s']:>7.2f} "
            f"{row['ingest_s']:>8.2f} {row['prepare_s']:>9.2f} {row['chunks_s']:>8.2f} "
            f"{row['shell_s']:>7.2f} {row['dagster_s']:>9.2f} "
            f"{row['median_in_step_overhead_s'] * 1e3:>10.1f} "
            f"{row['median_gap_s'] * 1e3:>6.1f} {row['peak_rss_mb']:>6.0f}"
        )
    n = [row["chunks"] for row in rows]
    fits = {
        name: fit(n, [row[key] for row in rows])
        for name, key in [
            ("dagster", "dagster_s"),
            ("library chunks", "chunks_s"),
            ("op shells", "shell_s"),
            ("wall", "wall_s"),
            ("wall - planning", "wall_less_planning_s"),
        ]
    }
    print("\nlinear fits against the number of chunk ops n:")
    for name, (intercept, slope, r2) in fits.items():
        print(f"  {name:<15} = {intercept:6.2f}s + {slope * 1e3:6.1f} ms x n   (R² {r2:.3f})")
    out = args.json or args.workdir / f"chunk_overhead_{args.instance}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "file": str(path),
                "rows": size.rows,
                "instance": args.instance,
                "statistic": args.statistic,
                "rows_by_chunk_size": rows,
                "runs": runs,
                "fits": {
                    name: {"intercept_s": i, "per_chunk_s": s, "r2": r2}
                    for name, (i, s, r2) in fits.items()
                },
            },
            indent=2,
        )
    )
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
