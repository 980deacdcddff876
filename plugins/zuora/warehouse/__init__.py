"""The warehouse: everything the sync writes to Postgres, as plain functions on a psycopg 3
connection (``PostgresHook("zuora_warehouse").get_conn()``). Each function commits its own
work (or rolls it back on error); none needs Airflow.

The DAG runs four stages per customer; data between them goes through staging tables keyed
by ``(run_id, customer_id)``, never XCom:

    apply_migrations(conn) -> list[str]                       once per run, idempotent
    list_customers(conn, customer_ids=None) -> list[dict]     enabled customers
    start_sync_run(conn, run_id, customer_id, conn_id=, environment=)
    list:     stage_listing(conn, run_id, customer_id, items, complete | complete_flag=) -> listed
              work_after_listing(conn, run_id, customer_id) -> reasons (none: finish in the list task)
    export:   workflows_to_export(conn, run_id, customer_id, full_refresh=, lookback=) -> ids
              stage_exports(conn, run_id, customer_id, hook.export_workflows(ids),
                            encryption_key=resolve_encryption_key()) -> counts
    validate: validate_staged(conn, run_id, customer_id) -> counts
    upsert:   merge_customer(conn, run_id, customer_id, environment=, conn_id=)
              -> counts (listed = stored + dead_lettered)
    add_sync_counts(conn, run_id, customer_id, **figures); finish_sync_run(..., status=, error=)
    on failure: record_dead_letter(conn, run_id=, customer_id=, stage=, error_type=, message=)
    a batch's try: sync_statuses(conn, run_id, customer_ids), reopen_failed_syncs(...)

Housekeeping: ``cleanup(conn, Retention(...))``, ``sweep_stale_staging(conn, older_than)``.
Backup: ``decrypt_original(conn, customer_id, zuora_id, key)`` gives the exact original export.
"""

from __future__ import annotations

from zuora.warehouse.customers import KEEP, Keep, list_customers, upsert_customer
from zuora.warehouse.ledger import (
    add_sync_counts,
    finish_sync_run,
    record_dead_letter,
    reopen_failed_syncs,
    start_sync_run,
    sync_statuses,
)
from zuora.warehouse.merge import lock_customer, merge_customer
from zuora.warehouse.migrations import apply_migrations
from zuora.warehouse.retention import Retention, cleanup
from zuora.warehouse.secrets_box import decrypt_export, resolve_encryption_key
from zuora.warehouse.staging import (
    stage_exports,
    stage_listing,
    sweep_stale_staging,
    work_after_listing,
    workflows_to_export,
)
from zuora.warehouse.validation import validate_staged

__all__ = [
    "apply_migrations",
    "list_customers",
    "upsert_customer",
    "KEEP",
    "Keep",
    "start_sync_run",
    "add_sync_counts",
    "finish_sync_run",
    "record_dead_letter",
    "sync_statuses",
    "reopen_failed_syncs",
    "stage_listing",
    "workflows_to_export",
    "work_after_listing",
    "stage_exports",
    "validate_staged",
    "merge_customer",
    "lock_customer",
    "cleanup",
    "Retention",
    "sweep_stale_staging",
    "decrypt_original",
    "decrypt_export",
    "resolve_encryption_key",
]


def decrypt_original(conn, customer_id: str, zuora_id: int, key: bytes | str) -> dict:
    """The exact original export of a workflow, decrypted; LookupError when none is stored."""
    row = conn.execute(
        "SELECT original_encrypted FROM zuora.workflow_definitions WHERE customer_id = %s AND zuora_id = %s",
        (customer_id, zuora_id),
    ).fetchone()
    if not conn.autocommit:
        conn.rollback()  # read only: end the implicit transaction
    if row is None or row[0] is None:
        raise LookupError(f"no encrypted original for workflow {zuora_id} of {customer_id}")
    return decrypt_export(row[0], key)
