"""The sync ledger (``zuora.sync_runs``) and task-level dead letters.

One ``sync_runs`` row per customer per run: ``start_sync_run`` opens it with the connection
and Zuora environment used (the audit), ``add_sync_counts`` adds each stage's figures, and
``finish_sync_run`` closes it with a status and duration. ``record_dead_letter`` keeps what
failed for good (one open letter per customer, stage and item; a repeat counts an attempt).
"""

from __future__ import annotations

from zuora.redaction import redact, redact_text
from zuora.warehouse.transactions import committing
from zuora.warehouse.transform import make_storable

# Figures that add up over a run's stages (each stage's hook counts its own requests) ...
ADDED = ("api_requests", "token_mints", "rate_limited", "retries")
# ... and figures a stage sets (rerunning the stage gives the same value).
SET = (
    "pages",
    "listed",
    "listing_complete",
    "exported",
    "exports_unchanged",
    "exports_failed",
    "inserted",
    "updated",
    "unchanged",
    "deleted",
    "restored",
    "stale",
    "invalid",
    "stored",
    "dead_lettered",
    "definitions_changed",
    "versions_listed",
    "versions_exported",
    "versions_failed",
    "versions_pending",
)
STAGES = ("list", "export", "validate", "upsert", "task")


def start_sync_run(
    conn,
    run_id: str,
    customer_id: str,
    *,
    conn_id: str | None = None,
    environment: str | None = None,
    map_index: int | None = None,
    task_id: str | None = None,
) -> None:
    """Open (or reopen, on a retry) the customer's row for this run, status 'running';
    ``map_index`` is the map index of the customer's task in the DAG run, ``task_id`` that
    task when it is a batch's (None: the customer's own group), for links to the grid."""
    with committing(conn):
        conn.execute(
            "INSERT INTO zuora.sync_runs (run_id, customer_id, zuora_conn_id, zuora_environment, "
            "map_index, task_id) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, customer_id) "
            "DO UPDATE SET status = 'running', finished_at = NULL, duration_seconds = NULL, "
            "error = NULL, "
            "zuora_conn_id = coalesce(excluded.zuora_conn_id, sync_runs.zuora_conn_id), "
            "zuora_environment = coalesce(excluded.zuora_environment, sync_runs.zuora_environment), "
            "map_index = coalesce(excluded.map_index, sync_runs.map_index), "
            "task_id = coalesce(excluded.task_id, sync_runs.task_id)",
            (run_id, customer_id, conn_id, environment, map_index, task_id),
        )


def sync_statuses(conn, run_id: str, customer_ids: list[str]) -> dict[str, str]:
    """The status of each of these customers' rows in the run ('running', 'success',
    'failed'); a customer without a row is not in the answer."""
    with committing(conn):
        rows = conn.execute(
            "SELECT customer_id, status FROM zuora.sync_runs WHERE run_id = %s AND customer_id = ANY(%s)",
            (run_id, customer_ids),
        ).fetchall()
    return dict(rows)


def reopen_failed_syncs(conn, run_id: str, customer_ids: list[str]) -> list[str]:
    """Reopen ('running') the failed rows of these customers in the run, for a rerun; returns
    whose. Their dead letters stay open until a sync of the customer succeeds."""
    with committing(conn):
        rows = conn.execute(
            "UPDATE zuora.sync_runs SET status = 'running', finished_at = NULL, "
            "duration_seconds = NULL, error = NULL "
            "WHERE run_id = %s AND customer_id = ANY(%s) AND status = 'failed' RETURNING customer_id",
            (run_id, customer_ids),
        ).fetchall()
    return sorted(row[0] for row in rows)


def _figures(counts: dict) -> tuple[list[str], list]:
    columns = [name for name in (*ADDED, *SET) if name in counts and counts[name] is not None]
    return columns, [counts[name] for name in columns]


def add_sync_counts(conn, run_id: str, customer_id: str, **counts) -> None:
    """Add API figures and set stage figures on the run's row; unknown names are ignored."""
    columns, values = _figures(counts)
    if not columns:
        return
    updates = ", ".join(
        f"{c} = sync_runs.{c} + excluded.{c}" if c in ADDED else f"{c} = excluded.{c}" for c in columns
    )
    with committing(conn):
        conn.execute(
            f"INSERT INTO zuora.sync_runs (run_id, customer_id, {', '.join(columns)}) "
            f"VALUES (%s, %s, {', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT (run_id, customer_id) DO UPDATE SET {updates}",
            (run_id, customer_id, *values),
        )


def finish_sync_run(
    conn, run_id: str, customer_id: str, *, status: str, error: str | None = None, **counts
) -> None:
    """Close the run's row: status ('success'/'failed'), end, duration, error, stage figures."""
    if status not in ("success", "failed"):
        raise ValueError(f"status must be success or failed, not {status!r}")
    columns, values = _figures({k: v for k, v in counts.items() if k not in ADDED})
    extra = "".join(f", {c} = %s" for c in columns)
    error_text = make_storable(redact_text(error))[0][:4000] if error else None
    with committing(conn):
        conn.execute(
            "INSERT INTO zuora.sync_runs (run_id, customer_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (run_id, customer_id),
        )
        conn.execute(
            "UPDATE zuora.sync_runs SET status = %s, error = %s, finished_at = clock_timestamp(), "
            "duration_seconds = extract(epoch FROM clock_timestamp() - started_at)"
            + extra
            + " WHERE run_id = %s AND customer_id = %s",
            (status, error_text, *values, run_id, customer_id),
        )


def record_dead_letter(
    conn,
    *,
    run_id: str,
    customer_id: str,
    stage: str,
    error_type: str,
    message: str,
    zuora_id: int | None = None,
    payload=None,
    attempts: int = 1,
) -> int:
    """Record (or count another attempt of) a failure; returns the dead letter's id.

    ``payload`` is stored redacted. A later successful merge of the customer resolves it.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}")
    item_key = "" if zuora_id is None else str(zuora_id)
    stored_payload = None
    if payload is not None:
        from zuora.warehouse.transform import canonical_json

        stored_payload = canonical_json(redact(make_storable(payload)[0]))
    message = make_storable(redact_text(message))[0][:4000]
    with committing(conn):
        row = conn.execute(
            "INSERT INTO zuora.dead_letters AS dl (customer_id, run_id, stage, zuora_id, item_key, "
            "error_type, message, payload, attempts) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (customer_id, stage, item_key) WHERE resolved_at IS NULL DO UPDATE "
            "SET attempts = dl.attempts + excluded.attempts, last_failed_at = now(), "
            "run_id = excluded.run_id, error_type = excluded.error_type, message = excluded.message, "
            "payload = coalesce(excluded.payload, dl.payload) RETURNING dead_letter_id",
            (
                customer_id,
                run_id,
                stage,
                zuora_id,
                item_key,
                error_type,
                message,
                stored_payload,
                max(int(attempts or 1), 1),
            ),
        ).fetchone()
    return row[0]
