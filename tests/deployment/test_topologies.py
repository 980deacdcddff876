"""docker-compose.yaml and `make cluster` are one topology: the Airflow settings they share are
defined once (airflow.env), and each sets the same names for its own addresses and secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
