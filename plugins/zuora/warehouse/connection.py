"""The warehouse connection: a psycopg 3 connection from the Airflow connection that names
the warehouse (``zuora_warehouse`` by default). Everything that reads or writes the warehouse
opens it here; nothing else about the sync is imported with it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from zuora import settings


@contextlib.contextmanager
def warehouse_connection(conn_id: str = settings.WAREHOUSE_CONN_ID) -> Iterator:
    """A psycopg 3 connection to the warehouse named by an Airflow connection, closed after."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    try:
        yield conn
    finally:
        conn.close()
