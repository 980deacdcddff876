"""Drift between a company's sandbox and production: what differs between the workflows of
the two customers of one tenant group, as ``zuora.environment_drift`` sees it.

    drift(conn, tenant_group) -> rows        the view's rows, most interesting first
    summary(rows) -> {state: count}
    format_report(tenant_group, rows) -> str a plain-text report for a terminal
    run(tenant_group=None) -> str            the report of one group, or one line per group

Workflows are matched by name and compared by their id-free fingerprints (see
``zuora.warehouse.fingerprint``), as of each customer's last sync.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

# The view's states, in report order: what needs attention first.
STATES = ("different", "duplicate_name", "only_sandbox", "only_production", "unknown", "same")
LABELS = {
    "different": "different",
    "duplicate_name": "duplicate name",
    "only_sandbox": "only in sandbox",
    "only_production": "only in production",
    "unknown": "not compared",
    "same": "same",
}
COLUMNS = (
    "tenant_group",
    "workflow_name",
    "state",
    "sandbox_customer_id",
    "sandbox_zuora_id",
    "production_customer_id",
    "production_zuora_id",
    "tasks_only_in_sandbox",
    "tasks_only_in_production",
    "tasks_different",
    "settings_different",
    "sandbox_updated_at",
    "production_updated_at",
    "newer",
    "sandbox_version",
    "production_version",
    "sandbox_fingerprint",
    "production_fingerprint",
    "sandbox_zuora_ids",
    "production_zuora_ids",
)
SIDES = ("sandbox", "production")
HOW_TO_PAIR = (
    "give the company's sandbox and production customers the same tenant group "
    "(python -m zuora.cli add-customer ... --tenant-group GROUP, or "
    "zuora.customers.tenant_group)"
)


def drift(conn, tenant_group: str) -> list[dict[str, Any]]:
    """The rows of ``zuora.environment_drift`` for one group: different, duplicate names,
    only in sandbox, only in production, not compared, same; by workflow name within each."""
    rows = _read(
        conn,
        f"""
        SELECT {", ".join(COLUMNS)} FROM zuora.environment_drift
         WHERE tenant_group = %s
         ORDER BY array_position(%s::text[], state), lower(workflow_name) COLLATE "C" NULLS FIRST,
                  workflow_name COLLATE "C", sandbox_zuora_id, production_zuora_id""",
        (tenant_group, list(STATES)),
    )
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    """``{state: number of workflows}`` for every state, in report order."""
    counts = dict.fromkeys(STATES, 0)
    for row in rows:
        counts[row["state"]] += 1
    return counts


def group_customers(conn, tenant_group: str | None = None) -> dict[str, dict[str, dict]]:
    """``{group: {environment: customer}}`` (one group, or every group); a customer is
    ``customer_id``, ``name``, ``enabled`` and ``last_synced_at`` (its last successful sync)."""
    rows = _read(
        conn,
        """
        SELECT c.tenant_group, c.environment, c.customer_id, c.name, c.enabled,
               (SELECT max(r.finished_at) FROM zuora.sync_runs r
                 WHERE r.customer_id = c.customer_id AND r.status = 'success')
          FROM zuora.customers c
         WHERE c.tenant_group IS NOT NULL AND (%s::text IS NULL OR c.tenant_group = %s)
         ORDER BY c.tenant_group, c.environment""",
        (tenant_group, tenant_group),
    )
    groups: dict[str, dict[str, dict]] = {}
    for group, environment, customer_id, name, enabled, synced in rows:
        groups.setdefault(group, {})[environment] = {
            "customer_id": customer_id,
            "name": name,
            "enabled": enabled,
            "last_synced_at": synced,
        }
    return groups


def format_report(
    tenant_group: str, rows: list[dict[str, Any]], customers: dict[str, dict] | None = None
) -> str:
    """The drift of one group as plain text (no final newline): the two customers, counts
    per state, then one entry per workflow. ``customers`` (``group_customers(conn, group)[group]``) adds names
    and last sync times to the header."""
    customers = customers or {}
    lines = [f"Drift between the environments of tenant group {tenant_group}"]
    for side in SIDES:
        lines.append(f"  {side + ':':<12}{_customer_line(side, rows, customers.get(side))}")
    counts = summary(rows)
    lines.append("")
    if not rows:
        lines.append("No current workflows on either side (not synced yet?).")
        return "\n".join(lines)
    shown = [
        f"{counts[state]} {LABELS[state]}"
        for state in STATES
        if counts[state] or state in ("different", "only_sandbox", "only_production", "same")
    ]
    lines.append(f"{len(rows)} workflow names: {', '.join(shown)}")
    width = max(len(LABELS[row["state"]]) for row in rows) + 2
    for state in STATES:
        entries = [row for row in rows if row["state"] == state]
        if not entries:
            continue
        lines.append("")
        for row in entries:
            lines.append(f"{LABELS[state]:<{width}}{_name(row['workflow_name'])}")
            lines.extend(" " * width + detail for detail in _details(row))
    return "\n".join(lines)


def format_overview(groups: dict[str, dict[str, dict]], counts: dict[str, dict[str, int]]) -> str:
    """One line per tenant group: its two customers and its counts per state."""
    if not groups:
        return f"No tenant groups yet: {HOW_TO_PAIR}."
    width = max(len(group) for group in groups) + 2
    lines = []
    for group, sides in sorted(groups.items()):
        pair = " vs ".join(sides[side]["customer_id"] if side in sides else f"(no {side})" for side in SIDES)
        if all(side in sides for side in SIDES):
            found = counts.get(group, {})
            total = sum(found.values())
            shown = ", ".join(f"{found[state]} {LABELS[state]}" for state in STATES if found.get(state))
            status = f"{total} workflow names: {shown}" if total else "no current workflows"
        else:
            missing = next(side for side in SIDES if side not in sides)
            status = f"not compared: no {missing} customer"
        lines.append(f"{group:<{width}}{pair}  {status}")
    return "\n".join(lines)


def run(tenant_group: str | None = None) -> str:
    """The report of ``tenant_group``, or the overview of every group when None. Raises
    SystemExit with what to do when the group is unknown or lacks one of its customers."""
    from zuora.warehouse.connection import warehouse_connection

    with warehouse_connection() as conn:
        groups = group_customers(conn, tenant_group)
        if tenant_group is None:
            counts: dict[str, dict[str, int]] = {}
            for group, state, count in _read(
                conn,
                """
                    SELECT tenant_group, state, count(*) FROM zuora.environment_drift
                     GROUP BY tenant_group, state""",
                (),
            ):
                counts.setdefault(group, {})[state] = count
            return format_overview(groups, counts)
        if tenant_group not in groups:
            known = sorted(group_customers(conn))
            raise SystemExit(
                f"Unknown tenant group {tenant_group!r}: no customer in zuora.customers has it "
                f"(known groups: {', '.join(known) if known else 'none'}). To compare a company's "
                f"environments, {HOW_TO_PAIR}, sync both, then run drift again."
            )
        sides = groups[tenant_group]
        for side in SIDES:
            if side not in sides:
                other = next(s for s in SIDES if s != side)
                raise SystemExit(
                    f"Tenant group {tenant_group!r} has no {side} customer, only the {other} "
                    f"customer {sides[other]['customer_id']}: register the company's {side} "
                    f"customer with tenant group {tenant_group!r} (python -m zuora.cli "
                    f"add-customer ... --tenant-group {tenant_group}, or "
                    f"zuora.customers.tenant_group), sync it, then run drift again."
                )
        return format_report(tenant_group, drift(conn, tenant_group), sides)


# --- helpers ----------------------------------------------------------------------------


def _read(conn, query: str, params: tuple) -> list[tuple]:
    """Rows of a read-only query; ends the implicit transaction it opened (not the caller's)."""
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    rows = conn.execute(query, params).fetchall()
    if idle and not conn.autocommit:
        conn.rollback()
    return rows


def _customer_line(side: str, rows: list[dict], customer: dict | None) -> str:
    if customer is None:
        customer_id = next((row[f"{side}_customer_id"] for row in rows), None)
        return customer_id or "(unknown)"
    text = customer["customer_id"]
    if customer.get("name") and customer["name"] != customer["customer_id"]:
        text += f' "{customer["name"]}"'
    synced = customer.get("last_synced_at")
    text += f", last synced {_time(synced)}" if synced else ", never synced"
    if customer.get("enabled") is False:
        text += ", disabled"
    return text


def _details(row: dict[str, Any]) -> list[str]:
    state = row["state"]
    if state == "same":
        return []
    if state == "duplicate_name":
        return [_duplicates(side, row[f"{side}_zuora_ids"]) for side in SIDES if row[f"{side}_zuora_ids"]] + [
            "not compared: rename them so each name is unique"
        ]
    if state in ("only_sandbox", "only_production"):
        return [_side(row, state.removeprefix("only_"))]
    lines = [_side(row, side) + ("  (newer)" if row["newer"] == side else "") for side in SIDES]
    if state == "unknown":
        missing = [side for side in SIDES if row[f"{side}_fingerprint"] is None]
        lines.append(
            f"no fingerprint yet in {' and '.join(missing)} (not exported yet, or "
            "stored before fingerprints): not compared"
        )
    if state == "different":
        for key, label in (
            ("tasks_different", "tasks different"),
            ("tasks_only_in_sandbox", "tasks only in sandbox"),
            ("tasks_only_in_production", "tasks only in production"),
        ):
            if row[key]:
                lines.append(f"{label}: {', '.join(row[key])}")
        if row["settings_different"]:
            lines.append("workflow settings different (name, triggers, schedule, parameters...)")
    return lines


def _side(row: dict[str, Any], side: str) -> str:
    parts = [f"id {row[f'{side}_zuora_id']}"]
    if row[f"{side}_version"]:
        parts.append(f"version {row[f'{side}_version']}")
    if row[f"{side}_updated_at"]:
        parts.append(f"updated {_time(row[f'{side}_updated_at'])}")
    return f"{side + ':':<12}{', '.join(parts)}"


def _name(name: str | None) -> str:
    return "(no name)" if name is None else name


def _duplicates(side: str, ids: list[int]) -> str:
    if len(ids) == 1:
        return f"{side + ':':<12}1 workflow of this name, id {ids[0]}"
    return f"{side + ':':<12}{len(ids)} workflows of this name, ids {', '.join(map(str, ids))}"


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
