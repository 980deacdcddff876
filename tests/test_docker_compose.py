"""Static checks of docker-compose.yaml, Dockerfile, .dockerignore and .env.example.

There is no Docker engine here, so these tests read the real files and check what
`docker compose up --build` relies on: the services and profiles, the bind-mount sources,
one image built from the Dockerfile whose Airflow/Python tags match the pins, the zuora_api
pool, the health checks, and the documented settings.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from zuora import settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

AIRFLOW_SERVICES = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
]
REQUIRED_SERVICES = AIRFLOW_SERVICES + ["postgres", "redis", "warehouse"]
# Bind-mount sources that must exist in the repo, and those created at run time.
REPO_DIRS = {"dags"}  # the zuora package is installed in the image
RUNTIME_DIRS = {"logs", "config"}

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand(value: str, env: dict[str, str] | None = None) -> str:
    """Compose-style interpolation with an empty environment (defaults apply)."""
    env = env or {}

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        if name in env:
            return env[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            return f"<required:{name}>"
        return ""

    return _VAR.sub(sub, value)


def required_vars(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", text))


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile_lines() -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append((current + stripped).strip())
        current = ""
    assert not current, "Dockerfile ends with a line continuation"
    return lines


def pinned(requirements: Path, name: str) -> str:
    pins = re.findall(
        rf"^{re.escape(name)}==([^\s;#]+)", requirements.read_text(), re.MULTILINE | re.IGNORECASE
    )
    assert len(pins) == 1, f"{requirements.name}: expected exactly one {name}== pin, found {pins}"
    return pins[0]


def command_text(service: dict) -> str:
    cmd = service.get("command", "")
    return cmd if isinstance(cmd, str) else "\n".join(map(str, cmd))


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def airflow_like(services: dict) -> dict:
    """Every service that runs Airflow (airflow-* and flower)."""
    return {n: s for n, s in services.items() if n.startswith("airflow-") or n == "flower"}


# --- compose: structure ------------------------------------------------------------------


def test_required_services_exist(services):
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"docker-compose.yaml lacks services {missing}"
    # The always-on stack must not hide behind a profile.
    profiled = [name for name in REQUIRED_SERVICES if services[name].get("profiles")]
    assert not profiled, f"core services must not need a profile: {profiled}"


def test_optional_services_are_behind_profiles(services):
    assert services["airflow-cli"]["profiles"] == ["debug"]
    assert services["flower"]["profiles"] == ["flower"]


def test_simulator_is_demo_profile_and_runs_the_demo(services):
    sims = {n: s for n, s in services.items() if "zuora_simulator" in command_text(s)}
    assert list(sims) == ["zuora-simulator"], f"expected one simulator service, got {list(sims)}"
    sim = sims["zuora-simulator"]
    assert sim.get("profiles") == ["demo"]
    argv = shlex.split(command_text(sim))
    assert argv[:3] == ["python", "-m", "zuora_simulator"]
    assert "--demo" in argv
    assert argv[argv.index("--port") + 1] == "8090"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"


def test_simulator_is_reachable_as_loopback_from_the_worker(services):
    # ZuoraHook accepts plain http only for loopback hosts, so the demo simulator must share
    # the network namespace of the container that runs the tasks.
    assert services["zuora-simulator"].get("network_mode") == "service:airflow-worker"


def test_common_environment(services):
    env = {k: expand(v) for k, v in env_of(services["airflow-scheduler"]).items()}
    assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith("/opt/airflow/config/")
    api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (api.hostname, api.port, api.path) == ("airflow-apiserver", 8080, "/execution/")
    # Secrets come from the environment / .env and must be set (no baked-in defaults).
    assert env["AIRFLOW__CORE__FERNET_KEY"] == "<required:FERNET_KEY>"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "<required:AIRFLOW__API_AUTH__JWT_SECRET>"
    for name, service in airflow_like(services).items():
        assert not env_of(service).get("_PIP_ADDITIONAL_REQUIREMENTS"), f"{name}: build the image instead"


def test_warehouse_connection_points_at_the_warehouse_service(services):
    for name, service in airflow_like(services).items():
        env = env_of(service)
        assert "AIRFLOW_CONN_ZUORA_WAREHOUSE" in env, f"{name} lacks AIRFLOW_CONN_ZUORA_WAREHOUSE"
    uri = urlsplit(expand(env_of(services["airflow-worker"])["AIRFLOW_CONN_ZUORA_WAREHOUSE"]))
    wh_env = {k: expand(v) for k, v in env_of(services["warehouse"]).items()}
    assert uri.scheme in ("postgres", "postgresql")
    assert uri.hostname == "warehouse" and (uri.port or 5432) == 5432
    assert uri.username == wh_env["POSTGRES_USER"]
    assert uri.password == wh_env["POSTGRES_PASSWORD"]
    assert uri.path.lstrip("/") == wh_env["POSTGRES_DB"]
    assert services["warehouse"]["image"] == services["postgres"]["image"] == "postgres:16"


def test_databases_have_their_own_named_volumes(compose, services):
    declared = set(compose.get("volumes") or {})
    sources = {}
    for name in ("postgres", "warehouse"):
        (volume,) = services[name]["volumes"]
        source, target = volume.split(":")[:2]
        assert target == "/var/lib/postgresql/data"
        assert source in declared, f"{name}: volume {source} not declared at top level"
        sources[name] = source
    assert sources["postgres"] != sources["warehouse"], "the two databases share a volume"


def test_redis_image(services):
    assert services["redis"]["image"] == "redis:7.2-bookworm"


# --- compose: mounts -----------------------------------------------------------------------


def init_created_dirs(services) -> set[str]:
    created = set()
    for m in re.finditer(
        r"mkdir\s+(?:-\S+\s+)*/opt/airflow/(\{[^}]*\}|\S+)", command_text(services["airflow-init"])
    ):
        part = m.group(1)
        created |= set(part.strip("{}").split(",")) if part.startswith("{") else {part}
    return created


def bind_mounts(compose, service: dict) -> list[tuple[str, str]]:
    declared = set(compose.get("volumes") or {})
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") != "bind":
                continue
            source, target = volume["source"], volume["target"]
        else:
            source, target = expand(volume).split(":")[:2]
        if source in declared:
            continue
        mounts.append((source, target))
    return mounts


def test_bind_mount_sources_exist(compose, services):
    created_at_runtime = init_created_dirs(services)
    seen = set()
    for name, service in services.items():
        for source, _target in bind_mounts(compose, service):
            assert not Path(source).is_absolute(), f"{name}: absolute bind source {source}"
            path = (ROOT / source).resolve()
            assert path.is_relative_to(ROOT), f"{name}: {source} points outside the repo"
            rel = path.relative_to(ROOT).as_posix()
            seen.add(rel)
            if rel in RUNTIME_DIRS:
                assert rel in created_at_runtime, (
                    f"{name}: ./{rel} is neither in the repo nor made by airflow-init"
                )
            else:
                assert path.is_dir(), f"{name}: bind source {source} ({path}) does not exist"
    assert REPO_DIRS | RUNTIME_DIRS <= seen, f"not mounted: {(REPO_DIRS | RUNTIME_DIRS) - seen}"


def test_airflow_services_mount_project_folders(compose, services):
    for name, service in airflow_like(services).items():
        mounts = {Path(s).name: t for s, t in bind_mounts(compose, service)}
        for folder in sorted(REPO_DIRS | RUNTIME_DIRS):
            assert mounts.get(folder) == f"/opt/airflow/{folder}", (
                f"{name}: ./{folder} not at /opt/airflow/{folder}"
            )


def test_repo_dirs_are_real():
    for folder in REPO_DIRS:
        assert (ROOT / folder).is_dir()
    assert (ROOT / "dags" / "zuora_workflow_sync.py").is_file()


def host_path(container_path: str) -> str:
    """The repo-relative path of a file under one of the Airflow services' bind mounts."""
    for folder in REPO_DIRS | RUNTIME_DIRS:
        prefix = f"/opt/airflow/{folder}/"
        if container_path.startswith(prefix):
            return folder + "/" + container_path.removeprefix(prefix)
    raise AssertionError(f"{container_path} is not under a bind-mounted folder")


def files_a_run_writes(services) -> list[str]:
    """What `cp .env.example .env` and one `docker compose [--profile demo] up` leave in the
    checkout (container paths mapped back through the bind mounts), and what the local
    runtimes write."""
    env = {k: expand(v) for k, v in env_of(services["airflow-scheduler"]).items()}
    written = [
        ".env",
        host_path(env["AIRFLOW_CONFIG"]),
        host_path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]),
        "logs/scheduler/latest/zuora_workflow_sync.py.log",
        "logs/dag_id=zuora_workflow_sync/run_id=manual/task_id=sync.list/attempt=1.log",
        "dags/__pycache__/zuora_workflow_sync.cpython-311.pyc",
        ".cluster/keys.json",
        ".demo/export-encryption.key",
    ]
    tls = shlex.split(command_text(services["zuora-simulator"]))
    tls_dir = host_path(tls[tls.index("--tls-dir") + 1])
    written += [f"{tls_dir}/{name}" for name in ("ca.pem", "server.pem", "server-key.pem")]
    return written


def test_nothing_a_run_writes_can_be_committed(services):
    """`git add .` after a first run must stage no secret: the keys in .env, the generated
    API secret in config/airflow.cfg, the admin password file, the demo's TLS key."""
    written = files_a_run_writes(services)
    result = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "--no-index", "--stdin", "-z"],
        input="\0".join(written),
        capture_output=True,
        text=True,
    )
    assert result.returncode in (0, 1), result.stderr
    ignored = set(filter(None, result.stdout.split("\0")))
    assert not set(written) - ignored, f"not ignored by .gitignore: {sorted(set(written) - ignored)}"
    # ... while the templates stay tracked
    for kept in (".env.example", "airflow.env", "dags/zuora_workflow_sync.py"):
        assert (
            subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--no-index", "-q", kept]).returncode == 1
        ), f"{kept} is ignored"


# --- compose: image ------------------------------------------------------------------------


def test_airflow_services_build_the_dockerfile(services):
    images = set()
    for name, service in {**airflow_like(services), "zuora-simulator": services["zuora-simulator"]}.items():
        build = service.get("build")
        assert build is not None, f"{name} does not build from the Dockerfile"
        context, dockerfile = (
            (build, "Dockerfile")
            if isinstance(build, str)
            else (build.get("context", "."), build.get("dockerfile", "Dockerfile"))
        )
        assert (ROOT / context / dockerfile).resolve() == DOCKERFILE.resolve(), f"{name}: {build}"
        images.add(expand(service["image"]))
    assert images == {"zuora-workflow-sync:latest"}, f"Airflow services use different images: {images}"


def test_dockerfile_tag_matches_pins(dockerfile_lines):
    froms = [line for line in dockerfile_lines if line.upper().startswith("FROM ")]
    assert len(froms) == 1, froms
    m = re.fullmatch(
        r"FROM\s+apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)(?:\s+AS\s+\S+)?", froms[0], re.I
    )
    assert m, f"unexpected base image: {froms[0]}"
    airflow_version, python_version = m.groups()
    assert airflow_version == pinned(ROOT / "requirements.txt", "apache-airflow")
    assert airflow_version == pinned(ROOT / "requirements-lock.txt", "apache-airflow")
    assert python_version == "3.11"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"python3\.11\b", makefile), "Makefile's Python differs from the image's"


def test_dockerfile_installs_the_package_under_the_images_constraints(dockerfile_lines):
    installs = [
        i
        for i, line in enumerate(dockerfile_lines)
        if line.upper().startswith("RUN ") and re.search(r"\bpip install\b", line)
    ]
    assert len(installs) == 1, "expected one pip install"
    i = installs[0]
    line = dockerfile_lines[i]
    assert "--no-cache-dir" in line
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in line, "keep the image's Airflow, not a second pin"
    assert re.search(r"--constraint\s+\"\$\{HOME\}/constraints\.txt\"", line)
    assert re.search(r"\s/opt/airflow/src(\s|$)", line), "installs the package (pip install .)"
    users = [row.split()[1] for row in dockerfile_lines[:i] if row.upper().startswith("USER ")]
    assert users and users[-1] == "airflow", "pip must run as the airflow user"
    copied = {row.split()[-2].rstrip("/") for row in dockerfile_lines[:i] if row.upper().startswith("COPY ")}
    assert {"plugins", "include"} <= copied, "the package's code and SQL must be in the image"
    assert "pyproject.toml" in " ".join(dockerfile_lines[:i])


def test_dockerfile_ships_simulator_and_devstack(dockerfile_lines):
    copies = [line.split() for line in dockerfile_lines if line.upper().startswith("COPY ")]
    targets = {}
    for parts in copies:
        args = [p for p in parts[1:] if not p.startswith("--")]
        for src in args[:-1]:
            targets[src.rstrip("/")] = args[-1].rstrip("/")
    assert targets.get("zuora_simulator") == "/opt/airflow/zuora_simulator"
    assert targets.get("devstack") == "/opt/airflow/devstack"
    assert (ROOT / "zuora_simulator" / "__main__.py").is_file()


def test_dockerignore(dockerfile_lines):
    patterns = {
        p.strip().rstrip("/")
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    }
    for needed in (".venv", ".git", "logs", ".airflow", ".demo", ".env"):
        assert needed in patterns, f".dockerignore should exclude {needed}"
    assert any("__pycache__" in p for p in patterns)
    # What the Dockerfile copies must stay in the build context.
    for copied in ("pyproject.toml", "plugins", "include", "zuora_simulator", "devstack"):
        assert copied not in patterns, f".dockerignore excludes {copied}, which the Dockerfile copies"


# --- compose: init, pool, health -------------------------------------------------------------


def test_init_creates_the_zuora_api_pool(services):
    init = services["airflow-init"]
    text = expand(command_text(init))
    m = re.search(rf"airflow pools set {settings.POOL} (\d+) ", text)
    assert m and int(m.group(1)) > 0, f"airflow-init does not create the {settings.POOL} pool"
    env = env_of(init)
    assert env["_AIRFLOW_DB_MIGRATE"] == "true"
    # The pool the DAG asks for is the one created here.
    dag = (ROOT / "dags" / "zuora_workflow_sync.py").read_text()
    assert "pool=settings.POOL" in dag


def test_init_runs_before_the_airflow_services(services):
    for name, service in airflow_like(services).items():
        if name in ("airflow-init", "airflow-cli"):
            continue
        cond = (service.get("depends_on") or {}).get("airflow-init", {}).get("condition")
        assert cond == "service_completed_successfully", f"{name} does not wait for airflow-init"


def test_healthchecks(services):
    for name in ("postgres", "redis", "warehouse", "airflow-apiserver"):
        test = (services[name].get("healthcheck") or {}).get("test")
        assert test, f"{name} has no healthcheck"
    api = services["airflow-apiserver"]
    assert (
        "http://localhost:8080/api/v2/monitor/health" in services["airflow-apiserver"]["healthcheck"]["test"]
    )
    assert "8080:8080" in api["ports"]
    assert "pg_isready" in " ".join(services["warehouse"]["healthcheck"]["test"])


def test_service_healthy_dependencies_have_healthchecks(services):
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            continue
        for dep, spec in depends.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if spec.get("condition") == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}, which has no healthcheck"


# --- .env.example ----------------------------------------------------------------------------


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = re.match(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if m and not line.lstrip().startswith("#   "):
            raw = m.group(2)
            values[m.group(1)] = shlex.split(raw, comments=True)[0] if raw.strip() else ""
    return values


def test_env_example_documents_every_required_setting():
    values = env_example()
    for name in required_vars(COMPOSE_FILE.read_text()) | {"AIRFLOW_UID", "FERNET_KEY"}:
        assert name in values, f".env.example does not document {name}"
    assert "Fernet.generate_key()" in (ROOT / ".env.example").read_text()


def test_env_example_connections_are_placeholders_or_demo():
    values = env_example()
    conns = {k: json.loads(v) for k, v in values.items() if k.startswith("AIRFLOW_CONN_")}
    acme = conns["AIRFLOW_CONN_ZUORA_ACME"]
    assert acme["conn_type"] == "zuora"
    assert urlsplit(acme["host"]).scheme == "https"
    assert acme["login"].startswith("<") and acme["password"].startswith("<"), "no real secrets"
    demo = {k: c for k, c in conns.items() if urlsplit(c["host"]).scheme == "http"}
    assert demo, "the demo simulator connection is not documented"
    for name, conn in demo.items():
        assert urlsplit(conn["host"]).hostname == "127.0.0.1", (
            f"{name}: the hook refuses http to non-loopback"
        )
        assert urlsplit(conn["host"]).port == 8090
        assert conn["extra"].get("allow_insecure_http") is True
    for name in ("FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert values[name].startswith("<"), f"{name} in .env.example must be a placeholder"


def test_demo_connections_match_the_simulator_tenants():
    from zuora_simulator.demo import demo_tenants

    known = {(t["client_id"], t["client_secret"]) for t in demo_tenants()}
    demo = [
        json.loads(v)
        for k, v in env_example().items()
        if k.startswith("AIRFLOW_CONN_") and v.startswith("{") and "127.0.0.1" in v
    ]
    assert demo and all((c["login"], c["password"]) in known for c in demo)
