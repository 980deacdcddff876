"""Health checks over the sync ledger, run hourly by the ``zuora_sync_monitor`` DAG.

Each check reads ``zuora.sync_runs`` / ``zuora.dead_letters`` (or the Airflow REST API), or
the customers' task usage and workflow events, and returns the alerts it raises; a check that
fails raises a ``check_failed`` alert instead and the others still run. The monitor only
decides what to raise: ``zuora.alerts.raise_alerts`` stores each alert in ``zuora.alerts`` (so
it can be queried) and sends it. Thresholds come from ``Thresholds``; the DAG reads overrides
from the Airflow Variable ``zuora_monitor_thresholds`` (JSON).

Task usage (issue 31), against a customer's monthly allowance (``customers.task_allowance``),
for the UTC month of ``now``:

- ``task_usage_80`` / ``task_usage_100``: the month's tasks reached 80 % / 100 % of it;
- ``task_usage_projected``: the month's projection (tasks so far / days gone x days in the
  month, ``zuora.usage_per_month``) is at 100 % or more before the 20th, usage still below it;

each once per customer and month: an alert of its kind (or, for the lower ones, of a higher
kind) raised for the customer's month before and not refused by its channel is not raised
again (a refused one is raised again the next hour). ``workflow_deactivated``: a workflow a
sync saw switched off, not through this product (``zuora.workflow_events``: kind
``deactivated``, made_by ``zuora``, recorded_from ``sync``), once per event; only events seen
within ``DEACTIVATION_ALERT_WITHIN`` of the check, so an upgrade or a monitor paused for days
does not send a flood of old news (those events stay on the sync page).
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, date, datetime, timedelta

from zuora import metrics
from zuora.alerts import Alert, raise_alerts
from zuora.queue_depth import queued_task_instances
from zuora.redaction import redact_text
from zuora.settings import RETENTION_VARIABLE, THRESHOLDS_VARIABLE, Retention, Thresholds

log = logging.getLogger(__name__)


__all__ = ["Thresholds", "apply_retention", "check", "check_and_raise", "check_sync_health", "raise_alerts"]

# Task usage against the allowance: alert kind -> share of the month's allowance used, lowest
# first; the projection's alert, and the day of the month from which it is no longer raised.
USAGE_SHARES = {"task_usage_80": 0.8, "task_usage_100": 1.0}
PROJECTION = "task_usage_projected"
PROJECTION_BEFORE_DAY = 20
DEACTIVATED = "workflow_deactivated"
DEACTIVATION_ALERT_WITHIN = timedelta(days=1)  # events seen longer ago are never alerted


def check_sync_health() -> list[dict]:
    """The monitor DAG's hourly check: every check, its alerts stored and sent; a retry of
    the task does not send again what an earlier try of the run sent."""
    from airflow.sdk import Variable, get_current_context

    from zuora.warehouse.connection import warehouse_connection

    thresholds = Thresholds.from_json(Variable.get(THRESHOLDS_VARIABLE, default=None))
    run_started = get_current_context()["dag_run"].start_date
    with warehouse_connection() as conn:
        metrics.monitor_figures(conn, thresholds)
        return check_and_raise(conn, thresholds, since=run_started)


def check_and_raise(
    conn, thresholds: Thresholds, *, now: datetime | None = None, since: datetime | None = None
) -> list[dict]:
    """Every check at ``now`` (default: the clock's), its alerts stored and sent
    (``raise_alerts``, ``since`` the run's start); then the workflow events whose
    ``workflow_deactivated`` alert went out are marked ``alerted_at``."""
    from zuora.warehouse.usage import mark_events_alerted

    handled = raise_alerts(conn, check(conn, thresholds, now=now), since=since)
    mark_events_alerted(conn, DEACTIVATED)
    return handled


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


def check(conn, thresholds: Thresholds, *, now: datetime | None = None) -> list[Alert]:
    """Run every check (the task usage and workflow event checks at ``now``, default the
    clock's); returns the alerts raised (not yet sent). A check that fails is itself an alert
    (``check_failed``); the other checks still run."""
    window = {"minutes": thresholds.window_minutes, "now": now or datetime.now(UTC)}
    alerts = []
    checks = (_failure_rate, _slow_syncs, _rate_limiting, _dead_letters_growing, _queue_backlog)
    for each in (*checks, _task_usage, _workflows_switched_off):
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


# A customer's month against its allowance, with the usage alerts raised for that month
# already (and not refused by their channel).
_USAGE = """
SELECT u.customer_id, u.tasks, u.task_allowance, u.projected_tasks, u.projected_share,
       array(SELECT DISTINCT a.kind FROM zuora.alerts a
              WHERE a.kind = ANY(%(kinds)s) AND a.details ->> 'customer_id' = u.customer_id
                AND a.details ->> 'month' = %(month_text)s AND a.channel NOT LIKE 'failed%%') AS raised
  FROM zuora.usage_per_month u
 WHERE u.month = %(month)s AND u.task_allowance IS NOT NULL
   AND (u.used_share >= %(lowest)s OR u.projected_share >= 1)
   AND EXISTS (SELECT FROM zuora.customers c WHERE c.customer_id = u.customer_id AND c.enabled)
 ORDER BY u.customer_id"""


def _task_usage(conn, t: Thresholds, window: dict) -> list[Alert]:
    today = window["now"].astimezone(UTC).date()
    month = _month(today)
    levels = list(USAGE_SHARES)  # lowest first
    rows = conn.execute(
        _USAGE,
        {
            "kinds": [*levels, PROJECTION],
            "month": today.replace(day=1),
            "month_text": month,
            "lowest": USAGE_SHARES[levels[0]],
        },
    ).fetchall()
    alerts = []
    for customer, tasks, allowance, projected, projected_share, raised in rows:
        used = int(tasks) / int(allowance)
        usage = {
            "customer_id": customer,
            "month": month,
            "tasks": int(tasks),
            "task_allowance": int(allowance),
            "used_share": round(used, 4),
            "projected_tasks": None if projected is None else int(projected),
            "projected_share": None if projected_share is None else float(projected_share),
        }
        reached = [kind for kind in levels if used >= USAGE_SHARES[kind]]
        if reached and not set(raised) & set(levels[len(reached) - 1 :]):  # nor a higher one
            alerts.append(_usage_reached(reached[-1], usage))
        if (
            usage["projected_share"] is not None
            and usage["projected_share"] >= 1
            and len(reached) < len(levels)
            and today.day < PROJECTION_BEFORE_DAY
            and PROJECTION not in raised
        ):
            alerts.append(_usage_projected(usage))
    return alerts


def _usage_reached(kind: str, usage: dict) -> Alert:
    full = kind == list(USAGE_SHARES)[-1]
    return Alert(
        kind,
        f"customer {usage['customer_id']} has used {usage['used_share']:.0%} of its monthly task "
        f"allowance in {usage['month']}: {usage['tasks']:,} of {usage['task_allowance']:,} tasks",
        "critical" if full else "warning",
        {**usage, "threshold": USAGE_SHARES[kind]},
    )


def _usage_projected(usage: dict) -> Alert:
    return Alert(
        PROJECTION,
        f"customer {usage['customer_id']} is on course for {usage['projected_share']:.0%} of its "
        f"monthly task allowance in {usage['month']}: {usage['projected_tasks']:,} tasks projected, "
        f"{usage['task_allowance']:,} allowed, {usage['tasks']:,} so far",
        "warning",
        {**usage, "threshold": 1.0},
    )


def _month(day: date) -> str:
    return day.strftime("%Y-%m")


# Workflows a sync saw switched off, not through this product, not alerted yet.
_SWITCHED_OFF = """
SELECT e.event_id, e.customer_id, e.zuora_id, e.workflow_name, e.new_version, e.seen_at,
       e.previous_seen_at
  FROM zuora.workflow_events e
 WHERE e.kind = 'deactivated' AND e.made_by = 'zuora' AND e.recorded_from = 'sync'
   AND e.alerted_at IS NULL AND e.seen_at > %(since)s
   AND NOT EXISTS (SELECT FROM zuora.alerts a
                    WHERE a.kind = %(kind)s AND a.details ->> 'customer_id' = e.customer_id
                      AND a.details ->> 'event_id' = e.event_id::text AND a.channel NOT LIKE 'failed%%')
 ORDER BY e.seen_at, e.event_id"""


def _workflows_switched_off(conn, t: Thresholds, window: dict) -> list[Alert]:
    rows = conn.execute(
        _SWITCHED_OFF, {"since": window["now"] - DEACTIVATION_ALERT_WITHIN, "kind": DEACTIVATED}
    ).fetchall()
    return [
        Alert(
            DEACTIVATED,
            f"workflow {name!r} ({zuora_id}) of customer {customer} was switched off in Zuora, not "
            "through this product",
            details={
                "customer_id": customer,
                "event_id": event_id,
                "zuora_id": zuora_id,
                "workflow_name": name,
                "version": version,
                "seen_at": seen_at.isoformat(),
                "previous_seen_at": previous_seen_at.isoformat() if previous_seen_at else None,
            },
        )
        for event_id, customer, zuora_id, name, version, seen_at, previous_seen_at in rows
    ]
