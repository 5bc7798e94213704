"""Load-test `granula api` on loopback: results pages near the start and at the end of a big file,
alone and under concurrent clients that also upload, then check no query is left running.

1. A fresh database; a `--rows`-row CSV (scripts/generate_csv.py) loaded by `granula ingest`.
2. `granula api` started on 127.0.0.1 with an API key (every request sends it).
3. Alone: `--samples` sequential requests for each kind of page, timed from the client:
   offset 0, offset ROWS - 1000 (the deep page), and the deep page by cursor (`after`).
4. Under load: `--clients` concurrent clients for `--seconds`, each looping over a random kind:
   a deep page, a first page, a cursor page, an upload of a small CSV; one client in five also
   gives up on some requests after 20 ms (a client that goes away mid-query).
5. One second after the clients stop: the API's backends still running a query
   (pg_stat_activity, application_name `granula-api`, state `active`) must be none.

p50/p95/max per kind are printed and written to bench-out/api.json. The run fails (exit 1) on any
5xx or a query left running.

    python scripts/bench_api.py                       # 500k rows, 20 clients, 40 s
    python scripts/bench_api.py --rows 100000 --clients 50 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from granula_pipeline.lib.access.keys import Scope, create_key  # noqa: E402
from granula_pipeline.lib.db.migrate import ensure_migrated  # noqa: E402
from granula_pipeline.settings import Settings  # noqa: E402
from granula_pipeline_tests.test_api.served import granula_api  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PAGE = 100


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float | int]:
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "p95_ms": round(percentile(samples, 0.95) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
    }


def prepare(admin_url: str, rows: int, folder: Path) -> tuple[Settings, int, str]:
    """A fresh database with the big file loaded; its settings, the file's public id, a token."""
    name = f"granula_bench_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    settings = Settings(database_url=url, data_dir=folder / "data")
    settings.inbox.mkdir(parents=True)
    ensure_migrated(settings)
    source = folder / "big.csv"
    subprocess.run(
        [sys.executable, str(REPO / "scripts/generate_csv.py"), "-n", str(rows), "-o", str(source)],
        check=True,
    )
    env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(settings.data_dir)}
    env.pop("DAGSTER_HOME", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "granula_pipeline.cli", "ingest", str(source)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"loaded {loaded['loaded_rows']} rows in {time.monotonic() - started:.1f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # as autovacuum would soon after a load
        _, token = create_key(conn, "bench", [Scope.UPLOAD, Scope.READ])
        (public_id,) = conn.execute(
            "SELECT public_id::text FROM granula.files WHERE file_id = %s", (loaded["file_id"],)
        ).fetchone()
    return settings, public_id, token


class Bench:
    def __init__(self, base: str, public_id: str, token: str, rows: int):
        self.base = base
        self.url = f"{base}/api/v1/results/{public_id}"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.deep = rows - 1000
        self.cursor = ""
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: Counter[str] = Counter()
        self.abandoned = 0
        self.server_errors: list[str] = []

    async def find_cursor(self, client: httpx.AsyncClient) -> None:
        page = await client.get(self.url, params={"limit": PAGE, "offset": self.deep - PAGE})
        self.cursor = page.json()["next"]

    async def request(self, client: httpx.AsyncClient, kind: str, seq: int) -> httpx.Response:
        if kind == "first":
            return await client.get(self.url, params={"limit": PAGE, "offset": 0})
        if kind == "deep":
            return await client.get(self.url, params={"limit": PAGE, "offset": self.deep})
        if kind == "cursor":
            return await client.get(self.url, params={"limit": PAGE, "after": self.cursor})
        body = b"id,name\n" + b"".join(b"%d,n%d\n" % (i, i) for i in range(200))
        name = f"bench_{seq}_{uuid.uuid4().hex[:6]}.csv"
        return await client.post(
            f"{self.base}/api/v1/upload", files={"file": (name, body, "text/csv")}
        )

    async def timed(self, client: httpx.AsyncClient, kind: str, seq: int, label: str) -> None:
        started = time.perf_counter()
        response = await self.request(client, kind, seq)
        elapsed = time.perf_counter() - started
        self.statuses[f"{label}:{response.status_code}"] += 1
        if response.status_code >= 500 and len(self.server_errors) < 10:
            self.server_errors.append(f"{label}: {response.status_code} {response.text[:200]}")
        if response.status_code < 300:
            self.latencies[label].append(elapsed)

    async def alone(self, samples: int) -> None:
        async with httpx.AsyncClient(headers=self.headers, timeout=60) as client:
            await self.find_cursor(client)
            for kind in ("first", "deep", "cursor"):
                for _ in range(3):  # warm the pool and the caches
                    await self.request(client, kind, 0)
                for seq in range(samples):
                    await self.timed(client, kind, seq, f"alone {kind}")

    async def loaded(self, clients: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        kinds = ["deep", "deep", "first", "cursor", "upload"]

        async def client_loop(number: int) -> None:
            impatient = number % 5 == 4
            async with httpx.AsyncClient(headers=self.headers, timeout=60) as c:
                seq = 0
                while time.monotonic() < deadline:
                    seq += 1
                    kind = random.choice(kinds)
                    if impatient and seq % 3 == 0 and kind != "upload":
                        # Its own connection, closed when it gives up: the server sees it go.
                        async with httpx.AsyncClient(headers=self.headers) as gone:
                            try:
                                await asyncio.wait_for(self.request(gone, kind, seq), 0.02)
                            except TimeoutError:
                                self.abandoned += 1
                        continue
                    await self.timed(c, kind, number * 100_000 + seq, f"{clients} clients {kind}")

        await asyncio.gather(*(client_loop(n) for n in range(clients)))


def running_queries(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT left(query, 80) FROM pg_stat_activity "
            "WHERE application_name = 'granula-api' AND state = 'active' "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row[0] for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "api.json")
    parser.add_argument(
        "--admin-url", default=os.environ.get("GRANULA_BENCH_ADMIN_URL", DEFAULT_ADMIN_URL)
    )
    args = parser.parse_args()
    random.seed(7)
    with tempfile.TemporaryDirectory(prefix="granula-bench-api-") as tmp:
        settings, public_id, token = prepare(args.admin_url, args.rows, Path(tmp))
        env = {"DATABASE_URL": settings.database_url, "DATA_DIR": str(settings.data_dir)}
        try:
            with granula_api(env) as base:
                bench = Bench(base, public_id, token, args.rows)
                asyncio.run(bench.alone(args.samples))
                asyncio.run(bench.loaded(args.clients, args.seconds))
                time.sleep(1)
                left_running = running_queries(settings.psycopg_conninfo)
        finally:
            with psycopg.connect(args.admin_url, autocommit=True) as admin:
                name = settings.psycopg_conninfo.rsplit("/", 1)[1]
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server_errors = {k: n for k, n in bench.statuses.items() if k.rsplit(":", 1)[1][0] == "5"}
    report = {
        "rows": args.rows,
        "page": PAGE,
        "deep_offset": bench.deep,
        "clients": args.clients,
        "seconds": args.seconds,
        "latency": {label: summary(samples) for label, samples in bench.latencies.items()},
        "statuses": dict(sorted(bench.statuses.items())),
        "abandoned_requests": bench.abandoned,
        "server_errors": server_errors,
        "server_error_samples": bench.server_errors,
        "queries_left_running": left_running,
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{'':28} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for label, figures in report["latency"].items():
        print(
            f"{label:28} {figures['n']:>6} {figures['p50_ms']:>8} {figures['p95_ms']:>8} "
            f"{figures['max_ms']:>8}"
        )
    print(f"statuses: {report['statuses']}")
    print(f"abandoned mid-request: {bench.abandoned}; left running after: {left_running}")
    for sample in bench.server_errors:
        print(f"5xx: {sample}")
    return 1 if server_errors or left_running else 0


if __name__ == "__main__":
    sys.exit(main())
