"""Installed the way a team adds it to its own Airflow: a fresh virtualenv with Airflow from
the lock, then `pip install .` (not editable), our dags/ as the DAG folder and nothing of the
source tree on the path. Airflow's own tools must see the provider, its connection form and
our DAGs, and test a connection against the simulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.deployment.conftest import copy_of_the_source
from zuora.api.credentials import airflow_connection

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, env): a fresh venv with Airflow and the postgres provider from the lock, our
    package installed from a copy of the source (so nothing can leak in from the tree)."""
    base = tmp_path_factory.mktemp("install")
    venv.create(base / "venv")  # no pip of its own: this project's pinned pip installs into it
    python = str(base / "venv" / "bin" / "python")
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-compile",
        "--disable-pip-version-check",
    ]
    lock = ["-c", str(ROOT / "requirements-lock.txt")]
    pins = [
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith(
            ("apache-airflow==", "apache-airflow-task-sdk==", "apache-airflow-providers-postgres==")
        )
    ]
    subprocess.run([*pip, *pins, *lock], check=True, timeout=900, cwd=base)
    source = copy_of_the_source(base / "source")
    subprocess.run([*pip, str(source), *lock], check=True, timeout=900, cwd=base)
    shutil.rmtree(source)  # the installed package must stand alone
    home = base / "airflow"
    (home / "plugins").mkdir(parents=True)
    env = {
        "PATH": f"{base / 'venv' / 'bin'}:{os.environ['PATH']}",
        "HOME": str(base),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }
    subprocess.run(
        [python, "-m", "airflow", "db", "migrate"],
        env=env,
        cwd=base,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return python, env, base


def run(installed, *args, **env) -> subprocess.CompletedProcess:
    python, base_env, cwd = installed
    return subprocess.run(
        [python, *args], env={**base_env, **env}, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def last_line(result: subprocess.CompletedProcess) -> str:
    """What a command printed last (Airflow prints warnings on stdout before it)."""
    return result.stdout.strip().splitlines()[-1]


PROVIDER = """
import json
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
hook = pm.hooks["zuora"]
import zuora
print(json.dumps({"provider": "zuora-workflow-sync" in pm.providers,
                  "hook": hook.hook_class_name, "package_file": zuora.__file__,
                  "widgets": sorted(k for k in pm.connection_form_widgets if k.startswith("extra__zuora__")),
                  "behaviour": pm.field_behaviours.get("zuora"),
                  "notifications": [n for n in pm.notification if n.startswith("zuora.")]}))
"""


def test_the_providers_manager_sees_the_hook_and_its_form(installed):
    result = run(installed, "-c", PROVIDER)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(last_line(result))
    assert seen["provider"] and seen["hook"] == "zuora.api.hook.ZuoraHook"
    assert "site-packages" in seen["package_file"]
    assert seen["widgets"] == [
        "extra__zuora__allow_custom_host",
        "extra__zuora__environment",
        "extra__zuora__max_concurrency",
        "extra__zuora__page_length",
    ]
    assert seen["behaviour"]["hidden_fields"] == ["schema", "port"]
    assert seen["behaviour"]["relabeling"]["login"] == "Client ID"
    assert seen["notifications"] == ["zuora.notifications.alerts.ZuoraAlertNotifier"]


API_SERVER = """
import json
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app
with TestClient(create_app()) as client:   # all users admins: the test's requests are logged in
    hook_meta = client.get("/ui/connections/hook_meta")
    hook_meta.raise_for_status()
    plugins = client.get("/api/v2/plugins").json()["plugins"]
    page = client.get("/zuora-sync/")
    print(json.dumps({"hook_meta": [m for m in hook_meta.json() if m["connection_type"] == "zuora"],
                      "plugins": {p["name"]: p["source"] for p in plugins},
                      "status": page.status_code, "has_customer": ">acme</a>" in page.text}))
"""


def test_the_api_server_serves_our_connection_form_and_sync_page(installed, migrated_uri):
    """What the React UI's connection form is built from (the API server's hook metadata),
    and our page: the plugin comes from the installed distribution's entry point, its
    templates from the wheel's package data. (One app for both: creating it costs ~7 CPU-s.)"""
    import psycopg

    from zuora import warehouse

    with psycopg.connect(migrated_uri) as conn:
        warehouse.upsert_customer(
            conn, customer_id="acme", name="Acme", zuora_conn_id="zuora_acme", environment="sandbox"
        )
    result = run(installed, "-c", API_SERVER, AIRFLOW_CONN_ZUORA_WAREHOUSE=migrated_uri)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(last_line(result))
    [meta] = seen["hook_meta"]
    assert meta["hook_name"] == "Zuora"
    standard = meta["standard_fields"]
    assert (
        standard["host"]["title"] == "REST base URL" and "rest.zuora.com" in standard["host"]["placeholder"]
    )
    assert standard["login"]["title"] == "Client ID"
    assert standard["port"]["hidden"] and standard["url_schema"]["hidden"]
    extra = meta["extra_fields"]
    assert extra["page_length"]["schema"]["maximum"] == 50
    assert extra["environment"]["schema"]["enum"] == ["production", "sandbox", None]
    assert set(extra) == {"environment", "page_length", "max_concurrency", "allow_custom_host"}

    assert seen["plugins"]["zuora_sync"].startswith("zuora-workflow-sync==")
    assert seen["status"] == 200 and seen["has_customer"]


def test_our_dags_import_without_errors(installed):
    parsed = run(installed, "-m", "airflow", "dags", "reserialize")  # what the dag-processor does
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    result = run(installed, "-m", "airflow", "dags", "list-import-errors", "-o", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(last_line(result)) == []
    listed = run(installed, "-m", "airflow", "dags", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert sorted(d["dag_id"] for d in json.loads(last_line(listed))) == [
        "zuora_sync_monitor",
        "zuora_workflow_restore",
        "zuora_workflow_sync",
    ]


def test_airflow_connections_test_reaches_the_simulator(installed, sim_tenant):
    tenant = sim_tenant(workflows=2)
    good = json.dumps(
        airflow_connection(tenant.base_url, tenant.client_id, tenant.client_secret, allow_insecure_http=True)
    )
    result = run(
        installed, "-m", "airflow", "connections", "test", "zuora_probe", AIRFLOW_CONN_ZUORA_PROBE=good
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "Connection success!" in result.stdout
    assert tenant.stats()["requests"]["list"] == 1

    bad = json.loads(good) | {"password": "not-the-secret"}
    result = run(
        installed,
        "-m",
        "airflow",
        "connections",
        "test",
        "zuora_probe",
        AIRFLOW_CONN_ZUORA_PROBE=json.dumps(bad),
    )
    assert "Connection failed" in result.stdout and "refused the client credentials" in result.stdout
    assert "not-the-secret" not in result.stdout + result.stderr


STATSD_BACKEND = """
from airflow.sdk.observability.metrics import stats_utils
print(type(stats_utils.get_stats_factory()()).__name__)
"""


def test_statsd_metrics_work_after_a_plain_install(installed):
    """`pip install .` brings Airflow's StatsD backend (the `statsd` extra): with statsd_on the
    task-side Stats is a StatsD client, not the NoStatsLogger that drops every metric."""
    result = run(installed, "-c", STATSD_BACKEND, AIRFLOW__METRICS__STATSD_ON="True")
    assert result.returncode == 0, result.stderr[-3000:]  # ImportError: No module named 'statsd'
    assert last_line(result) == "SafeStatsdLogger"
