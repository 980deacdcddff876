"""Warehouse fixtures: a connection to a fresh migrated database (``migrated_uri``, in
tests/conftest.py) with two customers, and an export key."""

from __future__ import annotations

import psycopg
import pytest
from cryptography.fernet import Fernet

from zuora import warehouse


@pytest.fixture
def conn(migrated_uri):
    """A connection like ``PostgresHook.get_conn()`` gives: psycopg 3, not autocommit."""
    with psycopg.connect(migrated_uri) as connection:
        warehouse.upsert_customer(
            connection,
            customer_id="acme",
            name="Acme Corp",
            zuora_conn_id="zuora_acme",
            environment="sandbox",
        )
        warehouse.upsert_customer(
            connection,
            customer_id="globex",
            name="Globex",
            zuora_conn_id="zuora_globex",
            environment="production",
        )
        yield connection


@pytest.fixture
def key() -> bytes:
    return Fernet.generate_key()
