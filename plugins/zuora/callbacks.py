"""Task failure callback: what finally failed lands in ``zuora.dead_letters``.

Airflow calls ``on_failure_callback`` once a task has failed for good (after its retries).
The callback records the customer, stage, error, try number and run, and marks the
customer's ``sync_runs`` row failed; a later successful sync of the customer resolves it.
"""

from __future__ import annotations

import logging

from zuora.alerts import customer_of

log = logging.getLogger(__name__)


def dead_letter_failed_task(context) -> None:
    ti = context["ti"]
    customer_id = customer_of(context)
    if not customer_id:
        return  # not a per-customer task: the run summary reports it
    from zuora import metrics, sync, warehouse  # at failure time: the DAG file stays cheap to parse
    from zuora.warehouse.connection import warehouse_connection

    error = context.get("exception")
    stage = sync.STAGE_TASKS.get(ti.task_id.rsplit(".", 1)[-1], "task")
    message = f"{type(error).__name__}: {error}" if error else "task failed"
    try:
        with warehouse_connection() as conn:
            warehouse.record_dead_letter(
                conn,
                run_id=context["run_id"],
                customer_id=customer_id,
                stage=stage,
                error_type=type(error).__name__,
                message=message,
                attempts=ti.try_number,
            )
            warehouse.finish_sync_run(
                conn, context["run_id"], customer_id, status="failed", error=f"{stage}: {message}"
            )
            metrics.customer_sync_ended(conn, context["run_id"], customer_id, stage=stage)
    except Exception:
        log.exception("Could not write the dead letter for customer %s (%s)", customer_id, message)
