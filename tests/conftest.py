"""Shared fixtures: an isolated Airflow home and a real Postgres.

Postgres is the server named by the Airflow connection ``zuora_warehouse``
(``AIRFLOW_CONN_ZUORA_WAREHOUSE``) when it is set, otherwise an embedded throwaway server.
Each test that asks for ``warehouse_uri`` gets a fresh database of its own on it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]

# Airflow reads its configuration at import time: set it before anything imports airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="zws-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
# one key for this process and the Airflow CLI processes it starts (the tests read connections
# the CLI stored), not one the first of them writes to airflow.cfg after this one read its config
os.environ["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()

import psycopg  # noqa: E402
import pytest  # noqa: E402
from psycopg import sql  # noqa: E402

from devstack.postgres import EmbeddedPostgres  # noqa: E402

pytest_plugins = ["zuora_simulator.pytest_plugin"]

# `make test` runs the tests in parallel: pytest-xdist, `--dist loadfile` (pytest.ini), each
# module on one test worker. The cluster is a module fixture (stopped as soon as its module
# ends, not at the end of the run), so every test of it is in one module. The modules of
# long-lived processes (a cluster, an install) start first, one per worker, each with one slow
# module queued behind it (a worker takes one module ahead); the short modules then fill
# whichever worker is free, so no slow one is left to run alone at the end.
# (Not `--dist loadgroup`: xdist 3.8 names a test by its group in a way pytest 9 ignores.)
LONG_LIVED = ("deployment", "installed")
CLUSTER_MODULE = "tests/deployment/test_cluster.py"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "deployment" in item.fixturenames and item.nodeid.split("::")[0] != CLUSTER_MODULE:
            raise pytest.UsageError(f"{item.nodeid}: tests of the cluster belong in {CLUSTER_MODULE}")

    def rank(item) -> int:
        if any(name in item.fixturenames for name in LONG_LIVED):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    ranks: dict[str, int] = {}  # module -> its first rank, so its tests stay together and in order
    for item in items:
        module = item.nodeid.split("::")[0]
        ranks[module] = min(ranks.get(module, 2), rank(item))
    items.sort(key=lambda item: ranks[item.nodeid.split("::")[0]])


WAREHOUSE_ENV = "AIRFLOW_CONN_ZUORA_WAREHOUSE"


@pytest.fixture(scope="session")
def postgres_server():
    """Yields the URI of a Postgres server (maintenance database) for the whole session."""
    given = os.environ.get(WAREHOUSE_ENV)
    if given:
        yield given
        return
    with EmbeddedPostgres() as pg:
        yield pg


@pytest.fixture
def warehouse_uri(postgres_server):
    """A fresh, empty database for one test; dropped afterwards."""
    server_uri = postgres_server if isinstance(postgres_server, str) else postgres_server.uri
    name = f"zws_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = server_uri.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# one migrated template database per session, copied for each test that wants a migrated warehouse
TEMPLATE = f"zws_wh_template_{uuid.uuid4().hex[:8]}"


def _server_uri(postgres_server) -> str:
    return postgres_server if isinstance(postgres_server, str) else postgres_server.uri


def _database_uri(server_uri: str, name: str) -> str:
    return f"{server_uri.rpartition('/')[0]}/{name}"


@pytest.fixture(scope="session")
def warehouse_template(postgres_server):
    """A database with every migration applied, used as the template of test databases."""
    server_uri = _server_uri(postgres_server)
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    from zuora import warehouse

    with psycopg.connect(_database_uri(server_uri, TEMPLATE)) as conn:
        warehouse.apply_migrations(conn)
    yield TEMPLATE
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE)))


@pytest.fixture
def migrated_uri(postgres_server, warehouse_template):
    """A fresh, migrated database for one test; dropped afterwards."""
    server_uri = _server_uri(postgres_server)
    name = f"zws_wh_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(warehouse_template)
            )
        )
    yield _database_uri(server_uri, name)
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory):
    """The SQLite metadata DB of this process's AIRFLOW_HOME, migrated: by `airflow db migrate`
    in the first test worker that needs one, copied from it by the others (~4.5 CPU-s each)."""
    database = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    run_dir = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_dir = run_dir.parent  # shared by this run's test workers
    migrated = run_dir / "migrated-airflow.db"
    with open(run_dir / "migrated-airflow.db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if migrated.exists() and not database.exists():
            shutil.copyfile(migrated, database)
        else:
            airflow = Path(sys.executable).with_name("airflow")
            subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ)
            if not migrated.exists():
                shutil.copyfile(database, migrated)


@pytest.fixture(scope="session")
def sync_dag(airflow_db):
    """The zuora_workflow_sync DAG, ready for dag.test()."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["zuora_workflow_sync"]
    dag.deadline = None  # dag.test() crashes at the end of a run with a deadline (Airflow 3.3.2)
    return dag


class _StubZuora(BaseHTTPRequestHandler):
    """A broken Zuora for what the simulator cannot do: ``server.pages[path] -> (status, bytes)``."""

    def do_POST(self):
        self._send(200, json.dumps({"access_token": "0" * 32, "expires_in": 3599}).encode())

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        self._send(*self.server.pages.get(path, (404, b'{"errors":[{"code":"not_found"}]}')))

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_zuora():
    """stub_zuora({path: (status, body)}) -> the base URL of a stub server answering those."""
    servers = []

    def start(pages: dict) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _StubZuora)
        server.pages = pages
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
