"""Fixtures for DAG tests: a warehouse with customers whose connections point at simulator
tenants (the Airflow metadata DB and the DAG come from tests/conftest.py)."""

from __future__ import annotations

import json

import psycopg
import pytest

from zuora import warehouse
from zuora.api.credentials import airflow_connection


@pytest.fixture
def sync_env(airflow_db, warehouse_uri, sim_tenant, monkeypatch):
    """add_customer(customer_id, tenant=None, **tenant_config) registers a customer whose
    connection points at a (new) simulator tenant; returns the tenant."""
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", warehouse_uri)
    # these tests count current-definition calls; the history backfill is tested in tests/history
    monkeypatch.setenv("ZUORA_SYNC_HISTORY_CALLS", "0")
    with psycopg.connect(warehouse_uri) as conn:
        warehouse.apply_migrations(conn)

    def add_customer(customer_id: str, tenant=None, secret: str | None = None, **config):
        tenant = tenant or sim_tenant(prefix=customer_id, **config)
        conn_id = f"zuora_{customer_id}"
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                airflow_connection(
                    tenant.base_url,
                    tenant.client_id,
                    secret or tenant.client_secret,
                    allow_insecure_http=True,
                    environment="sandbox",
                    max_attempts=3,
                    max_retry_wait=2,
                )
            ),
        )
        with psycopg.connect(warehouse_uri) as conn:
            warehouse.upsert_customer(
                conn,
                customer_id=customer_id,
                name=customer_id.title(),
                zuora_conn_id=conn_id,
                environment="sandbox",
            )
        return tenant

    add_customer.uri = warehouse_uri
    return add_customer
