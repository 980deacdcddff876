"""Fixtures of the reliability suite: a migrated warehouse named by the ``zuora_warehouse``
Airflow connection, customers whose Zuora connections point at simulator tenants (or at a
stub server), an export encryption key, and the four library stages run as the DAG runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from zuora import warehouse
from zuora.api.credentials import airflow_connection

ROOT = Path(__file__).resolve().parents[2]

# Fast, bounded retries inside the hook, so a faulty run finishes in seconds.
RETRIES = {"max_attempts": 8, "max_retry_wait": 2, "max_retry_time": 30}


class Env:
    """The warehouse and customers of one test."""

    def __init__(self, uri: str, monkeypatch):
        self.uri = uri
        self.monkeypatch = monkeypatch
        self.key = Fernet.generate_key()
        monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", uri)
        monkeypatch.setenv("ZUORA_EXPORT_ENCRYPTION_KEY", self.key.decode())
        with psycopg.connect(uri) as conn:
            warehouse.apply_migrations(conn)

    def customer(
        self,
        customer_id: str,
        tenant=None,
        *,
        host: str | None = None,
        client_id: str | None = None,
        secret: str | None = None,
        environment: str = "sandbox",
        tenant_group: str | None = None,
        **extra,
    ) -> dict:
        """Register a customer (connection + zuora.customers row) for a tenant or a stub host."""
        conn_id = f"zuora_{customer_id}"
        self.monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                airflow_connection(
                    host or tenant.base_url,
                    client_id or (tenant.client_id if tenant else "b64e42ba-7e1a-4bc6-9146-5e1b420306b5"),
                    secret or (tenant.client_secret if tenant else "stub-secret"),
                    **{"allow_insecure_http": True, "environment": environment, **RETRIES, **extra},
                )
            ),
        )
        with psycopg.connect(self.uri) as conn:
            warehouse.upsert_customer(
                conn,
                customer_id=customer_id,
                name=customer_id.title(),
                zuora_conn_id=conn_id,
                environment=environment,
                tenant_group=tenant_group,
            )
        return {"customer_id": customer_id, "zuora_conn_id": conn_id, "environment": environment}

    def query(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.uri) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture
def env(warehouse_uri, monkeypatch) -> Env:
    return Env(warehouse_uri, monkeypatch)


def stage_process(stage_call: str) -> subprocess.Popen:
    """A Python subprocess (same environment) running ``stage_call``, e.g. an upsert stage."""
    code = "import sys; from zuora import sync\n" + stage_call
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}"}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
