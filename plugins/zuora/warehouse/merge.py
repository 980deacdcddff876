"""The merge: one customer's validated staging into the warehouse, in one transaction.

Under a per-customer advisory lock, ``merge_customer``:
1. plans each stored list item: insert, update, restore, unchanged or stale;
2. upserts ``workflows`` (unchanged rows are not rewritten, older never beats newer) and
   ``workflow_definitions``, and appends ``workflow_history``;
3. soft-deletes workflows missing from a *complete* listing;
4. records dead letters, resolves those this run fixed, flags review issues, and the status
   transitions it applied (``workflow_events``: activated, deactivated, version changed);
5. checks listed = stored + dead-lettered, records the counts in ``sync_runs`` and removes
   the customer's staging rows. Any error rolls everything back, staging included.
"""

from __future__ import annotations

import logging

from zuora.warehouse.sql import sql_text
from zuora.warehouse.staging import clear_staging
from zuora.warehouse.transactions import committing

log = logging.getLogger(__name__)

MERGE_LOCK_CLASS = 0x7A77  # first key of the two-key advisory lock; second = hash of customer
BOOKKEEPING = ["first_seen_at", "last_seen_at", "last_changed_at", "last_run_id"]
COUNT_COLUMNS = (
    "listed",
    "stored",
    "dead_lettered",
    "inserted",
    "updated",
    "unchanged",
    "restored",
    "stale",
    "deleted",
    "invalid",
    "definitions_changed",
    "exports_failed",
)


def _sql(name: str) -> str:
    return sql_text(f"merge/{name}.sql")


def lock_customer(conn, customer_id: str) -> None:
    """Take the customer's merge lock until the current transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (MERGE_LOCK_CLASS, customer_id))


def _plan_counts(conn) -> dict[str, int]:
    row = conn.execute("""
        SELECT count(*) FILTER (WHERE kind = 'insert'),
               count(*) FILTER (WHERE kind = 'update'),
               count(*) FILTER (WHERE kind = 'unchanged'),
               count(*) FILTER (WHERE kind = 'restore'),
               count(*) FILTER (WHERE kind = 'stale'),
               count(*) FILTER (WHERE validation_status = 'invalid'),
               count(*) FILTER (WHERE has_export
                                AND new_definition_hash IS DISTINCT FROM old_definition_hash)
          FROM merge_plan""").fetchone()
    return dict(
        zip(
            ("inserted", "updated", "unchanged", "restored", "stale", "invalid", "definitions_changed"),
            row,
            strict=True,
        )
    )


def _record_counts(conn, run_id: str, customer_id: str, counts: dict, environment, conn_id) -> None:
    columns = [c for c in COUNT_COLUMNS if c in counts]
    assignments = ", ".join(f"{c} = excluded.{c}" for c in columns)
    conn.execute(
        f"INSERT INTO zuora.sync_runs (run_id, customer_id, zuora_environment, zuora_conn_id, "
        f"listing_complete, {', '.join(columns)}) "
        f"VALUES (%s, %s, %s, %s, %s, {', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT (run_id, customer_id) DO UPDATE SET {assignments}, "
        f"listing_complete = excluded.listing_complete, "
        f"zuora_environment = coalesce(excluded.zuora_environment, sync_runs.zuora_environment), "
        f"zuora_conn_id = coalesce(excluded.zuora_conn_id, sync_runs.zuora_conn_id)",
        (
            run_id,
            customer_id,
            environment,
            conn_id,
            counts["listing_complete"],
            *[counts[c] for c in columns],
        ),
    )


def _already_merged(conn, run_id: str, customer_id: str) -> dict:
    row = conn.execute(
        f"SELECT listing_complete, {', '.join(COUNT_COLUMNS)} FROM zuora.sync_runs "
        "WHERE run_id = %s AND customer_id = %s",
        (run_id, customer_id),
    ).fetchone()
    if row is None:
        raise LookupError(f"nothing staged for customer {customer_id} in run {run_id}")
    return {
        "listing_complete": row[0],
        **dict(zip(COUNT_COLUMNS, row[1:], strict=True)),
        "already_merged": True,
    }


def merge_customer(
    conn, run_id: str, customer_id: str, *, environment: str | None = None, conn_id: str | None = None
) -> dict:
    """Merge the customer's validated staging; returns the counts (see module docstring).

    Rerunning it after it committed changes nothing and returns the recorded counts.
    """
    key = {"run_id": run_id, "customer_id": customer_id, "bookkeeping": BOOKKEEPING}
    with committing(conn):
        lock_customer(conn, customer_id)
        listing = conn.execute(
            "SELECT complete, listed, listed_at, validated_at FROM zuora.staging_listings "
            "WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s",
            key,
        ).fetchone()
        if listing is None:
            return _already_merged(conn, run_id, customer_id)
        complete, listed, listed_at, validated_at = listing
        if validated_at is None:
            raise RuntimeError(
                f"staging of customer {customer_id} in run {run_id} is not "
                "validated: run validate_staged first"
            )
        key.update(complete=complete, listed_at=listed_at)
        counts = _merge_steps(conn, key)
        counts.update(listed=listed, listing_complete=complete)
        if counts["listed"] != counts["stored"] + counts["dead_lettered"]:
            raise RuntimeError(
                f"customer {customer_id}: listed {listed} != stored "
                f"{counts['stored']} + dead-lettered {counts['dead_lettered']}"
            )
        _record_counts(conn, run_id, customer_id, counts, environment, conn_id)
        clear_staging(conn, run_id, customer_id)
    log.info("merged customer %s run %s: %s", customer_id, run_id, counts)
    return counts


def _merge_steps(conn, key: dict) -> dict:
    """Steps 1-4 inside the merge transaction; returns their counts."""
    conn.execute(_sql("01_plan"), key)
    conn.execute("ANALYZE merge_plan")
    counts = _plan_counts(conn)
    conn.execute(_sql("02_upsert_workflows"), key)
    conn.execute(_sql("03_upsert_definitions"), key)
    conn.execute(_sql("04_history"), key)
    counts["deleted"] = conn.execute(_sql("05_soft_delete"), key).rowcount if key["complete"] else 0
    conn.execute(_sql("06_dead_letters"), key)
    conn.execute(_sql("07_resolve_dead_letters"), key)
    conn.execute(_sql("08_issues"), key)
    conn.execute(_sql("09_events"), key)  # activated, deactivated, version changed
    stored, dead, failed = conn.execute(
        """
        SELECT count(*) FILTER (WHERE disposition = 'store'),
               count(*) FILTER (WHERE disposition = 'dead_letter'),
               (SELECT count(DISTINCT zuora_id) FROM zuora.staging_exports e
                 WHERE e.run_id = %(run_id)s AND e.customer_id = %(customer_id)s AND NOT e.ok)
          FROM zuora.staging_workflows
         WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s""",
        key,
    ).fetchone()
    counts.update(stored=stored, dead_lettered=dead, exports_failed=failed)
    return counts
