"""Shared fixtures: an isolated Airflow home and a real Postgres.

Postgres is the server named by the Airflow connection ``zuora_warehouse``
(``AIRFLOW_CONN_ZUORA_WAREHOUSE``) when it is set, otherwise an embedded throwaway server.
Each test that asks for ``warehouse_uri`` gets a fresh database of its own on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Airflow reads its configuration at import time: set it before anything imports airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="zws-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")

import psycopg  # noqa: E402
import pytest  # noqa: E402
from psycopg import sql  # noqa: E402

from devstack.postgres import EmbeddedPostgres  # noqa: E402

pytest_plugins = ["zuora_simulator.pytest_plugin"]

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


@pytest.fixture(scope="session")
def airflow_db():
    """Migrate the SQLite metadata DB of the test AIRFLOW_HOME, once per session."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ)


@pytest.fixture(scope="session")
def sync_dag(airflow_db):
    """The zuora_workflow_sync DAG, ready for dag.test()."""
    from airflow.dag_processing.dagbag import DagBag
    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["zuora_workflow_sync"]
    dag.deadline = None  # dag.test() crashes at the end of a run with a deadline (Airflow 3.3.2)
    return dag
