"""The customers whose Zuora tenants are synced (``zuora.customers``)."""

from __future__ import annotations

from zuora.warehouse.transactions import committing

ENVIRONMENTS = ("production", "sandbox")
_FIELDS = (
    "customer_id",
    "name",
    "zuora_conn_id",
    "environment",
    "enabled",
    "tenant_group",
    "created_at",
    "updated_at",
)


def upsert_customer(
    conn,
    *,
    customer_id: str,
    name: str,
    zuora_conn_id: str,
    environment: str,
    enabled: bool = True,
    tenant_group: str | None = None,
) -> None:
    """Register a customer or change its name, connection, environment, enabled flag or
    tenant group (a company's sandbox and production customers share one)."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {ENVIRONMENTS}, not {environment!r}")
    with committing(conn):
        other = conn.execute(
            "SELECT customer_id FROM zuora.customers WHERE tenant_group = %s AND environment = %s "
            "AND customer_id <> %s",
            (tenant_group, environment, customer_id),
        ).fetchone()
        if other:
            raise ValueError(
                f"tenant group {tenant_group!r} already has a {environment} customer: "
                f"{other[0]}; a group pairs one sandbox with one production"
            )
        conn.execute(
            "INSERT INTO zuora.customers (customer_id, name, zuora_conn_id, environment, enabled, "
            "tenant_group) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (customer_id) DO UPDATE "
            "SET name = excluded.name, zuora_conn_id = excluded.zuora_conn_id, "
            "environment = excluded.environment, enabled = excluded.enabled, "
            "tenant_group = excluded.tenant_group, updated_at = now() "
            "WHERE (customers.name, customers.zuora_conn_id, customers.environment, customers.enabled, "
            "customers.tenant_group) IS DISTINCT FROM (excluded.name, excluded.zuora_conn_id, "
            "excluded.environment, excluded.enabled, excluded.tenant_group)",
            (customer_id, name, zuora_conn_id, environment, enabled, tenant_group),
        )


def list_customers(conn, customer_ids: list[str] | None = None) -> list[dict]:
    """Enabled customers (only those named, when ``customer_ids`` is given), by id."""
    with committing(conn):
        rows = conn.execute(
            f"SELECT {', '.join(_FIELDS)} FROM zuora.customers "
            "WHERE enabled AND (%s::text[] IS NULL OR customer_id = ANY(%s::text[])) "
            "ORDER BY customer_id",
            (customer_ids, customer_ids),
        ).fetchall()
    return [dict(zip(_FIELDS, row, strict=True)) for row in rows]
