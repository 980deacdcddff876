"""The sync of one customer, as the four stages the DAG runs as tasks: list, export,
validate, upsert; plus the run's first and last steps.

Each stage reads and writes the warehouse's staging tables keyed by (run_id, customer_id),
adds its figures to the customer's ``sync_runs`` row, logs one structured JSON line and
returns a small dict of counts for XCom. Every stage is idempotent: rerunning it gives the
same tables.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import NamedTuple

from zuora import metrics, settings, usage, warehouse
from zuora.api.hook import ZuoraHook
from zuora.warehouse import versions
from zuora.warehouse.connection import warehouse_connection

log = logging.getLogger(__name__)

# The DAG's task per stage (task id -> stage name in sync_runs and dead_letters), in order.
STAGE_TASKS = {
    "list_workflows": "list",
    "export_workflows": "export",
    "validate": "validate",
    "upsert": "upsert",
}


class CustomersFailed(Exception):
    """Some customers of the run did not sync; they are in zuora.dead_letters."""


def migrate() -> list[str]:
    """The warehouse's migrations not applied yet (none on most runs); returns their names."""
    with warehouse_connection() as conn:
        applied = warehouse.apply_migrations(conn)
        versions.fill_fingerprints(conn)
        return applied


def customers_to_sync(customer_ids: list[str] | None, *, per_task: int = 1) -> list[dict]:
    """Enabled customers, or only those named, by id; a name that is not enabled is an error,
    and so are more mapped tasks (customers, or batches of ``per_task``) than Airflow maps
    ([core] max_map_length), with what to change."""
    customers = enabled_customers(customer_ids)
    check_map_length(len(customers), per_task)
    return customers


def enabled_customers(customer_ids: list[str] | None) -> list[dict]:
    """Enabled customers, or only those named, by id; a name that is not enabled is an error."""
    with warehouse_connection() as conn:
        customers = warehouse.list_customers(conn, customer_ids or None)
    missing = sorted(set(customer_ids or ()) - {c["customer_id"] for c in customers})
    if missing:
        raise ValueError(f"customer_ids not found or not enabled in zuora.customers: {missing}")
    return [
        {
            "customer_id": c["customer_id"],
            "zuora_conn_id": c["zuora_conn_id"],
            "environment": c["environment"],
        }
        for c in customers
    ]


def check_map_length(customers: int, per_task: int) -> None:
    """More mapped tasks (customers, or batches of ``per_task``) than Airflow maps ([core]
    max_map_length) is an error saying how many, the limit and what to change."""
    from airflow.sdk import conf  # the Task SDK's configuration: env vars, then airflow.cfg

    limit = conf.getint("core", "max_map_length", fallback=1024)
    tasks = -(-customers // per_task)
    if tasks <= limit:
        return
    what = f"{customers} customers to sync"
    if per_task > 1:
        what += f" in {tasks} batches of {per_task}"
    setting = settings.customers_per_task()
    now = f"auto, at most {settings.largest_batch()} a batch" if setting is None else setting
    raise ValueError(
        f"{what}, but Airflow maps at most {limit} per task ([core] max_map_length): raise it on "
        f"every Airflow component (scheduler, API server, workers, dag-processor), e.g. "
        f"AIRFLOW__CORE__MAX_MAP_LENGTH={tasks}, put more customers in a task "
        f"($ZUORA_SYNC_CUSTOMERS_PER_TASK, now {now}), or sync fewer customers per run with "
        "the customer_ids param"
    )


class Listed(NamedTuple):
    """What the list stage did: its report, and, when it finished the customer's sync itself
    (nothing to do after the listing), the export, validate and upsert reports; else None."""

    report: dict
    finished: dict[str, dict] | None = None


def list_stage(
    customer: dict,
    run_id: str,
    *,
    finish_unchanged: bool = False,
    lookback: timedelta | None = None,
    map_index: int | None = None,
    task_id: str | None = None,
) -> Listed:
    """List every workflow of the customer into staging.

    With ``finish_unchanged``, a customer with nothing to do after this listing (see
    ``work_after_listing``; and no version history to fetch) is finished here: the export
    (of the definitions due for the ``lookback`` re-export only), validate and upsert stages
    run in this process, and ``Listed.finished`` holds their reports. The DAG then skips its
    other tasks. ``map_index`` and ``task_id`` (None: the customer's own group) say which task
    of the run syncs the customer, for links to the grid.
    """
    started, hook = time.monotonic(), _hook(customer, run_id)
    customer_id = customer["customer_id"]
    with warehouse_connection() as conn:  # the task's one connection, and hook, for every stage
        warehouse.start_sync_run(
            conn,
            run_id,
            customer_id,
            conn_id=customer["zuora_conn_id"],
            environment=hook.credentials.environment,
            map_index=map_index,
            task_id=task_id,
        )
        listing = hook.list_workflows()
        listed = warehouse.stage_listing(
            conn, run_id, customer_id, listing, complete_flag=lambda: listing.complete
        )
        usage.read_task_usage(conn, hook, run_id, customer_id)  # at most one call a day; never fails
        counts = {"listed": listed, "listing_complete": listing.complete, "pages": listing.pages}
        warehouse.add_sync_counts(conn, run_id, customer_id, **counts, **_api(hook))
        report = _report("list", customer_id, run_id, started, counts, hook)
        if not finish_unchanged:
            return Listed(report)
        key = warehouse.resolve_encryption_key()
        work = _work_after_listing(conn, run_id, customer_id, key)
        if work:
            log.info("customer %s: export, validate and upsert to run (%s)", customer_id, "; ".join(work))
            return Listed(report)
        log.info(
            "customer %s: nothing new, changed, deleted or dead-lettered, no history to fetch: "
            "finishing its sync in this task (with the few definitions due for the lookback "
            "re-export); Airflow skips its export, validate and upsert tasks",
            customer_id,
        )
        hook.stats.clear()  # the export's own calls from here
        finished = {
            "export": _export(conn, hook, customer, run_id, key, lookback=lookback),
            "validate": _validate(conn, customer, run_id),
            "upsert": _upsert(conn, customer, run_id),
        }
    return Listed(report, finished)


def _work_after_listing(conn, run_id: str, customer_id: str, key: bytes | None) -> list[str]:
    budget = settings.history_calls()
    work = warehouse.work_after_listing(conn, run_id, customer_id, originals=budget if key else 0)
    changed, backfill = versions.workflows_to_list_versions(conn, run_id, customer_id, budget)
    pending = versions.versions_to_export(conn, run_id, customer_id, budget, with_originals=key is not None)
    if changed or backfill or pending:
        work.append("version history to fetch")
    return work


def export_stage(
    customer: dict, run_id: str, *, full_refresh: bool = False, lookback: timedelta | None = None
) -> dict:
    """Export what is new or changed (everything on a full refresh) into staging, then
    bring the workflows' version history up to date (see ``sync_versions``). With an export
    key, definitions and versions stored without their original (a run without a key) are
    exported again, at most ``$ZUORA_SYNC_HISTORY_CALLS`` of each per run."""
    hook, key = _hook(customer, run_id), warehouse.resolve_encryption_key()
    with warehouse_connection() as conn:
        return _export(conn, hook, customer, run_id, key, full_refresh=full_refresh, lookback=lookback)


def _export(
    conn,
    hook: ZuoraHook,
    customer: dict,
    run_id: str,
    key: bytes | None,
    *,
    full_refresh: bool = False,
    lookback: timedelta | None = None,
) -> dict:
    started, customer_id = time.monotonic(), customer["customer_id"]
    ids = warehouse.workflows_to_export(
        conn,
        run_id,
        customer_id,
        full_refresh=full_refresh,
        lookback=settings.lookback() if lookback is None else lookback,
        originals=settings.history_calls() if key else 0,
    )
    counts = warehouse.stage_exports(
        conn, run_id, customer_id, hook.export_workflows(ids), encryption_key=key
    )
    counts |= sync_versions(conn, hook, run_id, customer_id, key, settings.history_calls())
    warehouse.add_sync_counts(conn, run_id, customer_id, **counts, **_api(hook))
    return _report("export", customer_id, run_id, started, counts, hook)


def sync_versions(
    conn, hook: ZuoraHook, run_id: str, customer_id: str, key: bytes | None, budget: int
) -> dict:
    """List the versions of workflows whose list item changed, then spend at most ``budget``
    calls on the history backfill: listing versions never listed, exporting versions never
    exported. A failed call is counted, logged and tried again on a later run; it never fails
    the customer's sync (its current definitions are already staged)."""
    changed, backfill = versions.workflows_to_list_versions(conn, run_id, customer_id, budget)
    item_hashes = dict(changed + backfill)
    listed = failed = 0
    for zuora_id, listing, error in hook.list_versions_of(item_hashes):
        if error is None:
            listed += versions.record_versions(
                conn, run_id, customer_id, zuora_id, item_hashes[zuora_id], listing or []
            )
        else:
            failed += 1
            log.warning("versions of workflow %s of %s not listed: %s", zuora_id, customer_id, error)
    versions.fill_from_current_exports(conn, run_id, customer_id)
    with_originals = key is not None
    pending = versions.versions_to_export(
        conn, run_id, customer_id, budget - len(backfill), with_originals=with_originals
    )
    counts = versions.store_version_exports(conn, run_id, customer_id, hook.export_versions(pending), key)
    counts["versions_failed"] += failed
    left = versions.versions_pending(conn, run_id, customer_id, with_originals=with_originals)
    if left:
        log.info(
            "history of %s: %d versions (or workflows' version lists) still to fetch; "
            "later runs continue, %d calls each ($ZUORA_SYNC_HISTORY_CALLS)",
            customer_id,
            left,
            budget,
        )
    return {"versions_listed": listed, **counts, "versions_pending": left}


def validate_stage(customer: dict, run_id: str) -> dict:
    with warehouse_connection() as conn:
        return _validate(conn, customer, run_id)


def _validate(conn, customer: dict, run_id: str) -> dict:
    started = time.monotonic()
    counts = warehouse.validate_staged(conn, run_id, customer["customer_id"])
    return _report("validate", customer["customer_id"], run_id, started, counts)


def upsert_stage(customer: dict, run_id: str) -> dict:
    """Merge the customer's staging in one transaction, then close its sync_runs row."""
    with warehouse_connection() as conn:
        return _upsert(conn, customer, run_id)


def _upsert(conn, customer: dict, run_id: str) -> dict:
    started, customer_id = time.monotonic(), customer["customer_id"]
    counts = warehouse.merge_customer(
        conn, run_id, customer_id, environment=customer.get("environment"), conn_id=customer["zuora_conn_id"]
    )
    warehouse.finish_sync_run(conn, run_id, customer_id, status="success")
    metrics.customer_sync_ended(conn, run_id, customer_id)
    return _report("upsert", customer_id, run_id, started, counts)


def run_customer(
    customer: dict,
    run_id: str,
    *,
    full_refresh: bool = False,
    lookback: timedelta | None = None,
    stages: tuple[str, ...] = tuple(STAGE_TASKS.values()),
    map_index: int | None = None,
    task_id: str | None = None,
) -> dict[str, dict]:
    """The customer's stages in order, in this process, as the DAG's mapped group runs them
    one task each (an unchanged customer finished by its list stage, as in the DAG);
    returns each stage's report. A batch task of the DAG syncs each of its customers with it
    (``map_index`` and ``task_id`` name that task); tools, benchmarks and tests use it too.
    An error raised by a stage is re-raised as it is; ``failed_stage(error)`` names the stage."""
    every_stage = stages == tuple(STAGE_TASKS.values())
    reports: dict[str, dict] = {}
    for stage in stages:
        with _stage(stage):
            if stage == "list":
                listed = list_stage(
                    customer,
                    run_id,
                    finish_unchanged=every_stage and not full_refresh,
                    lookback=lookback,
                    map_index=map_index,
                    task_id=task_id,
                )
                reports["list"] = listed.report
                if listed.finished is not None:
                    return {**reports, **listed.finished}
            elif stage == "export":
                reports[stage] = export_stage(customer, run_id, full_refresh=full_refresh, lookback=lookback)
            else:
                reports[stage] = {"validate": validate_stage, "upsert": upsert_stage}[stage](customer, run_id)
    return reports


_FAILED_STAGE = "zuora_failed_stage"  # the attribute run_customer puts on an error it re-raises


@contextlib.contextmanager
def _stage(stage: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:
        if not hasattr(error, _FAILED_STAGE):
            with contextlib.suppress(AttributeError):  # an error without a __dict__ keeps 'task'
                setattr(error, _FAILED_STAGE, stage)
        raise


def failed_stage(error: BaseException) -> str:
    """The stage of ``run_customer`` that raised ``error`` (list, export, validate, upsert;
    as the DAG's tasks, an unchanged customer's whole sync is its list stage), else 'task'."""
    return getattr(error, _FAILED_STAGE, "task")


def fail_customer(
    conn, run_id: str, customer_id: str, *, stage: str, error_type: str, message: str, attempts: int = 1
) -> None:
    """What finally failed in a customer's sync: its dead letter, its ``sync_runs`` row closed
    as failed (``error`` = "<stage>: <message>"), and the sync's end in the metrics."""
    warehouse.record_dead_letter(
        conn,
        run_id=run_id,
        customer_id=customer_id,
        stage=stage,
        error_type=error_type,
        message=message,
        attempts=attempts,
    )
    warehouse.finish_sync_run(conn, run_id, customer_id, status="failed", error=f"{stage}: {message}")
    metrics.customer_sync_ended(conn, run_id, customer_id, stage=stage)


def summarize_run(run_id: str, customers: list[dict] | None) -> dict:
    """The run's outcome per customer; raises ``CustomersFailed`` when any did not succeed.

    A customer whose tasks ended without closing its ``sync_runs`` row (a task lost with its
    worker on its last try runs no failure callback) is closed here as failed, with a dead
    letter, so no row stays 'running' and the failure is alerted like any other.
    """
    if customers is None:
        raise CustomersFailed(f"run {run_id} has no list of customers: list_customers failed")
    customer_ids = [c["customer_id"] for c in customers]
    with warehouse_connection() as conn:
        outcome = {
            customer_id: (status, error)
            for customer_id, status, error in conn.execute(
                "SELECT customer_id, status, error FROM zuora.sync_runs WHERE run_id = %s", (run_id,)
            ).fetchall()
        }
        failed = {}
        for customer_id in customer_ids:
            status, error = outcome.get(customer_id, ("not started", None))
            if status in ("running", "not started"):
                error = (
                    f"the customer's tasks ended while its sync was {status} (a task lost "
                    "with its worker, or never run): rerun the customer"
                )
                warehouse.record_dead_letter(
                    conn,
                    run_id=run_id,
                    customer_id=customer_id,
                    stage="task",
                    error_type="TaskLost",
                    message=error,
                )
                warehouse.finish_sync_run(conn, run_id, customer_id, status="failed", error=error)
                metrics.customer_sync_ended(conn, run_id, customer_id, stage="task")
            if status != "success":
                failed[customer_id] = error or status
        metrics.run_summarized(conn, run_id, len(customer_ids), len(failed))
    summary = {
        "run_id": run_id,
        "customers": len(customer_ids),
        "succeeded": len(customer_ids) - len(failed),
        "failed": failed,
    }
    log.info("zuora sync run summary %s", json.dumps(summary, default=str, sort_keys=True))
    if failed:
        raise CustomersFailed(
            f"{len(failed)} of {len(customer_ids)} customers failed: "
            f"{', '.join(sorted(failed))}; see zuora.dead_letters "
            f"and zuora.sync_runs for run {run_id}"
        )
    return summary


def _hook(customer: dict, run_id: str) -> ZuoraHook:
    """The customer's hook, refusing a connection to the other kind of Zuora environment."""
    hook = ZuoraHook(customer["zuora_conn_id"], track_id=f"zws-{customer['customer_id']}-{run_id}")
    hook.credentials.check_environment(customer.get("environment"), customer["customer_id"])
    return hook


def _api(hook: ZuoraHook) -> dict:
    stats = hook.stats
    return {
        "api_requests": stats["requests"],
        "token_mints": stats["token_mints"],
        "rate_limited": stats["rate_limited"],
        "retries": stats["retries"],
    }


def _report(
    stage: str, customer_id: str, run_id: str, started: float, counts: dict, hook: ZuoraHook | None = None
) -> dict:
    """One structured JSON log line per stage, and the small dict the task returns."""
    duration = time.monotonic() - started
    report = {
        "stage": stage,
        "customer_id": customer_id,
        "run_id": run_id,
        "started_at": round(time.time() - duration, 3),
        "duration_s": round(duration, 3),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **counts,
        **(_api(hook) if hook else {}),
    }
    log.info("zuora sync stage %s", json.dumps(report, default=str, sort_keys=True))
    return report
