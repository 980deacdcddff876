"""
### Zuora sync monitor

Hourly health checks over `zuora.sync_runs` and `zuora.dead_letters`. Alerts (sent through
the `zuora_alerts` connection and stored in `zuora.alerts`) when, within the last hour:
the customer-sync failure rate is over 5%, a customer sync took over 30 minutes, Zuora
rate-limited us often, dead letters are growing, or (with an `airflow_api` connection)
over 1,000 task instances are queued; a check that cannot run alerts as `check_failed`.
Thresholds: Airflow Variable `zuora_monitor_thresholds`, JSON, e.g.
`{"max_failure_rate": 0.1, "max_rate_limited": 500}`.

It also alerts, once per customer and month, when a customer's Workflow tasks this month reach
80 % and 100 % of its allowance, or are projected to pass it before the 20th; and once per
event when a sync saw a workflow switched off in Zuora, not through this product's restore.

`apply_retention` removes old staging, resolved dead letters, validation issues and sync runs
(Variable `zuora_retention`, JSON, e.g. `{"staging_days": 2, "sync_runs_days": 400}`) and
expired OAuth token Variables. A failed task alerts through `zuora_alerts`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

from zuora.notifications.alerts import ZuoraAlertNotifier
from zuora.retry import TransientErrorRetryPolicy


@dag(
    dag_id="zuora_sync_monitor",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["zuora", "monitoring"],
    doc_md=__doc__,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "retry_policy": TransientErrorRetryPolicy(),  # a bad Variable fails at once
        "execution_timeout": timedelta(minutes=10),
        "on_failure_callback": ZuoraAlertNotifier(),
    },
)
def zuora_sync_monitor():
    @task
    def check_sync_health() -> list[dict]:
        from zuora import monitor  # task-time import: the DAG file stays cheap to parse

        return monitor.check_sync_health()

    @task
    def apply_retention():
        from zuora import monitor

        return monitor.apply_retention()

    check_sync_health()
    apply_retention()


zuora_sync_monitor()
