"""Alerts, sent through the channel the Airflow connection ``zuora_alerts`` names.

- conn type ``smtp``: e-mail through Airflow's SmtpNotifier; extra ``{"to": "oncall@x.com"}``
- conn type ``slackwebhook``: a Slack incoming webhook (URL in host, or host + token in password)
- conn type ``http``: a generic webhook; the alert is POSTed as JSON to the host URL
- no such connection: a structured warning in the log, so nothing is silently lost

Task failure callbacks use ``ZuoraAlertNotifier``; the DAG deadline uses
``deadline_missed`` (async, runs in the triggerer); the monitor DAG calls ``send_alert``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from zuora import metrics, settings

log = logging.getLogger(__name__)


@dataclass
class Alert:
    kind: str  # e.g. task_failed, deadline_missed, failure_rate
    title: str
    severity: str = "warning"  # warning or critical
    details: dict = field(default_factory=dict)

    def text(self) -> str:
        lines = [f"[{self.severity.upper()}] {self.title}"]
        lines += [f"  {key}: {value}" for key, value in self.details.items()]
        return "\n".join(lines)


def send_alert(alert: Alert, conn_id: str = settings.ALERT_CONN_ID) -> str:
    """Deliver ``alert``; returns the channel used (smtp, slack, webhook or log)."""
    metrics.alert_raised(alert.kind)
    conn = _alert_connection(conn_id)
    channel = "log" if conn is None else conn.conn_type
    if conn is None:
        log.warning(
            "zuora alert (no '%s' connection configured): %s",
            conn_id,
            json.dumps(asdict(alert), default=str, sort_keys=True),
        )
    elif channel == "smtp":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        to = conn.extra_dejson.get("to") or conn.login
        SmtpNotifier(
            to=to, subject=alert.title, html_content=f"<pre>{alert.text()}</pre>", smtp_conn_id=conn_id
        ).notify({})
    elif channel in ("slackwebhook", "slack_webhook"):
        _post(_url(conn, with_token=True), {"text": alert.text()})
    elif channel == "http":
        _post(_url(conn), asdict(alert))
    else:
        raise ValueError(f"connection '{conn_id}' has type {channel!r}; use smtp, slackwebhook or http")
    return channel


class ZuoraAlertNotifier(BaseNotifier):
    """Task callback: alert with the task, customer, try and error.

    The title is built per call, not templated: Airflow renders a notifier's template fields
    in place, so one shared instance would keep the first task's title.
    """

    def notify(self, context) -> None:
        ti = context.get("ti")
        error = context.get("exception")
        customer = customer_of(context)
        title = f"Zuora workflow sync: {getattr(ti, 'task_id', 'a task')} failed" + (
            f" for customer {customer}" if customer else ""
        )
        send_alert(
            Alert(
                kind="task_failed",
                severity="critical",
                title=title,
                details={
                    "dag_id": getattr(ti, "dag_id", None),
                    "run_id": context.get("run_id"),
                    "task": getattr(ti, "task_id", None),
                    "customer": customer,
                    "try_number": getattr(ti, "try_number", None),
                    "error": f"{type(error).__name__}: {error}" if error else None,
                },
            )
        )


def customer_of(context) -> str | None:
    """The customer id of a per-customer task (its ``customer`` argument), else None."""
    customer = (getattr(context.get("task"), "op_kwargs", None) or {}).get("customer")
    return customer.get("customer_id") if isinstance(customer, dict) else None


def run_deadline(minutes: int, argv: list[str] = sys.argv) -> DeadlineAlert | None:
    """The sync DAG's deadline: alert when a run is not done ``minutes`` after it was queued.

    None when ``minutes`` is 0, and under ``airflow dags test``, where Airflow 3.3.2 crashes
    at the end of any run of a DAG with a deadline (``'dict' object has no attribute 'hex'``).
    """
    under_dags_test = "airflow" in argv[0] and argv[1:3] == ["dags", "test"]
    if not minutes or under_dags_test:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(deadline_missed),
    )


async def deadline_missed(context=None, **kwargs) -> None:
    """DeadlineAlert callback: the run is not done in time (runs in the triggerer); the alert
    is sent and stored in zuora.alerts like the monitor's."""
    dag_run = (context or {}).get("dag_run") or {}
    alert = Alert(
        kind="deadline_missed",
        severity="critical",
        title="Zuora workflow sync: run not finished within its deadline",
        details={"dag_id": dag_run.get("dag_id"), "run_id": dag_run.get("dag_run_id"), **kwargs},
    )
    await asyncio.to_thread(_send_and_store, alert)


def _send_and_store(alert: Alert) -> None:
    from zuora.monitor import raise_alerts
    from zuora.warehouse.connection import warehouse_connection

    try:
        with warehouse_connection() as conn:
            raise_alerts(conn, [alert])
    except Exception as exc:  # the warehouse is down: the alert must still go out
        log.error("Could not store alert %s (%s); sending it only", alert.kind, type(exc).__name__)
        send_alert(alert)


def _alert_connection(conn_id: str):
    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # not defined: AirflowNotFoundException or a runtime error outside tasks
        return None


def _url(conn, with_token: bool = False) -> str:
    host = (conn.host or "").rstrip("/")
    url = host if "://" in host else f"https://{host}"
    if with_token and conn.password:
        url = conn.password if "://" in conn.password else f"{url}/{conn.password.lstrip('/')}"
    return url


def _post(url: str, payload: dict) -> None:
    import requests  # only when an alert goes out: the DAG file stays cheap to parse

    response = requests.post(url, json=payload, timeout=(5, 15))
    response.raise_for_status()
