"""The customers whose Zuora tenants are synced (``zuora.customers``)."""

from __future__ import annotations

import enum

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


class Keep(enum.Enum):
    KEEP = "keep"


KEEP = Keep.KEEP  # upsert_customer(tenant_group=KEEP): an existing customer keeps its group


def upsert_customer(
    conn,
    *,
    customer_id: str,
    name: str,
    zuora_conn_id: str,
    environment: str,
    enabled: bool | None = None,
    tenant_group: str | None | Keep = KEEP,
) -> None:
    """Register a customer, or change what is given of an existing one: its name, connection
    and environment always; its enabled flag only when ``enabled`` is True or False (a new
    customer is enabled); its tenant group (a company's sandbox and production customers
    share one) unless ``tenant_group`` is ``KEEP`` (None: no group; new customers: none)."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {ENVIRONMENTS}, not {environment!r}")
    with committing(conn):
        group = tenant_group
        if isinstance(group, Keep):
            row = conn.execute(
                "SELECT tenant_group FROM zuora.customers WHERE customer_id = %s", (customer_id,)
            ).fetchone()
            group = row[0] if row else None
        other = conn.execute(
            "SELECT customer_id FROM zuora.customers WHERE tenant_group = %s AND environment = %s "
            "AND customer_id <> %s",
            (group, environment, customer_id),
        ).fetchone()
        if other:
            raise ValueError(
                f"tenant group {group!r} already has a {environment} customer: "
                f"{other[0]}; a group pairs one sandbox with one production"
            )
        conn.execute(
            "INSERT INTO zuora.customers (customer_id, name, zuora_conn_id, environment, enabled, "
            "tenant_group) VALUES (%(id)s, %(name)s, %(conn_id)s, %(environment)s, "
            "coalesce(%(enabled)s, true), %(group)s) ON CONFLICT (customer_id) DO UPDATE "
            "SET name = excluded.name, zuora_conn_id = excluded.zuora_conn_id, "
            "environment = excluded.environment, "
            "enabled = coalesce(%(enabled)s, customers.enabled), "
            "tenant_group = excluded.tenant_group, updated_at = now() "
            "WHERE (customers.name, customers.zuora_conn_id, customers.environment, customers.enabled, "
            "customers.tenant_group) IS DISTINCT FROM (excluded.name, excluded.zuora_conn_id, "
            "excluded.environment, coalesce(%(enabled)s, customers.enabled), excluded.tenant_group)",
            {
                "id": customer_id,
                "name": name,
                "conn_id": zuora_conn_id,
                "environment": environment,
                "enabled": enabled,
                "group": group,
            },
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
