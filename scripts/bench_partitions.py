"""Benchmark how `file_status`'s dynamic partitions (one per file) weigh on the sensor and the UI.

For each partition count N (`--counts`, default 0, 10k, 50k), on a fresh database migrated by
`granula migrate` and a DAGSTER_HOME with the repository's dagster.yaml (Dagster's storage in
that database, as `granula up` and compose have it):

  seed     N keys added with `add_dynamic_partitions` in slices, then runless materializations
           (the metadata `file_status` records) for a sample of them (1% or 500, whichever is
           fewer; `--materialized 1` for all), timed per event
  keys     what a tick costs Dagster's storage: `add_dynamic_partitions` of 50 new keys,
           `get_dynamic_partitions` (all keys, as `granula prune` reads them),
           `has_dynamic_partition` (the daemon asks it per key it is told to add),
           `delete_dynamic_partition` (what `granula prune` does per file); median of `--reps`
  tick     the inbox sensor (`build_inbox_sensor(1)`, through `evaluate_tick`) with 50 new files
           in the inbox, then its partition request handled as the daemon does
           (`has_dynamic_partition` per key, `add_dynamic_partitions` of the new ones); median
  ui       the real `dagster-webserver` (the repository's workspace.yaml): the asset page
           `/assets/file_status?view=partitions` in headless Chromium (Playwright) until a
           partition key is listed, and until the network is idle, plus the GraphQL query of the
           asset's partition keys and health posted directly; median of `--page-reps` after one
           untimed warm-up load

Prints a table and writes JSON (bench-out/bench_partitions.json).

    .venv/bin/python scripts/bench_partitions.py
    .venv/bin/python scripts/bench_partitions.py --counts 0,1000 --reps 3 --page-reps 1
    .venv/bin/python scripts/bench_partitions.py --counts 10k,50k --materialized 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dagster import AssetMaterialization, DagsterInstance, build_sensor_context

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import DEFAULT_ADMIN_URL, REPO, fresh_database, git_revision, granula_command

from granula_pipeline.definitions import build_definitions
from granula_pipeline.defs.partitions import INBOX_PARTITIONS_NAME
from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.defs.sensors import build_inbox_sensor
from granula_pipeline.settings import Settings

ASSET = "file_status"
SLICE = 1_000
TICK_FILES = 50
SAMPLE_MAX = 500
STARTUP_SECONDS = 120
PAGE_TIMEOUT_MS = 120_000
CHROMIUM = Path(os.environ.get("GRANULA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
# A seeded key as the list shows it (the UI truncates long keys in the middle).
SEEDED_KEY = re.compile(r"^bench/file-")
# What the partitions view asks of the asset: its keys and each one's health.
PARTITIONS_QUERY = """
query BenchAssetPartitions {
  assetNodeOrError(assetKey: {path: ["file_status"]}) {
    ... on AssetNode {
      partitionKeysByDimension { name partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses {
          materializedPartitions failedPartitions unmaterializedPartitions materializingPartitions
        }
      }
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    }
  }
}
"""


@dataclass
class CountResult:
    partitions: int
    load_average: float = 0.0
    seed_seconds: float = 0.0
    sampled: int = 0
    materialization_seconds: list[float] = field(default_factory=list)
    add_50_seconds: list[float] = field(default_factory=list)
    get_all_seconds: list[float] = field(default_factory=list)
    has_one_seconds: list[float] = field(default_factory=list)
    delete_one_seconds: list[float] = field(default_factory=list)
    tick_seconds: list[float] = field(default_factory=list)
    tick_sensor_seconds: list[float] = field(default_factory=list)
    tick_runs: list[int] = field(default_factory=list)
    page_seconds: list[float] = field(default_factory=list)
    page_idle_seconds: list[float] = field(default_factory=list)
    page_warmup_seconds: float = 0.0
    page_queries: dict[str, float] = field(default_factory=dict)
    graphql_seconds: list[float] = field(default_factory=list)
    ui_error: str = ""

    def summary(self) -> dict[str, float | None]:
        return {
            "add_50_median": median(self.add_50_seconds),
            "get_all_median": median(self.get_all_seconds),
            "has_one_median": median(self.has_one_seconds),
            "delete_one_median": median(self.delete_one_seconds),
            "tick_median": median(self.tick_seconds),
            "tick_sensor_median": median(self.tick_sensor_seconds),
            "page_median": median(self.page_seconds),
            "page_idle_median": median(self.page_idle_seconds),
            "graphql_median": median(self.graphql_seconds),
            "materialization_per_event_median": median(self.materialization_seconds),
        }


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def seeded_key(index: int) -> str:
    return f"bench/file-{index:06d}.csv@{index * 2654435761 % 2**32:08x}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(database_url: str, home: Path, data_dir: Path) -> dict[str, str]:
    settings = Settings(database_url=database_url, data_dir=data_dir)
    return {
        "DATABASE_URL": database_url,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": settings.dagster_storage_url,
        "DATA_DIR": str(data_dir),
        "MAX_CONCURRENCY": "2",
        "SETTLE_SECONDS": "0",
    }


def dagster_home(folder: Path) -> Path:
    """A DAGSTER_HOME with the repository's dagster.yaml: storage in PostgreSQL."""
    home = folder / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def seed(instance: DagsterInstance, result: CountResult, materialized: float | None) -> None:
    """N keys in slices, then materializations of a sample (every k-th key), each timed: 1% or
    500, whichever is fewer, or the fraction `materialized` of the keys."""
    started = time.perf_counter()
    for start in range(0, result.partitions, SLICE):
        keys = [seeded_key(i) for i in range(start, min(start + SLICE, result.partitions))]
        instance.add_dynamic_partitions(INBOX_PARTITIONS_NAME, keys)
    result.seed_seconds = time.perf_counter() - started
    if materialized is None:
        result.sampled = min(SAMPLE_MAX, result.partitions // 100)
    else:
        result.sampled = round(materialized * result.partitions)
    step = result.partitions // result.sampled if result.sampled else 0
    for n in range(result.sampled):
        key = seeded_key(n * step)
        event = AssetMaterialization(
            asset_key=ASSET,
            partition=key,
            metadata={
                "status": "completed",
                "dataset": "bench",
                "table": "datasets.bench",
                "loaded_rows": 1000,
                "total_chunks": 1,
                "dagster/row_count": 1000,
            },
        )
        result.materialization_seconds.append(
            timed(lambda event=event: instance.report_runless_asset_event(event))
        )


def measure_keys(instance: DagsterInstance, result: CountResult, reps: int) -> None:
    for rep in range(reps):
        keys = [f"bench/keys-{rep}-{i:02d}.csv@00000000" for i in range(TICK_FILES)]
        calls = {
            "add": lambda keys=keys: instance.add_dynamic_partitions(INBOX_PARTITIONS_NAME, keys),
            "get": lambda: instance.get_dynamic_partitions(INBOX_PARTITIONS_NAME),
            "has": lambda key=keys[-1]: instance.has_dynamic_partition(INBOX_PARTITIONS_NAME, key),
            "delete": lambda key=keys[0]: instance.delete_dynamic_partition(
                INBOX_PARTITIONS_NAME, key
            ),
        }
        result.add_50_seconds.append(timed(calls["add"]))
        result.get_all_seconds.append(timed(calls["get"]))
        result.has_one_seconds.append(timed(calls["has"]))
        result.delete_one_seconds.append(timed(calls["delete"]))
    count = len(instance.get_dynamic_partitions(INBOX_PARTITIONS_NAME))
    assert count == result.partitions + reps * (TICK_FILES - 1), count


def measure_ticks(
    instance: DagsterInstance, settings: Settings, result: CountResult, reps: int
) -> None:
    """The sensor as the daemon runs it: evaluated with the definitions, its partition request
    applied the way the daemon's `_handle_dynamic_partitions_requests` does."""
    granula = GranulaResource.from_settings(settings)
    definitions = build_definitions(settings, granula=granula)
    sensor = build_inbox_sensor(1)
    folder = settings.inbox / "bench"
    cursor: str | None = None
    for rep in range(reps):
        for old in folder.glob("*.csv"):
            old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(TICK_FILES):
            path = folder / f"tick{rep}-{i:02d}.csv"
            path.write_text("id,name\n1,a\n2,b\n")
            stamp = time.time() - 60
            os.utime(path, (stamp, stamp))
        context = build_sensor_context(
            instance=instance,
            cursor=cursor,
            definitions=definitions,
            resources={"granula": granula},
        )
        started = time.perf_counter()
        data = sensor.evaluate_tick(context)
        evaluated = time.perf_counter()
        for request in data.dynamic_partitions_requests or []:
            new = [
                key
                for key in request.partition_keys
                if not instance.has_dynamic_partition(request.partitions_def_name, key)
            ]
            if new:
                instance.add_dynamic_partitions(request.partitions_def_name, new)
        done = time.perf_counter()
        added = sum(len(r.partition_keys) for r in data.dynamic_partitions_requests or [])
        assert added == TICK_FILES, f"the tick added {added} keys, not {TICK_FILES}"
        cursor = data.cursor
        result.tick_sensor_seconds.append(evaluated - started)
        result.tick_seconds.append(done - started)
        result.tick_runs.append(len(data.run_requests or []))


@contextlib.contextmanager
def webserver(env: dict[str, str], log_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-webserver")),
                *("-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)),
            ],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"dagster-webserver exited; see {log_path}")
                try:
                    with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                        break
                except (urllib.error.URLError, OSError) as error:
                    if time.monotonic() > deadline:
                        message = f"dagster-webserver did not start; see {log_path}"
                        raise RuntimeError(message) from error
                    time.sleep(0.25)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def post_graphql(url: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        body: dict[str, Any] = json.loads(response.read())
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body


def measure_ui(env: dict[str, str], folder: Path, result: CountResult, reps: int) -> None:
    from playwright.sync_api import sync_playwright

    with webserver(env, folder / "webserver.log") as url:
        page_url = f"{url}/assets/{ASSET}?view=partitions"
        # The query alone, first: also waits for the code location to be loaded.
        body = post_graphql(url, PARTITIONS_QUERY)
        node = body["data"]["assetNodeOrError"]
        listed = len(node["partitionKeysByDimension"][0]["partitionKeys"])
        assert listed >= result.partitions, f"the UI lists {listed} partitions"
        for _ in range(reps):
            result.graphql_seconds.append(timed(lambda: post_graphql(url, PARTITIONS_QUERY)))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                context.set_default_timeout(PAGE_TIMEOUT_MS)
                for rep in range(reps + 1):
                    page = context.new_page()
                    queries: dict[str, float] = {}
                    page.on("requestfinished", lambda req, q=queries: record_query(req, q))
                    started = time.perf_counter()
                    page.goto(page_url)
                    if result.partitions:
                        page.get_by_text(SEEDED_KEY).filter(visible=True).first.wait_for()
                    else:
                        page.get_by_text(ASSET).filter(visible=True).first.wait_for()
                    listed_at = time.perf_counter() - started
                    page.wait_for_load_state("networkidle")
                    idle_at = time.perf_counter() - started
                    if rep == 0:
                        result.page_warmup_seconds = listed_at
                    else:
                        result.page_seconds.append(listed_at)
                        result.page_idle_seconds.append(idle_at)
                        for name, seconds in queries.items():
                            result.page_queries[name] = max(
                                result.page_queries.get(name, 0.0), seconds
                            )
                    page.close()
            finally:
                browser.close()


def record_query(request: Any, queries: dict[str, float]) -> None:
    """The slowest GraphQL request of each operation name the page sent."""
    if "/graphql" not in request.url:
        return
    name = "?"
    with contextlib.suppress(Exception):
        name = json.loads(request.post_data or "{}").get("operationName") or "?"
    timing = request.timing
    seconds = max(0.0, timing.get("responseEnd", 0.0)) / 1000
    queries[name] = max(queries.get(name, 0.0), seconds)


def run_count(
    count: int, admin_url: str, reps: int, page_reps: int, ui: bool, materialized: float | None
) -> CountResult:
    result = CountResult(partitions=count, load_average=os.getloadavg()[0])
    with (
        fresh_database(admin_url, "granula_bench_partitions") as database_url,
        tempfile.TemporaryDirectory(prefix="granula-bench-partitions-") as tmp,
    ):
        folder = Path(tmp)
        data_dir = folder / "data"
        (data_dir / "inbox").mkdir(parents=True)
        env = environment(database_url, dagster_home(folder), data_dir)
        subprocess.run(
            [*granula_command(), "migrate"], env={**os.environ, **env}, check=True, cwd=REPO
        )
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            settings = Settings(database_url=database_url, data_dir=data_dir, settle_seconds=0)
            instance = DagsterInstance.get()
            try:
                print(f"[{count}] seeding", flush=True)
                seed(instance, result, materialized)
                print(f"[{count}] seeded in {result.seed_seconds:.1f}s", flush=True)
                measure_keys(instance, result, reps)
                measure_ticks(instance, settings, result, reps)
                print(f"[{count}] ticks done", flush=True)
                if ui:
                    try:
                        measure_ui(env, folder, result, page_reps)
                    except Exception as error:  # the other figures still count
                        result.ui_error = f"{type(error).__name__}: {error}"[:2000]
                        print(f"[{count}] UI failed: {result.ui_error}", flush=True)
            finally:
                instance.dispose()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    result.load_average = max(result.load_average, os.getloadavg()[0])
    return result


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:,.0f} ms"


def print_table(results: list[CountResult]) -> None:
    header = (
        "| partitions | add 50 keys | get_dynamic_partitions | has_dynamic_partition "
        "| delete 1 key | tick (50 files) | of which the sensor "
        "| asset page (partitions view) | page, network idle "
        "| GraphQL keys+health | materialization / event | load avg |"
    )
    print(header)
    print("|" + "---:|" * header.count(" | ") + "---:|")
    for r in results:
        s = r.summary()
        page = ms(s["page_median"]) if not r.ui_error else "failed"
        print(
            f"| {r.partitions:,} | {ms(s['add_50_median'])} | {ms(s['get_all_median'])} "
            f"| {ms(s['has_one_median'])} | {ms(s['delete_one_median'])} "
            f"| {ms(s['tick_median'])} | {ms(s['tick_sensor_median'])} | {page} "
            f"| {ms(s['page_idle_median'])} | {ms(s['graphql_median'])} "
            f"| {ms(s['materialization_per_event_median'])} | {r.load_average:.2f} |"
        )


def parse_counts(text: str) -> list[int]:
    """`0,10k,50_000`: partition counts, with an optional k suffix."""
    counts = []
    for item in text.replace("_", "").split(","):
        item = item.strip().lower()
        if item:
            counts.append(int(float(item[:-1]) * 1000) if item.endswith("k") else int(item))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=parse_counts, default=[0, 10_000, 50_000])
    parser.add_argument("--reps", type=int, default=5, help="storage calls and ticks")
    parser.add_argument("--page-reps", type=int, default=3, help="asset page loads")
    parser.add_argument(
        "--materialized",
        type=float,
        help="the fraction of partitions materialized (default: 1%% or 500, whichever is fewer)",
    )
    parser.add_argument("--no-ui", action="store_true", help="skip the webserver and browser")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "bench_partitions.json")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}", flush=True)
    results = [
        run_count(
            count, args.admin_url, args.reps, args.page_reps, not args.no_ui, args.materialized
        )
        for count in args.counts
    ]
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "git": git_revision(),
                "cpus": os.cpu_count(),
                "results": [{**asdict(r), **r.summary()} for r in results],
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
