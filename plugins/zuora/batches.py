"""Customers synced in batches: one mapped task syncs several customers, each on its own.

The sync DAG holds both shapes; each run's ``list_customers`` hands its customers to one
(``shape_run``): one mapped group of four tasks per customer for a few customers, else one
``sync_customers`` task per batch (``$ZUORA_SYNC_CUSTOMERS_PER_TASK``: ``auto``, or a number
that forces the shape; ``zuora.settings.customers_per_task_for``). The other shape is mapped
over an empty list, so Airflow skips it. The scheduler's work grows with the run's task
instances, Airflow's CPU with its task processes (benchmarks/SCALE.md). Each customer of a
batch is still synced, ledgered, dead-lettered and retried on its own:

- the task runs its customers' syncs one after the other (``sync.run_customer``: the four
  stages, an unchanged customer finished by its list stage); one customer's failure never
  stops the others;
- a permanent failure is dead-lettered at once and not retried; a transient one makes the
  task raise ``CustomersToRetry`` once the others ran, and Airflow retries the task;
- every try syncs only the batch's customers whose sync in the run is still open
  (``zuora.sync_runs``: not 'success', not 'failed'), so none is synced twice in a run; the
  first try after the task is cleared reopens its failed ones first (a rerun);
- the task fails when any of its customers failed, naming them; its failure callback closes
  what its last try left open (``close_unfinished``), the run's summary what a lost worker left.

Batches are made once per run, by ``list_customers``: the customers by id, in consecutive
chunks. Changing the batch size (or the fleet) between runs therefore never syncs a customer
twice, or skips one, within a run.
"""

from __future__ import annotations

import json
import logging
from typing import NamedTuple

from zuora import settings, sync, warehouse
from zuora.retry import CustomerFailure, CustomersToRetry, is_transient
from zuora.warehouse.connection import warehouse_connection

log = logging.getLogger(__name__)

TASK_ID = "sync_customers"  # the DAG's batch task, recorded in zuora.sync_runs.task_id
_LABEL_ID_CHARS = 40  # a customer id in a grid label is cut to this


class RunShape(NamedTuple):
    """A run's customers, handed to one shape: one mapped group each (``customers``), or in
    ``batches``; the other is empty."""

    customers: list[dict]
    batches: list[dict]


def shape_run(customer_ids: list[str] | None) -> RunShape:
    """The run's customers (enabled, or those named, by id) in the shape the setting picks for
    their number (``settings.customers_per_task_for``), within Airflow's ``max_map_length``."""
    customers = sync.enabled_customers(customer_ids)
    per_task = settings.customers_per_task_for(len(customers))
    sync.check_map_length(len(customers), per_task or 1)
    shape = RunShape(customers, []) if per_task is None else RunShape([], make_batches(customers, per_task))
    log.info(
        "%d customers: %s",
        len(customers),
        "one mapped group each (customer_sync)"
        if per_task is None
        else f"{len(shape.batches)} batches of up to {per_task} (sync_customers)",
    )
    return shape


def run_customers(customers: list[dict] | None, batches: list[dict] | None) -> list[dict] | None:
    """Every customer of the run, from both shapes (None when the run has no list of them)."""
    if customers is None or batches is None:
        return None
    return customers + customers_in(batches)


def batches_to_sync(customer_ids: list[str] | None, per_task: int) -> list[dict]:
    """The run's batches: enabled customers (or those named), by id, ``per_task`` a batch."""
    return make_batches(sync.customers_to_sync(customer_ids, per_task=per_task), per_task)


def make_batches(customers: list[dict], per_task: int) -> list[dict]:
    """``customers`` in consecutive batches of ``per_task``: ``{"label", "customers"}``."""
    chunks = [customers[start : start + per_task] for start in range(0, len(customers), per_task)]
    return [{"label": label(chunk), "customers": chunk} for chunk in chunks]


def label(customers: list[dict]) -> str:
    """A batch's label in the grid: its customer, or ``first … last (count)``."""
    ids = [_short(c["customer_id"]) for c in customers]
    return ids[0] if len(ids) == 1 else f"{ids[0]} … {ids[-1]} ({len(ids)})"


def _short(customer_id: str) -> str:
    return customer_id if len(customer_id) <= _LABEL_ID_CHARS else customer_id[: _LABEL_ID_CHARS - 1] + "…"


def customers_in(batches: list[dict]) -> list[dict]:
    """Every customer of the batches, in order."""
    return [customer for batch in batches for customer in batch["customers"]]


def is_first_try(ti) -> bool:
    """Whether this try of the task instance is its first since it was created or cleared (a
    clear gives it ``retries`` more tries: Airflow's own reckoning of a cleared task's first
    try, as for a sensor's first reschedule)."""
    return bool(ti.try_number == ti.max_tries - (ti.task.retries or 0) + 1)


def sync_batch(
    batch: dict,
    run_id: str,
    *,
    map_index: int,
    full_refresh: bool = False,
    try_number: int = 1,
    first_try: bool = True,
) -> dict:
    """Sync the batch's customers whose sync in the run is still open, one after the other;
    returns counts per outcome. Raises ``CustomersToRetry`` (transient) when any failed
    transiently, else ``sync.CustomersFailed`` when any of the batch failed for good in the run.
    """
    ids = [c["customer_id"] for c in batch["customers"]]
    with warehouse_connection() as conn:
        rerun = warehouse.reopen_failed_syncs(conn, run_id, ids) if first_try else []
        before = warehouse.sync_statuses(conn, run_id, ids)
    if rerun:
        log.info("rerunning the failed customers of batch %s: %s", batch["label"], ", ".join(rerun))
    open_syncs = [c for c in batch["customers"] if before.get(c["customer_id"]) not in ("success", "failed")]
    to_retry: dict[str, CustomerFailure] = {}
    for customer in open_syncs:
        failure = _sync_customer(
            customer, run_id, map_index=map_index, full_refresh=full_refresh, attempts=try_number
        )
        if failure is not None:
            to_retry[customer["customer_id"]] = failure
    with warehouse_connection() as conn:
        after = warehouse.sync_statuses(conn, run_id, ids)
    failed = [customer_id for customer_id in ids if after.get(customer_id) == "failed"]
    already = sum(before.get(customer_id) == "success" for customer_id in ids)
    outcome = {
        "customers": len(ids),
        "succeeded": sum(after.get(customer_id) == "success" for customer_id in ids) - already,
        "already_succeeded": already,
        "failed": len(failed),
        "to_retry": len(to_retry),
    }
    log.info(
        "zuora sync batch %s",
        json.dumps({"batch": batch["label"], "map_index": map_index, "try": try_number, **outcome}),
    )
    _raise_for_failures(batch, run_id, to_retry, failed)
    return outcome


def _sync_customer(
    customer: dict, run_id: str, *, map_index: int, full_refresh: bool, attempts: int
) -> CustomerFailure | None:
    """One customer's sync; a permanent failure is dead-lettered here. Returns the transient
    failure (the task's retry syncs the customer again), else None."""
    customer_id = customer["customer_id"]
    try:
        sync.run_customer(customer, run_id, full_refresh=full_refresh, map_index=map_index, task_id=TASK_ID)
        return None
    except Exception as error:
        failure = CustomerFailure(
            sync.failed_stage(error), type(error).__name__, f"{type(error).__name__}: {error}"
        )
        transient = is_transient(error)
    if transient:
        log.warning(
            "customer %s: %s failed, retried with the task: %s", customer_id, failure.stage, failure.message
        )
        return failure
    log.error("customer %s: %s failed for good: %s", customer_id, failure.stage, failure.message)
    with warehouse_connection() as conn:
        sync.fail_customer(conn, run_id, customer_id, **failure._asdict(), attempts=attempts)
    return None


def _raise_for_failures(
    batch: dict, run_id: str, to_retry: dict[str, CustomerFailure], failed: list[str]
) -> None:
    count = len(batch["customers"])
    for_good = (
        f"{len(failed)} of {count} customers of batch {batch['label']} failed for good: {', '.join(failed)}"
    )
    if to_retry:
        raise CustomersToRetry(
            f"{len(to_retry)} of {count} customers of batch {batch['label']} failed transiently, "
            f"the task's retry syncs them: {', '.join(to_retry)}" + (f"; {for_good}" if failed else ""),
            to_retry,
        )
    if failed:
        raise sync.CustomersFailed(f"{for_good}; see zuora.dead_letters and zuora.sync_runs for run {run_id}")


def close_unfinished(
    batch: dict, run_id: str, error: BaseException | None, *, attempts: int, task: str
) -> list[str]:
    """After the batch task failed for good: each customer of the batch whose sync in the run is
    still open (running, or not started) is closed as failed, with a dead letter: its own
    transient failure of the last try when there was one, else the task's error. Returns whose."""
    ids = [c["customer_id"] for c in batch["customers"]]
    failures = error.failures if isinstance(error, CustomersToRetry) else {}
    error_type = type(error).__name__ if error is not None else "TaskFailed"
    task_failure = CustomerFailure(
        "task",
        error_type,
        f"the batch task {task} ended before the customer's sync did"
        + (f": {error_type}: {error}" if error is not None else ""),
    )
    with warehouse_connection() as conn:
        statuses = warehouse.sync_statuses(conn, run_id, ids)
        unfinished = [
            customer_id for customer_id in ids if statuses.get(customer_id) not in ("success", "failed")
        ]
        for customer_id in unfinished:
            failure = failures.get(customer_id, task_failure)
            sync.fail_customer(conn, run_id, customer_id, **failure._asdict(), attempts=attempts)
    return unfinished
