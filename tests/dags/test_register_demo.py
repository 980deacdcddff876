"""The compose demo's customers: `python -m zuora_simulator.register_demo` (service
zuora-demo-init) adds the customers of `make demo` (Umbrella's drifted pair included) through
add-customer, over https with the simulator's CA, so the first run syncs what `make demo`'s
does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.dags.test_add_customer import airflow_connection, customers
from zuora.api.hook import ZuoraHook
from zuora_simulator.client import running_simulator
from zuora_simulator.demo import (
    CUSTOMER_NAMES,
    UMBRELLA_CUSTOMERS,
    UMBRELLA_GROUP,
    UMBRELLA_PRODUCTION,
    UMBRELLA_SANDBOX,
    UMBRELLA_WORKFLOWS,
    demo_tenants,
    umbrella_tenants,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # two runs of the script, each starting Airflow's CLI once
def test_the_demo_customers_are_added_and_reachable_over_tls(
    airflow_db, warehouse_uri, tmp_path, monkeypatch
):
    with running_simulator(demo=True, tls_dir=tmp_path / "tls") as sim:
        ca = str(tmp_path / "tls" / "ca.pem")
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}",
            "AIRFLOW_CONN_ZUORA_WAREHOUSE": warehouse_uri,
        }
        for _ in range(2):  # every `docker compose up` runs it again
            result = subprocess.run(
                [sys.executable, "-m", "zuora_simulator.register_demo", sim.base_url, "--ca-bundle", ca],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        expected = {customer_id: "sandbox" for customer_id in CUSTOMER_NAMES}
        expected |= {customer_id: env for customer_id, (_, env) in UMBRELLA_CUSTOMERS.items()}
        assert sorted(customers(warehouse_uri)) == sorted(
            (customer_id, f"zuora_demo_{customer_id}", env) for customer_id, env in expected.items()
        )
        with psycopg.connect(warehouse_uri) as conn:
            groups = dict(conn.execute("SELECT customer_id, tenant_group FROM zuora.customers").fetchall())
        assert {c for c, g in groups.items() if g == UMBRELLA_GROUP} == set(UMBRELLA_CUSTOMERS)
        # Umbrella's sandbox was added once, with its drift (12 workflows and a new one)
        tenants = {t["tenant_id"]: t for t in sim.admin.tenants()}
        assert tenants[UMBRELLA_SANDBOX]["workflow_count"] == UMBRELLA_WORKFLOWS + 1
        assert tenants[UMBRELLA_PRODUCTION]["workflow_count"] == UMBRELLA_WORKFLOWS
        for tenant in demo_tenants() + umbrella_tenants():
            assert tenant["client_secret"] not in result.stdout + result.stderr
            conn_id = f"zuora_demo_{tenant['tenant_id']}"
            saved = airflow_connection(conn_id)
            assert saved["host"] == sim.base_url and sim.base_url.startswith("https://")
            # the stored connection as a worker gets it: https, verified with the named CA
            for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
                monkeypatch.delenv(name, raising=False)
            stored = {key: saved[key] for key in ("conn_type", "host", "login", "password")}
            stored["extra"] = saved["extra_dejson"]
            assert stored["extra"]["ca_bundle"] == ca
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(stored))
            listed = list(ZuoraHook(conn_id).list_workflows())
            assert len(listed) == tenants[tenant["tenant_id"]]["workflow_count"]
