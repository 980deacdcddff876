"""Fixtures for DAG tests: an Airflow metadata DB (SQLite) and a warehouse with customers
whose connections point at simulator tenants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from zuora import warehouse

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_db():
    """Migrate the SQLite metadata DB of the test AIRFLOW_HOME once per session."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ)


@pytest.fixture
def sync_env(airflow_db, warehouse_uri, sim_tenant, monkeypatch):
    """add_customer(customer_id, tenant=None, **tenant_config) registers a customer whose
    connection points at a (new) simulator tenant; returns the tenant."""
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", warehouse_uri)
    with psycopg.connect(warehouse_uri) as conn:
        warehouse.apply_migrations(conn)

    def add_customer(customer_id: str, tenant=None, secret: str | None = None, **config):
        tenant = tenant or sim_tenant(prefix=customer_id, **config)
        conn_id = f"zuora_{customer_id}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
            "conn_type": "zuora", "host": tenant.base_url, "login": tenant.client_id,
            "password": secret or tenant.client_secret,
            "extra": {"allow_insecure_http": True, "environment": "sandbox",
                      "max_attempts": 3, "max_retry_wait": 2}}))
        with psycopg.connect(warehouse_uri) as conn:
            warehouse.upsert_customer(conn, customer_id=customer_id, name=customer_id.title(),
                                      zuora_conn_id=conn_id, environment="sandbox")
        return tenant

    add_customer.uri = warehouse_uri
    return add_customer
