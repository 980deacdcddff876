"""Warehouse fixtures: a migrated template database built once, copied for each test."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg import sql

from zuora import warehouse

TEMPLATE = f"zws_wh_template_{uuid.uuid4().hex[:8]}"


def _server_uri(postgres_server) -> str:
    return postgres_server if isinstance(postgres_server, str) else postgres_server.uri


def _database_uri(server_uri: str, name: str) -> str:
    return f"{server_uri.rpartition('/')[0]}/{name}"


@pytest.fixture(scope="session")
def warehouse_template(postgres_server):
    """A database with every migration applied, used as the template of test databases."""
    server_uri = _server_uri(postgres_server)
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    with psycopg.connect(_database_uri(server_uri, TEMPLATE)) as conn:
        warehouse.apply_migrations(conn)
    yield TEMPLATE
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE)))


@pytest.fixture
def migrated_uri(postgres_server, warehouse_template):
    """A fresh, migrated database for one test; dropped afterwards."""
    server_uri = _server_uri(postgres_server)
    name = f"zws_wh_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(warehouse_template)
            )
        )
    yield _database_uri(server_uri, name)
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


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
