"""Health checks over the sync ledger, run hourly by the ``zuora_sync_monitor`` DAG.

Each check reads ``zuora.sync_runs`` / ``zuora.dead_letters`` (or the Airflow REST API) and
returns the alerts it raises; a check that fails raises a ``check_failed`` alert instead and
the others still run. Every alert is written to ``zuora.alerts`` (so it can be queried) and
sent through the configured channel (zuora.alerts). Thresholds come from ``Thresholds``; the
DAG reads overrides from the Airflow Variable ``zuora_monitor_thresholds`` (JSON).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass

import requests
from psycopg.types.json import Jsonb

from zuora.alerts import Alert, send_alert
from zuora.redaction import redact_text

log = logging.getLogger(__name__)


# a threshold's type -> how errors name it, the JSON values accepted (bool never: JSON true is not 1)
_JSON_TYPES = {"int": ("an integer", int), "float": ("a number", (int, float)),
               "str": ("a string", str)}


@dataclass(frozen=True)
class Thresholds:
    window_minutes: int = 60               # look-back of every check
    max_failure_rate: float = 0.05         # failed customer syncs / all finished syncs
    max_sync_minutes: float = 30           # one customer's sync, finished or still running
    max_rate_limited: int = 100            # 429s answered to us in the window, all customers
    max_queued_task_instances: int = 1000  # needs the Airflow API connection
    airflow_api_conn_id: str = "airflow_api"

    @classmethod
    def from_json(cls, text: str | None) -> "Thresholds":
        overrides = json.loads(text) if text else {}
        if not isinstance(overrides, dict):
            raise ValueError("monitor thresholds must be a JSON object, e.g. {\"max_failure_rate\": 0.1}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(overrides) - set(types)
        if unknown:
            raise ValueError(f"unknown monitor thresholds {sorted(unknown)}")
        for key, value in overrides.items():
            expected, allowed = _JSON_TYPES[types[key]]
            if isinstance(value, bool) or not isinstance(value, allowed):
                raise ValueError(f"monitor threshold {key!r} must be {expected}, not {json.dumps(value)}")
        return cls(**overrides)


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
    return Alert("check_failed", f"monitor check {name} failed: {type(error).__name__}",
                 details={"check": name, "error": message})


def raise_alerts(conn, alerts: list[Alert]) -> list[dict]:
    """Send each alert and record it in ``zuora.alerts``; returns what was recorded."""
    recorded = []
    for alert in alerts:
        try:
            channel = send_alert(alert)
        except Exception as exc:  # a broken channel must not hide the alert: it is still stored
            log.error("Could not send alert %s: %s", alert.kind, exc)
            channel = f"failed: {type(exc).__name__}"
        conn.execute("""INSERT INTO zuora.alerts (kind, severity, title, details, channel)
                        VALUES (%s, %s, %s, %s, %s)""",
                     (alert.kind, alert.severity, alert.title, Jsonb(alert.details), channel))
        recorded.append({"kind": alert.kind, "title": alert.title, "channel": channel})
    conn.commit()
    return recorded


def _failure_rate(conn, t: Thresholds, window: dict) -> list[Alert]:
    total, failed = conn.execute("""
        SELECT count(*), count(*) FILTER (WHERE status = 'failed')
          FROM zuora.sync_runs
         WHERE finished_at > now() - make_interval(mins => %(minutes)s)""", window).fetchone()
    if total and failed / total > t.max_failure_rate:
        customers = [r[0] for r in conn.execute("""
            SELECT DISTINCT customer_id FROM zuora.sync_runs
             WHERE status = 'failed' AND finished_at > now() - make_interval(mins => %(minutes)s)
             ORDER BY 1""", window)]
        return [Alert("failure_rate", f"{failed} of {total} customer syncs failed in the last "
                      f"{t.window_minutes} minutes", "critical",
                      {"failed": failed, "total": total, "rate": round(failed / total, 3),
                       "threshold": t.max_failure_rate, "customers": customers})]
    return []


def _slow_syncs(conn, t: Thresholds, window: dict) -> list[Alert]:
    rows = conn.execute("""
        SELECT customer_id, run_id, status,
               round(extract(epoch FROM coalesce(finished_at, now()) - started_at) / 60, 1)
          FROM zuora.sync_runs
         WHERE coalesce(finished_at, now()) > now() - make_interval(mins => %(minutes)s)
           AND coalesce(finished_at, now()) - started_at > %(max)s * interval '1 minute'
         ORDER BY 4 DESC""", {**window, "max": t.max_sync_minutes}).fetchall()
    return [Alert("slow_sync", f"customer {customer} sync took {minutes} minutes ({status})",
                  details={"customer_id": customer, "run_id": run_id, "minutes": float(minutes),
                           "threshold": t.max_sync_minutes})
            for customer, run_id, status, minutes in rows]


def _rate_limiting(conn, t: Thresholds, window: dict) -> list[Alert]:
    total, worst = conn.execute("""
        SELECT coalesce(sum(rate_limited), 0),
               (array_agg(customer_id ORDER BY rate_limited DESC))[1]
          FROM zuora.sync_runs
         WHERE coalesce(finished_at, started_at) > now() - make_interval(mins => %(minutes)s)
           AND rate_limited > 0""", window).fetchone()
    if total > t.max_rate_limited:
        return [Alert("rate_limiting", f"Zuora answered 429 {total} times in the last "
                      f"{t.window_minutes} minutes", details={
                          "rate_limited": int(total), "threshold": t.max_rate_limited,
                          "most_limited_customer": worst})]
    return []


def _dead_letters_growing(conn, t: Thresholds, window: dict) -> list[Alert]:
    new, resolved, open_now = conn.execute("""
        SELECT count(*) FILTER (WHERE first_failed_at > now() - make_interval(mins => %(minutes)s)),
               count(*) FILTER (WHERE resolved_at > now() - make_interval(mins => %(minutes)s)),
               count(*) FILTER (WHERE resolved_at IS NULL)
          FROM zuora.dead_letters""", window).fetchone()
    if new > resolved:
        return [Alert("dead_letters_growing", f"{new} new dead letters, {resolved} resolved; "
                      f"{open_now} open", details={"new": new, "resolved": resolved,
                                                   "open": open_now})]
    return []


def _queue_backlog(conn, t: Thresholds, window: dict) -> list[Alert]:
    queued = _queued_task_instances(t.airflow_api_conn_id)
    if queued is not None and queued > t.max_queued_task_instances:
        return [Alert("queue_backlog", f"{queued} task instances are queued in Airflow",
                      details={"queued": queued, "threshold": t.max_queued_task_instances})]
    return []


def _queued_task_instances(conn_id: str) -> int | None:
    """Queued task instances across Airflow, from its REST API; None when not configured."""
    from airflow.sdk import BaseHook
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:
        return None
    base = conn.host.rstrip("/") if "://" in (conn.host or "") else f"http://{conn.host}:{conn.port or 8080}"
    token = requests.post(f"{base}/auth/token", json={"username": conn.login, "password": conn.password},
                          timeout=10)
    token.raise_for_status()
    response = requests.get(f"{base}/api/v2/dags/~/dagRuns/~/taskInstances",
                            params={"state": "queued", "limit": 1}, timeout=10,
                            headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    response.raise_for_status()
    return int(response.json()["total_entries"])
