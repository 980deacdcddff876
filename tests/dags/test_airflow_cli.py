"""The DAG as Airflow's own CLI runs it: `airflow dags test` (the trigger form's params, as the
UI reads them from the REST API, are checked on the cluster: tests/deployment)."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

DAG_ID = "zuora_workflow_sync"


def airflow(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_airflow_dags_test_finishes_with_the_deadline_configured(sync_env, monkeypatch):
    """Airflow 3.3.2 crashes at the end of `dags test` for a DAG with a deadline."""
    tenant = sync_env("acme", workflows=3)
    monkeypatch.setenv("ZUORA_SYNC_DEADLINE_MINUTES", "30")
    result = airflow("dags", "test", DAG_ID)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    with psycopg.connect(sync_env.uri) as conn:
        rows = conn.execute(
            "SELECT status, listed FROM zuora.sync_runs WHERE customer_id = 'acme'"
        ).fetchall()
    assert rows == [("success", len(tenant.workflow_ids()))]
