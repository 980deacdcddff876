"""The Zuora sync page through the api-server's real app (``create_app()``): Airflow's metadata
DB (SQLite, migrated once), the simple auth manager with three users, the warehouse a fresh
migrated database per test (``AIRFLOW_CONN_ZUORA_WAREHOUSE``)."""

from __future__ import annotations

import os
import secrets

import pytest

# admin and a viewer may read every DAG; "outsider" is a user with no role: no DAG at all
USERS = "admin:admin,viewer1:viewer,outsider:"


@pytest.fixture(scope="session")
def api_app(airflow_db):
    """The api-server's FastAPI app as `airflow api-server` builds it."""
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = USERS
    os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(48))
    os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    from airflow.api_fastapi.app import create_app

    return create_app()


@pytest.fixture(scope="session")
def tokens(api_app) -> dict[str, str]:
    """A JWT per user from the auth manager's own login endpoint (POST /auth/token)."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from fastapi.testclient import TestClient

    passwords = SimpleAuthManager.get_passwords()
    found = {}
    with TestClient(api_app) as client:
        for user in ("admin", "viewer1", "outsider"):
            answer = client.post("/auth/token", json={"username": user, "password": passwords[user]})
            assert answer.status_code in (200, 201), answer.text
            found[user] = answer.json()["access_token"]
    return found


@pytest.fixture
def client(api_app, migrated_uri, monkeypatch):
    """An HTTP client of the api-server whose warehouse is a fresh migrated database."""
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", migrated_uri)
    with TestClient(api_app) as test_client:
        yield test_client


@pytest.fixture
def reader(migrated_uri, monkeypatch):
    """A login of the test's warehouse that may only read it (include/sql/reader_login.sql,
    as docker-compose makes zuora_page), set as the Airflow connection the page reads through."""
    from tests.warehouse.reader_logins import reader_login
    from zuora import settings
    from zuora.ui import reading

    with reader_login(migrated_uri, connection_limit=reading.MAX_READERS + 2) as login:
        monkeypatch.setenv(f"AIRFLOW_CONN_{settings.WAREHOUSE_READER_CONN_ID.upper()}", login.uri)
        yield login
