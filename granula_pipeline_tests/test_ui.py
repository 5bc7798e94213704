"""The Dagster UI, for real: a file's status metadata and checks, its chunk steps, a batched file's
own partition, a failed load with its error on its partition page, the dataset's table as an
asset with its row count, columns and lineage, and the runs list with the tags of a `granula
ingest` run and of a batch.

Two files go through `ingest` and one through `granula ingest` on a DAGSTER_HOME instance,
`dagster-webserver` serves that instance, and Chromium (Debian's, driven by Playwright) reads the
pages a user would open.
Screenshots go to the test's temp dir; with GRANULA_UPDATE_SCREENSHOTS=1 they also replace
docs/ui-asset.png, ui-batched-file.png, ui-failed-file.png, ui-checks.png, ui-run.png,
ui-dataset.png and ui-dataset-lineage.png; with GRANULA_SHOTS_DIR set, every screenshot is copied
there too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from dagster import DagsterInstance

from granula_pipeline.defs.resources import GranulaResource
from granula_pipeline.lib.db.migrate import ensure_migrated
from granula_pipeline.lib.model import FileRecord
from granula_pipeline.runs import ingest, ingest_batch_of
from granula_pipeline_tests.factories import write_orders
from granula_pipeline_tests.faults import inject_fault

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("GRANULA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[1] / "docs"
UPDATE_SCREENSHOTS = os.environ.get("GRANULA_UPDATE_SCREENSHOTS") == "1"
# Also copied here when set: the catalog, a failed partition and the runs list, to compare.
SHOTS_DIR = os.environ.get("GRANULA_SHOTS_DIR")
STARTUP_SECONDS = 60
UI_TIMEOUT_MS = 20_000
CHUNK_SIZE = 10
ROWS = 30
CLI_ROWS = 5
BATCH_ROWS = 4
CHUNK_STEPS = [f"load_chunk[{i:05d}]" for i in range(ROWS // CHUNK_SIZE)]

# The UI's own settings: no telemetry, and no "join the community" dialog over the pages.
DAGSTER_YAML = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"


class Webserver:
    """A `dagster-webserver` subprocess in its own process group."""

    def __init__(self, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-webserver")),
                *("-m", "granula_pipeline.definitions", "-h", "127.0.0.1", "-p", str(self.port)),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"dagster-webserver exited with {self.process.returncode}:\n{self._tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        pytest.fail(f"dagster-webserver did not answer in {STARTUP_SECONDS}s:\n{self._tail()}")

    def stop(self) -> None:
        # It leads a process group with the code server it started: end both at once. Nothing
        # is lost (its storage is the test's temp dir), and a graceful stop takes seconds.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def _tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    """A DAGSTER_HOME and the environment both this process and the webserver read."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("CHUNK_SIZE", str(CHUNK_SIZE))
    return home


@pytest.fixture
def home_instance(dagster_home: Path) -> Iterator[DagsterInstance]:
    # Created before the webserver starts, so only one process sets up the sqlite storage.
    instance = DagsterInstance.get()
    yield instance
    instance.dispose()


@pytest.fixture
def webserver(home_instance: DagsterInstance, tmp_path: Path) -> Iterator[Webserver]:
    """Started now and waited for later: it boots while the test loads its files."""
    server = Webserver(tmp_path / "webserver.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def chromium() -> Path:
    """Checked first, so a machine without a browser fails at once and says what to do."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"the UI test needs Chromium at {CHROMIUM}: run scripts/test.sh as root (it installs "
            "Debian's), or `apt-get install chromium`, or set GRANULA_CHROMIUM to a Chromium binary"
        )
    return CHROMIUM


@pytest.fixture
def page(chromium: Path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the UI test needs Playwright: pip install -e '.[dev]' (or scripts/test.sh)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(UI_TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


@dataclass(frozen=True)
class Loaded:
    good: FileRecord
    good_run_id: str
    bad: FileRecord
    bad_run_id: str
    cli: dict
    batched: FileRecord
    batch_run_id: str


@pytest.fixture
def loaded(home_instance: DagsterInstance, webserver: Webserver, database_url: str) -> Loaded:
    """One file loaded whole, one whose second chunk PostgreSQL refused; done while the webserver
    boots, and before the browser starts (Playwright's event loop upsets Dagster's runs)."""
    inbox = Path(os.environ["DATA_DIR"]) / "inbox"
    granula = GranulaResource()
    ensure_migrated(granula.settings)  # as `granula up` does before it starts Dagster
    good, good_run = ingest(home_instance, granula, write_orders(inbox / "orders.csv", ROWS))
    assert good.status == "completed" and good_run.success
    # `granula ingest`, as a user runs it, on the instance the webserver shows.
    command = [sys.executable, "-c", "from granula_pipeline.command import run; run()"]
    cli_file = write_orders(inbox.parent / "cli.csv", CLI_ROWS, start=500)
    done = subprocess.run(
        [*command, "ingest", str(cli_file), "--dataset", "orders"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cli = json.loads(done.stdout.strip().splitlines()[-1])
    # Two small exports in one ingest_batch run, as the inbox sensor batches them.
    exports = [
        write_orders(inbox / "exports" / f"day-{i}.csv", BATCH_ROWS, start=i * 100)
        for i in range(2)
    ]
    batched, batch_run = ingest_batch_of(home_instance, granula, exports, log_level="WARNING")
    assert [r.status for r in batched] == ["completed", "completed"] and batch_run.success
    with psycopg.connect(database_url, autocommit=True) as db:
        inject_fault(db, "orders", chunk=1, message="chunk one refused")
    bad, bad_run = ingest(
        home_instance,
        granula,
        write_orders(inbox / "orders-2.csv", ROWS, start=1000),
        dataset="orders",
        log_level="WARNING",
    )
    assert bad.status == "completed_with_errors" and not bad_run.success
    return Loaded(good, good_run.run_id, bad, bad_run.run_id, cli, batched[0], batch_run.run_id)


def test_ui_shows_file_status_checks_chunk_steps_and_failures(
    chromium, loaded, webserver, page, tmp_path
):
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)

    def screenshot(name: str, *, docs: bool = True) -> None:
        page.screenshot(path=tmp_path / name)
        if docs and UPDATE_SCREENSHOTS:
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(tmp_path / name, DOCS / name)
        if SHOTS_DIR:
            Path(SHOTS_DIR).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / name, Path(SHOTS_DIR) / name)

    good, bad = loaded.good, loaded.bad
    webserver.wait_until_ready()
    assets = f"{webserver.url}/assets/file_status"

    # The good file's partition: Dagster's standard metadata and Granula's counts.
    page.set_viewport_size({"width": 1400, "height": 1300})
    page.goto(f"{assets}?view=partitions&partition={quote(good.partition_key, safe='')}")
    expect(page.get_by_text(good.partition_key).first).to_be_visible()
    for key, value in [
        ("dagster/row_count", str(ROWS)),
        ("status", "completed"),
        ("loaded_rows", str(ROWS)),
        ("total_chunks", str(len(CHUNK_STEPS))),
        ("table", "datasets.orders"),
    ]:
        row = page.locator("tr").filter(has=page.get_by_text(key, exact=True))
        expect(row.first.locator("td").nth(1)).to_have_text(value)
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    screenshot("ui-asset.png")

    # A file loaded in a batch: its own partition, with its own metadata, from the batch's run.
    batched = loaded.batched
    page.goto(f"{assets}?view=partitions&partition={quote(batched.partition_key, safe='')}")
    expect(page.get_by_text(batched.partition_key).first).to_be_visible()
    for key, value in [
        ("status", "completed"),
        ("loaded_rows", str(BATCH_ROWS)),
        ("dataset", "exports"),
        ("filename", "day-0.csv"),
    ]:
        row = page.locator("tr").filter(has=page.get_by_text(key, exact=True))
        expect(row.first.locator("td").nth(1)).to_have_text(value)
    expect(page.get_by_text(loaded.batch_run_id[:8]).first).to_be_visible()
    screenshot("ui-batched-file.png")

    # The failed file's partition: its status, its error and its metadata on the page itself.
    page.set_viewport_size({"width": 1400, "height": 1300})
    page.goto(f"{assets}?view=partitions&partition={quote(bad.partition_key, safe='')}")
    expect(page.get_by_text(f"Run {loaded.bad_run_id[:8]} failed")).to_be_visible()
    for key, value in [("status", "completed_with_errors"), ("failed_chunks", "1")]:
        row = page.locator("tr").filter(has=page.get_by_text(key, exact=True))
        expect(row.first.locator("td").nth(1)).to_have_text(value)
    error = page.locator("tr").filter(has=page.get_by_text("error", exact=True)).first
    expect(error).to_contain_text("chunk one refused")
    screenshot("ui-failed-file.png")
    page.set_viewport_size({"width": 1400, "height": 900})
    screenshot("ui-failed-partition.png", docs=False)

    # The three checks; no_failed_chunks passed for the good file and failed for the bad one.
    page.get_by_role("tab", name="Checks").click()
    for check in ("rows_add_up", "no_failed_chunks", "columns_unchanged"):
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    page.get_by_text("no_failed_chunks", exact=True).first.click()
    page.get_by_role("tab", name="Execution history").click()
    history = page.locator("tr")
    expect(history.filter(has_text=good.partition_key)).to_contain_text("Passed")
    expect(history.filter(has_text=bad.partition_key)).to_contain_text("Failed")
    expect(history.filter(has_text=loaded.batched.partition_key)).to_contain_text("Passed")
    screenshot("ui-checks.png")

    # The failed run: the refused chunk's step is the one that errored, with PostgreSQL's reason.
    failed_step = f"file_status.{CHUNK_STEPS[1]}"
    page.goto(f"{webserver.url}/runs/{loaded.bad_run_id}?logs={quote(f'step:{failed_step}')}")
    expect(page.get_by_text("Failure", exact=True).first).to_be_visible()
    expect(page.get_by_text("Errored (1)")).to_be_visible()
    expect(page.get_by_text(failed_step, exact=True).first).to_be_visible()
    expect(page.get_by_text("chunk one refused").first).to_be_visible()
    screenshot("ui-run-failed.png", docs=False)

    # The good run: a step per chunk, each saying what it loaded.
    page.goto(f"{webserver.url}/runs/{loaded.good_run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    _show_step_logs_only(page)
    for step in CHUNK_STEPS:
        expect(page.get_by_text(step).first).to_be_visible()
    screenshot("ui-run.png")

    # Each dataset's table is an asset: its row count and columns, downstream of file_status.
    # The code location may have loaded before the table existed: a reload defines its asset.
    _reload_code_location(webserver)
    dataset = f"{webserver.url}/assets/datasets/orders"
    rows = ROWS + CLI_ROWS + 2 * CHUNK_SIZE  # the bad file's chunks 0 and 2 loaded
    page.goto(dataset)
    expect(page.get_by_text(f"{rows:,}").first).to_be_visible()
    for column in ("id", "name", "value"):
        expect(page.get_by_text(column, exact=True).first).to_be_visible()
    screenshot("ui-dataset.png")
    page.goto(f"{dataset}?view=lineage")
    expect(page.get_by_text("file_status").first).to_be_visible()
    expect(page.get_by_text("Loading...")).to_have_count(0)
    screenshot("ui-dataset-lineage.png")

    page.goto(f"{webserver.url}/assets")
    expect(page.get_by_text("file_status").first).to_be_visible()
    expect(page.get_by_text("orders").first).to_be_visible()
    expect(page.get_by_text("Loading...")).to_have_count(0)
    screenshot("ui-catalog.png", docs=False)

    # The runs list: the `granula ingest` run too, with its file and dataset tags.
    page.goto(f"{webserver.url}/runs")
    expect(page.get_by_text(loaded.cli["run_id"][:8]).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"^granula/file: external/cli\.csv-")).first).to_be_visible()
    # ...and the batch's: its first file, how many, and their size, readable.
    expect(page.get_by_text("granula/file: exports/day-0.csv (+1 more)").first).to_be_visible()
    expect(page.get_by_text("granula/files: 2").first).to_be_visible()
    screenshot("ui-runs.png", docs=False)


def _reload_code_location(webserver: Webserver) -> None:
    """What the UI's Deployment > Reload does, through the webserver's GraphQL API."""
    query = (
        "mutation { reloadRepositoryLocation(repositoryLocationName: "
        '"granula_pipeline.definitions") { __typename } }'
    )
    request = urllib.request.Request(
        f"{webserver.url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert answer["data"]["reloadRepositoryLocation"]["__typename"] == "WorkspaceLocationEntry", (
        answer
    )


def _show_step_logs_only(page) -> None:
    """The whole waterfall chart above, and below only what the steps logged, not Dagster's
    events: what a reader should see of a run."""
    page.get_by_role("button", name="gantt_waterfall").click()
    divider = page.locator("[class*=verticalHitArea]").first.bounding_box()
    if divider is not None:
        x, y = divider["x"] + divider["width"] / 2, divider["y"] + divider["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x, y + 110, steps=5)
        page.mouse.up()
    page.get_by_role("button", name="Levels").click()
    page.get_by_text("event", exact=True).click()
    page.keyboard.press("Escape")
