"""Task failure callback: what finally failed lands in ``zuora.dead_letters``.

Airflow calls ``on_failure_callback`` once a task has failed for good (after its retries).
The callback records the customer, stage, error, try number and run, and marks the
customer's ``sync_runs`` row failed; a later successful sync of the customer resolves it.
For a batch task, it does so for each customer of the batch whose sync its last try left
open (``zuora.batches.close_unfinished``); those that failed for good already have theirs.
"""

from __future__ import annotations

import logging

from zuora.alerts import batch_of, customer_of

log = logging.getLogger(__name__)


def dead_letter_failed_task(context) -> None:
    customer_id, batch = customer_of(context), batch_of(context)
    if customer_id:
        _dead_letter_customer(context, customer_id)
    elif batch is not None:
        _close_batch(context, batch)
    # else not a per-customer task: the run summary reports it


def _dead_letter_customer(context, customer_id: str) -> None:
    """A task of the customer's own group failed for good: its stage is the customer's."""
    from zuora import sync  # at failure time: the DAG file stays cheap to parse
    from zuora.warehouse.connection import warehouse_connection

    ti, error = context["ti"], context.get("exception")
    stage = sync.STAGE_TASKS.get(ti.task_id.rsplit(".", 1)[-1], "task")
    message = f"{type(error).__name__}: {error}" if error else "task failed"
    try:
        with warehouse_connection() as conn:
            sync.fail_customer(
                conn,
                context["run_id"],
                customer_id,
                stage=stage,
                error_type=type(error).__name__,
                message=message,
                attempts=ti.try_number,
            )
    except Exception:
        log.exception("Could not write the dead letter for customer %s (%s)", customer_id, message)


def _close_batch(context, batch: dict) -> None:
    """A batch task failed for good: its customers whose sync is still open are closed."""
    from zuora import batches  # at failure time, as above

    ti = context["ti"]
    task = f"{ti.task_id}[{ti.map_index}]"
    try:
        closed = batches.close_unfinished(
            batch, context["run_id"], context.get("exception"), attempts=ti.try_number, task=task
        )
    except Exception:
        log.exception("Could not write the dead letters of batch %s (%s)", batch.get("label"), task)
        return
    if closed:
        log.warning(
            "batch %s: closed as failed, with a dead letter: %s", batch.get("label"), ", ".join(closed)
        )
