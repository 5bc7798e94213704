"""The deployment files: the Dockerfile, docker-compose.yml and the Dagster instance configs.

No container engine runs where the tests run, so the files are checked against what they must
agree with: each other, the package (its settings, its module), Dagster's own command-line
parsers, and Dagster's instance loader against a real PostgreSQL database.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import click
import psycopg
import pytest
import yaml
from dagster import DagsterInstance
from dagster._cli import cli as dagster_cli
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import dagster_instance_config_schema
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager
from dagster._daemon.cli import cli as daemon_cli
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_webserver.cli import cli as webserver_cli
from sqlalchemy.engine import make_url

from granula_pipeline.lib.db.migrate import ensure_migrated, latest_revision
from granula_pipeline.settings import Settings, sqlalchemy_url

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DAGSTER_SERVICES = ("granula", "webserver", "daemon")
CLIS: dict[str, click.Command] = {
    "dagster": dagster_cli,
    "dagster-daemon": daemon_cli,
    "dagster-webserver": webserver_cli,
}
# Settings that docker-compose gives a fixed value rather than passing through from the shell.
COMPOSE_FIXED_SETTINGS = {"DATABASE_URL", "DAGSTER_PG_URL", "DATA_DIR", "MAX_CONCURRENCY"}
SCALE_OUT_CONFIGS = ("deploy/dagster.k8s.yaml", "deploy/dagster.celery.yaml")
SHARED_INSTANCE_SECTIONS = ("storage", "run_coordinator", "run_monitoring", "run_retries")

# The run launchers of the scale-out configs live in dagster-k8s and dagster-celery, which the
# project does not install: Dagster core validates everything else in those files (and loads it for
# real below), while a launcher's own config is checked here against the fields the library
# declares in its 0.29.27 release (K8sRunLauncher.config_type(), CeleryRunLauncher.config_type()).
K8S_LAUNCHER_FIELDS = {
    "job_image", "image_pull_policy", "image_pull_secrets", "service_account_name",
    "env_config_maps", "env_secrets", "env_vars", "volume_mounts", "volumes", "labels",
    "resources", "scheduler_name", "security_context", "instance_config_map",
    "postgres_password_secret", "dagster_home", "load_incluster_config", "kubeconfig_file",
    "k8s_api_ssl_ca_cert_file", "fail_pod_on_run_failure", "run_k8s_config", "job_namespace",
    "only_allow_user_defined_k8s_config_fields", "only_allow_user_defined_env_vars",
}  # fmt: skip
CELERY_LAUNCHER_FIELDS = {"broker", "backend", "include", "default_queue", "config_source"}


INIT_SQL = (REPO / "deploy/postgres/initdb/10-granula-roles.sh").read_text()


def read_yaml(relative: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / relative).read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.strip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            env.update(pair.split("=", 1) for pair in arguments.split())
    return env


def dockerfile_copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY, with ${VAR} expanded from the ENV lines above it."""
    env = dockerfile_env()
    copies = []
    for instruction, arguments in dockerfile_instructions():
        if instruction == "COPY":
            parts = [p for p in arguments.split() if not p.startswith("--")]
            expand = re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], parts[-1])
            copies.append((parts[:-1], expand))
    return copies


def dockerfile_cmd() -> list[str]:
    cmds = [
        arguments for instruction, arguments in dockerfile_instructions() if instruction == "CMD"
    ]
    assert len(cmds) == 1, "the Dockerfile should have exactly one CMD"
    return json.loads(cmds[0])


def image_files() -> dict[str, Path]:
    """Path in the image -> the repository file the Dockerfile copies there."""
    return {dest: REPO / sources[0] for sources, dest in dockerfile_copies() if len(sources) == 1}


def parse_command(argv: list[str]) -> dict[str, Any]:
    """Parse `argv` with the real Dagster command it names; a wrong option raises UsageError.

    Paths in the image stand for the repository files copied there, so an option that wants an
    existing file (`-w`) fails unless the Dockerfile puts that file at that path.
    """
    command = CLIS[argv[0]]
    files = image_files()
    args = [str(files.get(arg, arg)) for arg in argv[1:]]
    while isinstance(command, click.Group):
        sub = command.get_command(click.Context(command), args[0])
        assert sub is not None, f"{argv[0]} has no subcommand {args[0]!r}"
        command, args = sub, args[1:]
    return command.make_context(argv[0], list(args)).params


def instance_env_vars(config: Any) -> set[str]:
    """Every environment variable an instance config reads with `env:`."""
    if isinstance(config, dict):
        found = {config["env"]} if set(config) == {"env"} else set()
        return found.union(*(instance_env_vars(value) for value in config.values()))
    if isinstance(config, list):
        return set().union(*(instance_env_vars(value) for value in config))
    return set()


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of the service's volumes (short syntax)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return read_yaml("docker-compose.yml")


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture
def instance_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """DAGSTER_PG_URL and MAX_CONCURRENCY as docker-compose sets them, on this module's database."""
    monkeypatch.setenv("DAGSTER_PG_URL", sqlalchemy_url(database_url, "psycopg2"))
    # Not the default (2): the run queue's limit must come from the variable.
    monkeypatch.setenv("MAX_CONCURRENCY", "5")
    return database_url


def load_instance(config: dict[str, Any], home: Path) -> DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return DagsterInstance.from_config(str(home))


@pytest.fixture
def repo_instance(instance_env: str, tmp_path: Path) -> Iterator[DagsterInstance]:
    """The repository's dagster.yaml, copied into a DAGSTER_HOME as the Dockerfile does."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


# docker-compose.yml


def test_compose_runs_postgres_the_code_location_webserver_and_daemon(services):
    assert set(services) == {"postgres", *DAGSTER_SERVICES}


def test_postgres_is_persistent_healthchecked_and_matches_database_url(compose, services):
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    data = bind_mounts(postgres)["/var/lib/postgresql/data"]
    assert data in compose["volumes"], "PostgreSQL's data should live in a named volume"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    url = make_url(services["granula"]["environment"]["DATABASE_URL"])
    assert (url.host, url.port) == ("postgres", 5432)
    assert (url.username, url.password, url.database) == (
        "granula",
        "${GRANULA_DB_PASSWORD}",
        "granula",
    )
    assert url.username != postgres["environment"]["POSTGRES_USER"], "not the superuser"
    # The role and its database are made by the init script the postgres image runs.
    assert bind_mounts(postgres)["/docker-entrypoint-initdb.d"] == "./deploy/postgres/initdb"
    assert "CREATE DATABASE granula OWNER granula;" in INIT_SQL
    assert "CREATE ROLE granula LOGIN NOSUPERUSER" in INIT_SQL


def strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (key, string value) in a parsed YAML tree, list items keyed by their list's key."""
    if isinstance(node, dict):
        for inner_key, value in node.items():
            yield from strings(value, str(inner_key))
    elif isinstance(node, list):
        for item in node:
            yield from strings(item, key)
    elif isinstance(node, str):
        yield key, node


def test_the_dagster_ui_is_published_on_loopback_only(services):
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert services["webserver"]["ports"] == ["127.0.0.1:${GRANULA_UI_PORT:-3000}:3000"]


def test_no_password_is_written_in_the_compose_file(compose):
    seen = 0
    for key, value in strings(compose):
        if "PASSWORD" in key.upper():
            assert value.startswith("${") and ":?" in value, f"{key} should come from .env"
            seen += 1
        if value.startswith("postgresql"):
            password = make_url(value).password
            assert password is None or re.fullmatch(r"\$\{[A-Z_]+\}", str(password)), value
    assert seen == 3
    assert "granula:granula" not in (REPO / "docker-compose.yml").read_text()


def test_secrets_come_from_an_env_file_that_is_not_committed(compose):
    referenced = set(re.findall(r"\$\{([A-Z_]+):\?", (REPO / "docker-compose.yml").read_text()))
    example = (REPO / ".env.example").read_text()
    listed = {line.split("=", 1)[0] for line in example.splitlines() if re.match(r"[A-Z_]+=", line)}
    assert referenced == {"POSTGRES_PASSWORD", "GRANULA_DB_PASSWORD", "DAGSTER_DB_PASSWORD"}
    assert referenced <= listed
    assert all(line.endswith("=") for line in example.splitlines() if re.match(r"[A-Z_]+=", line))
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_the_init_script_leaves_public_no_way_into_any_database():
    for database in ("postgres", "granula", "dagster"):
        assert f"REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC;" in INIT_SQL
    assert "GRANT CONNECT ON DATABASE granula TO granula_reader;" in INIT_SQL
    assert "SUPERUSER" not in INIT_SQL.replace("NOSUPERUSER", "")


def test_dagster_processes_start_once_their_dependencies_are_healthy(services):
    for name in DAGSTER_SERVICES:
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert "healthcheck" in services[name], name
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["granula"]["condition"] == "service_healthy", name
    # The code location's health check must ask its own gRPC port.
    check = services["granula"]["healthcheck"]["test"]
    assert parse_command(check[1:])["port"] == parse_command(services["granula"]["command"])["port"]


def test_the_image_is_built_once_and_used_by_every_dagster_process(services):
    assert "build" in services["granula"]
    images = {services[name]["image"] for name in DAGSTER_SERVICES}
    assert len(images) == 1
    for name in ("webserver", "daemon"):
        assert "build" not in services[name]
        assert services[name]["pull_policy"] == "never", f"{name} would try to pull the image"


def test_code_location_serves_the_package_definitions(services):
    params = parse_command(services["granula"]["command"])
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert params["module_name"] == pyproject["tool"]["dagster"]["module_name"]
    assert params["host"] == "0.0.0.0", "the webserver and daemon connect from other containers"


def test_webserver_and_daemon_load_the_grpc_workspace(services):
    workspace = read_yaml("workspace.docker.yaml")
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    code_location = parse_command(services["granula"]["command"])
    assert server["host"] == "granula", "the host is the code location's service name"
    assert server["port"] == code_location["port"]
    assert server["location_name"] == code_location["location_name"]

    webserver = parse_command(services["webserver"]["command"])
    daemon = parse_command(services["daemon"]["command"])
    workspace_file = (str(REPO / "workspace.docker.yaml"),)
    assert tuple(webserver["workspace"]) == tuple(daemon["workspace"]) == workspace_file
    assert webserver["host"] == "0.0.0.0"
    assert services["webserver"]["ports"][0].rsplit(":", 1)[-1] == str(webserver["port"])


def test_every_dagster_process_gets_the_variables_dagster_yaml_reads(services):
    needed = instance_env_vars(read_yaml("dagster.yaml"))
    assert "DAGSTER_PG_URL" in needed
    for name in DAGSTER_SERVICES:
        missing = needed - set(services[name]["environment"])
        assert not missing, f"{name} cannot load the instance without {missing}"
    granula = services["granula"]["environment"]
    dagster_url = make_url(granula["DAGSTER_PG_URL"])
    assert dagster_url.drivername == "postgresql+psycopg2", "dagster-postgres drives psycopg2"
    # Dagster's storage is its own role's own database, apart from Granula's.
    assert (dagster_url.username, dagster_url.database) == ("dagster", "dagster")
    assert dagster_url.password == "${DAGSTER_DB_PASSWORD}"
    assert "CREATE DATABASE dagster OWNER dagster;" in INIT_SQL


def test_max_concurrency_defaults_to_the_settings_default(services):
    default = Settings.model_fields["max_concurrency"].default
    for name in DAGSTER_SERVICES:
        assert (
            services[name]["environment"]["MAX_CONCURRENCY"] == f"${{MAX_CONCURRENCY:-{default}}}"
        )


def test_only_the_code_location_opens_the_inbox_and_the_database(services):
    # With the default run launcher (dagster.yaml names none) the code location evaluates the
    # sensors and starts the run workers: it alone needs the files and DATABASE_URL.
    assert "run_launcher" not in read_yaml("dagster.yaml")
    granula = services["granula"]
    data_dir = granula["environment"]["DATA_DIR"]
    assert bind_mounts(granula)[data_dir] == "./data"
    assert data_dir == dockerfile_env()["DATA_DIR"]
    for name in ("webserver", "daemon"):
        assert "./data" not in bind_mounts(services[name]).values(), name
        assert "DATABASE_URL" not in services[name]["environment"], name


def test_code_location_passes_every_granula_setting_and_nothing_else(services):
    settings = {name.upper() for name in Settings.model_fields}
    environment = set(services["granula"]["environment"])
    assert settings - environment == set(), "settings docker-compose does not pass on"
    assert environment - settings - COMPOSE_FIXED_SETTINGS == set(), "not Granula settings"
    for name in settings - COMPOSE_FIXED_SETTINGS:
        # Empty: taken from the shell when set there, else the settings' default applies.
        assert services["granula"]["environment"][name] is None, name


def test_captured_logs_are_shared_by_the_code_location_and_the_webserver(compose, services):
    storage = str(PurePosixPath(dockerfile_env()["DAGSTER_HOME"]) / "storage")
    writer = bind_mounts(services["granula"]).get(storage)
    assert writer in compose["volumes"]
    assert bind_mounts(services["webserver"]).get(storage) == writer


# Dockerfile


def test_image_is_python_311_slim_and_runs_as_a_regular_user():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}
    installs = [a for i, a in instructions if i == "RUN" and "pip install" in a]
    assert len(installs) == 1
    assert "[" not in installs[0] and " -e " not in installs[0], "no extras, no editable install"
    assert [i for i, _ in instructions].index("USER") > instructions.index(("RUN", installs[0]))


def test_image_copies_everything_pip_install_needs():
    sources = {source for copied, _ in dockerfile_copies() for source in copied}
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert {"pyproject.toml", pyproject["project"]["readme"], "granula_pipeline"} <= sources


def test_image_holds_the_instance_and_starts_the_code_location_as_compose_does(services):
    env = dockerfile_env()
    assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    copies = dict((tuple(sources), dest) for sources, dest in dockerfile_copies())
    assert copies[("dagster.yaml",)] == f"{env['DAGSTER_HOME']}/dagster.yaml"
    workdirs = [a for i, a in dockerfile_instructions() if i == "WORKDIR"]
    assert PurePosixPath(copies[("workspace.docker.yaml",)]).parent == PurePosixPath(workdirs[-1])
    assert dockerfile_cmd() == services["granula"]["command"]


# The repository's dagster.yaml, loaded by Dagster


def test_repo_instance_queues_runs_up_to_max_concurrency(repo_instance):
    coordinator = repo_instance.run_coordinator
    assert isinstance(coordinator, QueuedRunCoordinator)
    assert coordinator.get_run_queue_config().max_concurrent_runs == 5


def test_repo_instance_keeps_dagster_storage_in_postgres(repo_instance, instance_env):
    assert isinstance(repo_instance.run_storage, PostgresRunStorage)
    assert isinstance(repo_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(repo_instance.schedule_storage, PostgresScheduleStorage)
    with psycopg.connect(instance_env) as conn:
        assert conn.execute("SELECT to_regclass('public.runs')").fetchone() == ("runs",)


def test_repo_instance_monitors_and_retries_lost_runs(repo_instance):
    assert repo_instance.run_monitoring_enabled
    assert repo_instance.run_retries_enabled
    assert repo_instance.run_retries_max_retries == 2
    assert not repo_instance.run_retries_retry_on_asset_or_op_failure


def test_dagster_storage_and_control_tables_share_one_database(instance_env, tmp_path):
    # Without DAGSTER_PG_URL (`granula up`, a single-database setup) Dagster's storage shares
    # DATABASE_URL's database: the two sets of Alembic migrations keep to their own version tables.
    config = read_yaml("dagster.yaml")
    with load_instance(config, tmp_path / "first") as instance:
        instance.get_runs()
    ensure_migrated(Settings(database_url=instance_env))
    with load_instance(config, tmp_path / "again") as instance:
        instance.get_runs()
    with psycopg.connect(instance_env) as conn:
        granula = conn.execute("SELECT version_num FROM granula.alembic_version").fetchall()
        dagster = conn.execute("SELECT version_num FROM public.alembic_version").fetchall()
    assert granula == [(latest_revision(),)]
    assert len(dagster) == 1 and dagster != granula


# Scale-out instance configs (deploy/)


@pytest.mark.parametrize("relative", SCALE_OUT_CONFIGS)
def test_scale_out_config_keeps_storage_queue_monitoring_and_retries(relative):
    repo, scale_out = read_yaml("dagster.yaml"), read_yaml(relative)
    for section in SHARED_INSTANCE_SECTIONS:
        assert scale_out[section] == repo[section], f"{relative}: {section} differs"


@pytest.mark.parametrize("relative", SCALE_OUT_CONFIGS)
def test_scale_out_config_passes_dagster_instance_schema(relative, monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://granula@postgres/granula")
    monkeypatch.setenv("MAX_CONCURRENCY", "4")
    for name in instance_env_vars(read_yaml(relative)["run_launcher"]):
        monkeypatch.setenv(name, f"{name.lower()}://example")
    result = process_config(
        resolve_to_config_type(dagster_instance_config_schema()), read_yaml(relative)
    )
    assert result.success, result.errors


@pytest.mark.parametrize("relative", SCALE_OUT_CONFIGS)
def test_scale_out_config_loads_in_dagster_but_for_its_launcher(relative, instance_env, tmp_path):
    config = {key: value for key, value in read_yaml(relative).items() if key != "run_launcher"}
    with load_instance(config, tmp_path) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 5
        # Run pods and remote workers keep no disk the webserver could read captured logs from.
        assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)


def test_k8s_config_launches_runs_as_kubernetes_jobs_with_the_shared_inbox():
    launcher = read_yaml("deploy/dagster.k8s.yaml")["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s.launcher", "K8sRunLauncher")
    config = launcher["config"]
    assert set(config) <= K8S_LAUNCHER_FIELDS, set(config) - K8S_LAUNCHER_FIELDS
    assert config["instance_config_map"], "K8sRunLauncher requires instance_config_map"
    assert config["job_namespace"] and config["service_account_name"]
    assert config["env_config_maps"] and config["env_secrets"]
    volumes = {volume["name"]: volume for volume in config["volumes"]}
    (mount,) = config["volume_mounts"]
    assert "persistentVolumeClaim" in volumes[mount["name"]]
    # Run pods must find the files where the code location's sensor recorded them.
    assert mount["mountPath"] == dockerfile_env()["DATA_DIR"]


def test_celery_config_launches_runs_as_celery_tasks_it_can_monitor():
    launcher = read_yaml("deploy/dagster.celery.yaml")["run_launcher"]
    assert (launcher["module"], launcher["class"]) == (
        "dagster_celery.launcher",
        "CeleryRunLauncher",
    )
    config = launcher["config"]
    assert set(config) <= CELERY_LAUNCHER_FIELDS, set(config) - CELERY_LAUNCHER_FIELDS
    assert config["broker"] == {"env": "CELERY_BROKER_URL"}
    # Run monitoring reads task states from the result backend: `rpc://` cannot serve it.
    assert config["backend"] == {"env": "CELERY_RESULT_BACKEND"}


@pytest.mark.parametrize(
    ("relative", "library"),
    [("deploy/dagster.k8s.yaml", "dagster_k8s"), ("deploy/dagster.celery.yaml", "dagster_celery")],
)
def test_launcher_config_passes_the_library_schema(relative, library, monkeypatch):
    # The `deploy` extra (installed by scripts/setup.sh) brings dagster-k8s and dagster-celery.
    __import__(library)
    from dagster._serdes.config_class import class_from_code_pointer

    launcher = read_yaml(relative)["run_launcher"]
    for name in instance_env_vars(launcher):
        monkeypatch.setenv(name, f"{name.lower()}://example")
    launcher_class = class_from_code_pointer(launcher["module"], launcher["class"])
    result = process_config(
        resolve_to_config_type(launcher_class.config_type()), launcher["config"]
    )
    assert result.success, result.errors
