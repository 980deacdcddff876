"""docker-compose.yaml and `make cluster` are one topology: the Airflow settings they share are
defined once (airflow.env), and each sets the same names for its own addresses and secrets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from devstack import cluster

ROOT = Path(__file__).resolve().parents[2]


def compose_common() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["x-airflow-common"]


def test_compose_reads_the_shared_settings_and_never_redefines_them():
    common = compose_common()
    assert common["env_file"][0] == "airflow.env"
    shared = cluster.shared_settings()
    services = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    for name, service in services.items():
        redefined = set(service.get("environment") or {}) & set(shared)
        assert not redefined, f"{name} redefines {redefined}: change airflow.env instead"


def test_both_topologies_set_the_same_addresses_and_secrets():
    compose = set(compose_common()["environment"]) - {"AIRFLOW_CONFIG"}
    local = set(cluster.topology_settings(Path("/x"), 1, 2, 3, {"fernet_key": "f", "jwt_secret": "j"}))
    assert compose == local


def interpolated(value: str) -> str:
    """A compose value with each ``${NAME:-default}`` replaced by its default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


METADATA, RESULTS, BROKER = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__BROKER_URL",
)
EXECUTION_API, WAREHOUSE = "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW_CONN_ZUORA_WAREHOUSE"
SECRETS = {"AIRFLOW__CORE__FERNET_KEY": "fernet_key", "AIRFLOW__API_AUTH__JWT_SECRET": "jwt_secret"}


def test_both_topologies_point_each_setting_at_the_same_kind_of_place():
    """Hosts and ports differ; what each address is (driver, database, broker database, API
    path), and which addresses share a database, must not."""
    home = Path("/x")
    compose = {k: interpolated(v) for k, v in compose_common()["environment"].items()}
    local = cluster.topology_settings(home, 5432, 6379, 8080, {"fernet_key": "f", "jwt_secret": "j"})

    for name in (METADATA, RESULTS, BROKER, EXECUTION_API, WAREHOUSE):
        ours, theirs = urlsplit(local[name]), urlsplit(compose[name])
        assert (ours.scheme, ours.path) == (theirs.scheme, theirs.path), name
    assert urlsplit(local[METADATA]).scheme == "postgresql+psycopg" and urlsplit(local[BROKER]).path == "/0"
    assert urlsplit(local[WAREHOUSE]).path == "/warehouse" and urlsplit(local[METADATA]).path == "/airflow"
    for env in (compose, local):
        metadata, results = urlsplit(env[METADATA]), urlsplit(env[RESULTS].removeprefix("db+"))
        warehouse = urlsplit(env[WAREHOUSE])
        where = (metadata.hostname, metadata.port, metadata.path)
        assert (results.hostname, results.port, results.path) == where  # Celery results: the metadata DB
        assert (warehouse.hostname, warehouse.port, warehouse.path) != where  # a database of its own
    assert urlsplit(local[EXECUTION_API]).port == 8080  # the API server's port
    # secrets: compose requires them from .env, the cluster passes its own generated keys
    for name, key in SECRETS.items():
        assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", compose[name]), name
        assert local[name] == {"fernet_key": "f", "jwt_secret": "j"}[key]
    passwords = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
    assert local[passwords] == str(home / "passwords.json") and compose[passwords].endswith(".json")


def test_the_shared_settings_load_the_celery_executor():
    """What the scheduler and a worker import first (celery 5.7.0 broke it: issue 11)."""
    code = (
        "from airflow.executors.executor_loader import ExecutorLoader\n"
        "executor = ExecutorLoader.get_default_executor()\n"
        "from airflow.providers.celery.executors.celery_executor_utils import app\n"
        "print(type(executor).__name__, app.main)"
    )
    env = {**os.environ, **cluster.shared_settings()}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].split()[0] == "CeleryExecutor"
