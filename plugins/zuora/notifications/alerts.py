"""``ZuoraAlertNotifier``: a task failure alert through the ``zuora_alerts`` connection.

    @dag(default_args={"on_failure_callback": ZuoraAlertNotifier()})

What it sends, and through which channel, is ``zuora.alerts``' business (``send_alert``).
"""

from __future__ import annotations

from airflow.sdk import BaseNotifier

from zuora import settings
from zuora.alerts import Alert, batch_of, customer_of, send_alert


class ZuoraAlertNotifier(BaseNotifier):
    """Task callback: alert with the task, customer (or batch), try and error.

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
