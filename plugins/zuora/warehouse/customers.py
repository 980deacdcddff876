"""The customers whose Zuora tenants are synced (``zuora.customers``)."""

from __future__ import annotations

from zuora.warehouse.transactions import committing

ENVIRONMENTS = ("production", "sandbox")
_FIELDS = ("customer_id", "name", "zuora_conn_id", "environment", "enabled", "created_at",
           "updated_at")


def upsert_customer(conn, *, customer_id: str, name: str, zuora_conn_id: str,
                    environment: str, enabled: bool = True) -> None:
    """Register a customer or change its name, connection, environment or enabled flag."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {ENVIRONMENTS}, not {environment!r}")
    with committing(conn):
        conn.execute(
            "INSERT INTO zuora.customers (customer_id, name, zuora_conn_id, environment, enabled) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (customer_id) DO UPDATE "
            "SET name = excluded.name, zuora_conn_id = excluded.zuora_conn_id, "
            "environment = excluded.environment, enabled = excluded.enabled, updated_at = now() "
            "WHERE (customers.name, customers.zuora_conn_id, customers.environment, customers.enabled) "
            "IS DISTINCT FROM (excluded.name, excluded.zuora_conn_id, excluded.environment, "
            "excluded.enabled)",
            (customer_id, name, zuora_conn_id, environment, enabled))


def list_customers(conn, customer_ids: list[str] | None = None) -> list[dict]:
    """Enabled customers (only those named, when ``customer_ids`` is given), by id."""
    with committing(conn):
        rows = conn.execute(
            f"SELECT {', '.join(_FIELDS)} FROM zuora.customers "
            "WHERE enabled AND (%s::text[] IS NULL OR customer_id = ANY(%s::text[])) "
            "ORDER BY customer_id", (customer_ids, customer_ids)).fetchall()
    return [dict(zip(_FIELDS, row)) for row in rows]
