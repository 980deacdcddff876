"""Alerts, sent through the channel the Airflow connection ``zuora_alerts`` names.

- conn type ``smtp``: e-mail through Airflow's SmtpNotifier; extra ``{"to": "oncall@x.com"}``
- conn type ``slackwebhook``: a Slack incoming webhook (URL in host, or host + token in password)
- conn type ``http``: a generic webhook; the alert is POSTed as JSON to the host URL
- no such connection: a structured warning in the log, so nothing is silently lost

Task failure callbacks use ``ZuoraAlertNotifier`` (defined here, registered and imported by the
DAGs as ``zuora.notifications.alerts.ZuoraAlertNotifier``); the DAG deadline uses
``deadline_missed`` (async, runs in the triggerer); the monitor DAG calls ``raise_alerts``,
which stores each alert in the warehouse (``zuora.warehouse.alerts``) before sending it.

Names from Zuora reach titles (a workflow switched off): an e-mail's HTML and a Slack text
escape them, so they are shown, never interpreted (no markup, no Slack link or mention).

A webhook URL is a secret (Slack's carries its token in the path): it is registered with
Airflow's secrets masker and never put in a log line, an exception or an alert row; a
failed delivery says the connection id and the HTTP status instead.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

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


class AlertDeliveryError(Exception):
    """An alert channel refused the alert or could not be reached. The message names the
    connection id and the HTTP status, never the URL (a webhook URL holds its token)."""


def send_alert(alert: Alert, conn_id: str = settings.ALERT_CONN_ID) -> str:
    """Deliver ``alert``; returns the channel used (smtp, slackwebhook, http or log).
    Raises ``AlertDeliveryError`` when a webhook refuses it or cannot be reached."""
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
            to=to,
            subject=alert.title,
            html_content=f"<pre>{html.escape(alert.text())}</pre>",
            smtp_conn_id=conn_id,
        ).notify({})
    elif channel in ("slackwebhook", "slack_webhook"):
        _post(conn_id, _url(conn, with_token=True), {"text": slack_text(alert.text())})
    elif channel == "http":
        _post(conn_id, _url(conn), asdict(alert))
    else:
        raise ValueError(f"connection '{conn_id}' has type {channel!r}; use smtp, slackwebhook or http")
    return channel


def deliver(alert: Alert, conn_id: str = settings.ALERT_CONN_ID) -> str:
    """``send_alert`` that never raises: the channel used, or ``failed: <error type>``
    (logged with the connection id, never with the channel's URL)."""
    try:
        return send_alert(alert, conn_id)
    except Exception as exc:  # a broken channel must not hide the alert: it is still stored
        reason = str(exc) if isinstance(exc, AlertDeliveryError) else type(exc).__name__
        log.error("Could not send alert %s: %s", alert.kind, reason)
        return f"failed: {type(exc).__name__}"


def raise_alerts(conn, alerts: list[Alert], *, since: datetime | None = None) -> list[dict]:
    """Store, send and record each alert in turn, on the warehouse connection ``conn``.

    Each alert is committed to ``zuora.alerts`` before it is sent and its channel recorded
    after, so a later failure never un-stores an alert that went out. With ``since`` (when
    the monitor's run started), an alert an earlier try of the run stored is not sent again
    (unless sending it failed then). An alert that cannot be stored is not sent: the first
    such error is raised once the others went out, and the task's retry raises it again.
    Returns ``{kind, title, channel}`` of each alert handled.
    """
    from zuora.warehouse.alerts import earlier_alert, record_alert, record_channel

    handled, store_error = [], None
    for alert in alerts:
        try:
            earlier = earlier_alert(conn, alert, since) if since else None
            if earlier and not earlier[1].startswith("failed"):
                handled.append({"kind": alert.kind, "title": alert.title, "channel": earlier[1]})
                continue  # an earlier try stored it and sent it (or was sending it)
            alert_id = earlier[0] if earlier else record_alert(conn, alert)
        except Exception as exc:
            log.error("Could not store alert %s (%s); not sending it yet", alert.kind, type(exc).__name__)
            store_error = store_error or exc
            continue
        channel = deliver(alert)
        record_channel(conn, alert_id, channel)
        handled.append({"kind": alert.kind, "title": alert.title, "channel": channel})
    if store_error is not None:
        raise store_error
    return handled


def slack_text(text: str) -> str:
    """``text`` as Slack shows it literally: ``&``, ``<`` and ``>`` escaped, so a name from
    Zuora (a workflow's, in a title) cannot become a link or an ``<!channel>`` mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def customer_of(context) -> str | None:
    """The customer id of a per-customer task (its ``customer`` argument), else None."""
    customer = (getattr(context.get("task"), "op_kwargs", None) or {}).get("customer")
    return customer.get("customer_id") if isinstance(customer, dict) else None


def batch_of(context) -> dict | None:
    """The batch of a batch task (its ``batch`` argument: ``label`` and ``customers``), else
    None (``zuora.batches``)."""
    batch = (getattr(context.get("task"), "op_kwargs", None) or {}).get("batch")
    return batch if isinstance(batch, dict) and isinstance(batch.get("customers"), list) else None


class ZuoraAlertNotifier(BaseNotifier):
    """Task callback: alert with the task, customer (or batch), try and error, through the
    ``zuora_alerts`` connection: ``@dag(default_args={"on_failure_callback": ZuoraAlertNotifier()})``.

    The title is built per call, not templated: Airflow renders a notifier's template fields
    in place, so one shared instance would keep the first task's title.
    """

    def __init__(self, alerts_conn_id: str = settings.ALERT_CONN_ID):
        super().__init__()
        self.alerts_conn_id = alerts_conn_id

    def notify(self, context) -> None:
        ti = context.get("ti")
        error = context.get("exception")
        customer, batch = customer_of(context), batch_of(context)
        title = f"Zuora workflow sync: {getattr(ti, 'task_id', 'a task')} failed" + (
            f" for customer {customer}" if customer else f" for batch {batch['label']}" if batch else ""
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
                    **({"batch": batch["label"]} if batch else {}),
                    "try_number": getattr(ti, "try_number", None),
                    "error": f"{type(error).__name__}: {error}" if error else None,
                },
            ),
            self.alerts_conn_id,
        )


def run_deadline(minutes: float, argv: list[str] = sys.argv) -> DeadlineAlert | None:
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
    await asyncio.to_thread(_store_and_send, alert)


def _store_and_send(alert: Alert) -> None:
    """``raise_alerts`` for one alert; when the warehouse cannot store it, it is sent all
    the same (nothing retries a deadline callback)."""
    from zuora.warehouse.alerts import record_alert, record_channel
    from zuora.warehouse.connection import warehouse_connection

    alert_id = None
    try:
        with warehouse_connection() as conn:
            alert_id = record_alert(conn, alert)
            record_channel(conn, alert_id, deliver(alert))
    except Exception as exc:
        if alert_id is not None:  # stored and sent: only where it went is not recorded
            log.error("Could not record where alert %s went (%s)", alert.kind, type(exc).__name__)
            return
        log.error("Could not store alert %s (%s); sending it only", alert.kind, type(exc).__name__)
        deliver(alert)


def _alert_connection(conn_id: str):
    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # not defined: AirflowNotFoundException or a runtime error outside tasks
        return None


def _url(conn, with_token: bool = False) -> str:
    """The webhook URL of ``conn``, registered with the secrets masker (whole, and its path
    and query, where a Slack webhook keeps its token) before anything can log it."""
    host = (conn.host or "").rstrip("/")
    url = host if "://" in host else f"https://{host}"
    if with_token and conn.password:
        url = conn.password if "://" in conn.password else f"{url}/{conn.password.lstrip('/')}"
    from airflow.sdk.log import mask_secret

    mask_secret(url)
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(path.strip("/")) >= 8:  # a token, not "/" or "/hook"
        mask_secret(path)
    return url


def _post(conn_id: str, url: str, payload: dict) -> None:
    """POST ``payload`` as JSON; errors name ``conn_id`` and the status, never ``url``."""
    import requests  # only when an alert goes out: the DAG file stays cheap to parse

    try:
        response = requests.post(url, json=payload, timeout=(5, 15), allow_redirects=False)
    except requests.RequestException as exc:
        raise AlertDeliveryError(
            f"the alert connection '{conn_id}' could not be reached ({type(exc).__name__})"
        ) from None
    if response.status_code >= 300:
        raise AlertDeliveryError(f"the alert connection '{conn_id}' answered HTTP {response.status_code}")
