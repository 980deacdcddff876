"""A read-only login made the way docker-compose's warehouse-init makes its logins: psql (the
embedded Postgres's) runs include/sql/reader_login.sql with the login, password and connection
limit as psql variables."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from devstack.postgres import installation

SCRIPT = Path(__file__).resolve().parents[2] / "include" / "sql" / "reader_login.sql"


@dataclass(frozen=True)
class Login:
    name: str
    password: str
    uri: str  # the database, as this login


def run_script(database_uri: str, login: str, password: str, connection_limit: int = 5):
    """psql -v login=... -v password=... -v connection_limit=... -f reader_login.sql"""
    variables = {"login": login, "password": password, "connection_limit": str(connection_limit)}
    argv = [str(installation() / "bin" / "psql"), "-X", "-q", "-d", database_uri, "-f", str(SCRIPT)]
    for name, value in variables.items():
        argv += ["-v", f"{name}={value}"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def reader_login(database_uri: str, connection_limit: int = 5) -> Iterator[Login]:
    """A new login of its own (roles are the server's, shared by the tests' databases),
    dropped after, its sessions ended first."""
    name = f"zws_reader_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(16)
    result = run_script(database_uri, name, password, connection_limit)
    assert result.returncode == 0, result.stderr
    parts = urlsplit(database_uri)
    uri = urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port}"))
    try:
        yield Login(name, password, uri)
    finally:
        with psycopg.connect(database_uri, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
            )
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')
