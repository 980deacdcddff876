"""Health checks over the sync ledger, run hourly by the ``zuora_sync_monitor`` DAG.

Each check reads ``zuora.sync_runs`` / ``zuora.dead_letters`` (or the Airflow REST API) and
returns the alerts it raises; a check that fails raises a ``check_failed`` alert instead and
the others still run. The monitor only decides what to raise: ``zuora.alerts.raise_alerts``
stores each alert in ``zuora.alerts`` (so it can be queried) and sends it. Thresholds come
from ``Thresholds``; the DAG reads overrides from the Airflow Variable ``zuora_monitor_thresholds`` (JSON).
"""

from __future__ import annotations

import contextlib
import json
import logging

from zuora import metrics
from zuora.alerts import Alert, raise_alerts
from zuora.queue_depth import queued_task_instances
from zuora.redaction import redact_text
from zuora.settings import RETENTION_VARIABLE, THRESHOLDS_VARIABLE, Retention, Thresholds

log = logging.getLogger(__name__)


__all__ = ["Thresholds", "apply_retention", "check", "check_sync_health", "raise_alerts"]


def check_sync_health() -> list[dict]:
    """The monitor DAG's hourly check: every check, its alerts stored and sent; a retry of
    the task does not send again what an earlier try of the run sent."""
    from airflow.sdk import Variable, get_current_context

    from zuora.warehouse.connection import warehouse_connection

    thresholds = Thresholds.from_json(Variable.get(THRESHOLDS_VARIABLE, default=None))
    run_started = get_current_context()["dag_run"].start_date
    with warehouse_connection() as conn:
        metrics.monitor_figures(conn, thresholds)
        return raise_alerts(conn, check(conn, thresholds), since=run_started)


def apply_retention() -> dict[str, int]:
    """The monitor DAG's hourly retention: the warehouse's ``cleanup`` with the
    ``zuora_retention`` Variable, then the expired token Variables; logs one JSON line."""
    from airflow.sdk import Variable

    from zuora.api.token_cache import drop_expired_tokens
    from zuora.warehouse.connection import warehouse_connection
    from zuora.warehouse.retention import cleanup

    retention = Retention.from_json(Variable.get(RETENTION_VARIABLE, default=None))
    with warehouse_connection() as conn:
        removed = cleanup(conn, retention)
    removed["expired_tokens"] = drop_expired_tokens()
    log.info("zuora retention %s", json.dumps(removed, sort_keys=True))
    return removed


def check(conn, thresholds: Thresholds) -> list[Alert]:
    """Run every check; returns the alerts raised (not yet sent). A check that fails is
    itself an alert (``check_failed``); the other checks still run."""
    window = {"minutes": thresholds.window_minutes}
    alerts = []
    for each in (_failure_rate, _slow_syncs, _rate_limiting, _dead_letters_growing, _queue_backlog):
        try:
            alerts += each(conn, thresholds, window)
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.rollback()  # a failed query aborts the transaction the next checks share
            alerts.append(_check_failed(each.__name__.lstrip("_"), exc))
    return alerts


def _check_failed(name: str, error: Exception) -> Alert:
    message = redact_text(f"{type(error).__name__}: {error}")[:500]
    log.warning("Monitor check %s failed: %s", name, message)
    return Alert(
        "check_failed",
        f"monitor check {name} failed: {type(error).__name__}",
        details={"check": name, "error": message},
    )


def _failure_rate(conn, t: Thresholds, window: dict) -> list[Alert]:
    total, failed = conn.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE status = 'failed')
          FROM zuora.sync_runs
         WHERE finished_at > now() - make_interval(mins => %(minutes)s)""",
        window,
    ).fetchone()
    if total and failed / total > t.max_failure_rate:
        customers = [
            r[0]
            for r in conn.execute(
                """
            SELECT DISTINCT customer_id FROM zuora.sync_runs
             WHERE status = 'failed' AND finished_at > now() - make_interval(mins => %(minutes)s)
             ORDER BY 1""",
                window,
            )
        ]
        return [
            Alert(
                "failure_rate",
                f"{failed} of {total} customer syncs failed in the last {t.window_minutes} minutes",
                "critical",
                {
                    "failed": failed,
                    "total": total,
                    "rate": round(failed / total, 3),
                    "threshold": t.max_failure_rate,
                    "customers": customers,
                },
            )
        ]
    return []


def _slow_syncs(conn, t: Thresholds, window: dict) -> list[Alert]:
    rows = conn.execute(
        """
        SELECT customer_id, run_id, status,
               round(extract(epoch FROM coalesce(finished_at, now()) - started_at) / 60, 1)
          FROM zuora.sync_runs
         WHERE coalesce(finished_at, now()) > now() - make_interval(mins => %(minutes)s)
           AND coalesce(finished_at, now()) - started_at > %(max)s * interval '1 minute'
         ORDER BY 4 DESC""",
        {**window, "max": t.max_sync_minutes},
    ).fetchall()
    return [
        Alert(
            "slow_sync",
            f"customer {customer} sync took {minutes} minutes ({status})",
            details={
                "customer_id": customer,
                "run_id": run_id,
                "minutes": float(minutes),
                "threshold": t.max_sync_minutes,
            },
        )
        for customer, run_id, status, minutes in rows
    ]


def _rate_limiting(conn, t: Thresholds, window: dict) -> list[Alert]:
    total, worst = conn.execute(
        """
        SELECT coalesce(sum(rate_limited), 0),
               (array_agg(customer_id ORDER BY rate_limited DESC))[1]
          FROM zuora.sync_runs
         WHERE coalesce(finished_at, started_at) > now() - make_interval(mins => %(minutes)s)
           AND rate_limited > 0""",
        window,
    ).fetchone()
    if total > t.max_rate_limited:
        return [
            Alert(
                "rate_limiting",
                f"Zuora answered 429 {total} times in the last {t.window_minutes} minutes",
                details={
                    "rate_limited": int(total),
                    "threshold": t.max_rate_limited,
                    "most_limited_customer": worst,
                },
            )
        ]
    return []


def _dead_letters_growing(conn, t: Thresholds, window: dict) -> list[Alert]:
    new, resolved, open_now = conn.execute(
        """
        SELECT count(*) FILTER (WHERE first_failed_at > now() - make_interval(mins => %(minutes)s)),
               count(*) FILTER (WHERE resolved_at > now() - make_interval(mins => %(minutes)s)),
               count(*) FILTER (WHERE resolved_at IS NULL)
          FROM zuora.dead_letters""",
        window,
    ).fetchone()
    if new > resolved:
        return [
            Alert(
                "dead_letters_growing",
                f"{new} new dead letters, {resolved} resolved; {open_now} open",
                details={"new": new, "resolved": resolved, "open": open_now},
            )
        ]
    return []


def _queue_backlog(conn, t: Thresholds, window: dict) -> list[Alert]:
    queued = queued_task_instances(t.airflow_api_conn_id)
    if queued is not None and queued > t.max_queued_task_instances:
        return [
            Alert(
                "queue_backlog",
                f"{queued} task instances are queued in Airflow",
                details={"queued": queued, "threshold": t.max_queued_task_instances},
            )
        ]
    return []
