"""Retention: how long staging leftovers, resolved dead letters, issues and runs are kept.

The monitor DAG applies it hourly (``zuora.monitor.apply_retention``) with the Airflow Variable
``zuora_retention`` (JSON, see ``Retention.from_json``).
"""

from __future__ import annotations

from zuora.settings import Retention
from zuora.warehouse.staging import sweep_stale_staging
from zuora.warehouse.transactions import committing


def cleanup(conn, retention: Retention | None = None) -> dict[str, int]:
    """Apply ``retention``; returns how many rows (staging: listings) each part removed."""
    retention = retention or Retention()
    removed = {"staging": sweep_stale_staging(conn, retention.staging)}
    statements = {
        "resolved_dead_letters": (
            "DELETE FROM zuora.dead_letters WHERE resolved_at < now() - %s",
            retention.resolved_dead_letters,
        ),
        "validation_issues": (
            "DELETE FROM zuora.validation_issues WHERE created_at < now() - %s",
            retention.validation_issues,
        ),
        "sync_runs": (
            "DELETE FROM zuora.sync_runs WHERE started_at < now() - %s AND status <> 'running'",
            retention.sync_runs,
        ),
        "history": ("DELETE FROM zuora.workflow_history WHERE changed_at < now() - %s", retention.history),
    }
    with committing(conn):
        for part, (statement, age) in statements.items():
            removed[part] = conn.execute(statement, (age,)).rowcount if age is not None else 0
    return removed
