"""The DAG as Airflow's own tools see it: `airflow dags test`, and the trigger form's params
through the REST API the UI reads them from."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg

DAG_ID = "zuora_workflow_sync"


def airflow(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow", *args], env=os.environ,
                          capture_output=True, text=True, timeout=timeout)


def test_airflow_dags_test_finishes_with_the_deadline_configured(sync_env, monkeypatch):
    """Airflow 3.3.2 crashes at the end of `dags test` for a DAG with a deadline."""
    tenant = sync_env("acme", workflows=3)
    monkeypatch.setenv("ZUORA_SYNC_DEADLINE_MINUTES", "30")
    result = airflow("dags", "test", DAG_ID)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    with psycopg.connect(sync_env.uri) as conn:
        rows = conn.execute("SELECT status, listed FROM zuora.sync_runs "
                            "WHERE customer_id = 'acme'").fetchall()
    assert rows == [("success", len(tenant.workflow_ids()))]


REST_PARAMS = """
import json
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app
with TestClient(create_app()) as client:
    response = client.get("/api/v2/dags/%s/details")
    response.raise_for_status()
    print(json.dumps(response.json()["params"]))
""" % DAG_ID


def test_trigger_form_params_are_optional(airflow_db, monkeypatch):
    """The UI marks a param required unless its schema type admits null."""
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    reserialized = airflow("dags", "reserialize")
    assert reserialized.returncode == 0, reserialized.stderr[-3000:]
    result = subprocess.run([sys.executable, "-c", REST_PARAMS], env=os.environ,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    params = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(params) == {"customer_ids", "full_refresh"}
    for name, param in params.items():
        assert "null" in param["schema"]["type"], (name, param)
        assert param["description"], name
    assert params["customer_ids"]["value"] == [] and params["full_refresh"]["value"] is False
