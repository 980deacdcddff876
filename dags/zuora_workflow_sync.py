"""
### Zuora workflow sync

Keeps the Zuora Workflow definitions of every enabled customer in the warehouse
(`zuora` schema, connection `zuora_warehouse`).

**Shape:** `list_customers`, which applies the warehouse's migrations, lists the run's customers
and hands them to one of two shapes → `summarize`, which writes the run summary and **fails the run when any customer failed** (all
other customers still finish). Failed customers are in `zuora.dead_letters`.

- **One mapped group per customer** (a few customers: a small fleet, or a run for a few named
  ones): `list_workflows` → `export_workflows` → `validate` → `upsert`, labelled by customer
  id. A customer with nothing new, changed or deleted is synced by `list_workflows` alone,
  which then ends **skipped** with the reason in its log, and its other three tasks are skipped
  without starting (its `zuora.sync_runs` row says success, with the usual counts).
- **In batches** (more customers): `list_batches` → one mapped `sync_customers` task per batch
  (by id, labelled `first … last (count)`), about one per export slot, which syncs each
  customer in turn: one customer's failure is its own (dead-lettered, the others go on); a
  transient one retries the task, which then syncs only the batch's customers not yet
  successful in the run.

The shape not picked is mapped over no customer, so Airflow skips it.
`$ZUORA_SYNC_CUSTOMERS_PER_TASK`: `auto` (the default) picks per run; 1 forces the groups, N
batches of N.

**Trigger form (params):**
- `customer_ids`: only these customers (empty = every enabled customer)
- `full_refresh`: export every workflow, not only new or changed ones

**Rerun:** trigger with `{"customer_ids": ["acme"]}` (a run of a few customers: one group
each), or clear a failed customer's tasks in the grid (its group, by customer label; in
batches, its batch, by range: the customers of the batch not yet successful in the run are
synced again). **Backfill:** `airflow backfill create
--dag-id zuora_workflow_sync --from-date 2026-11-01 --to-date 2026-11-07`; an older run never
overwrites newer data (last write wins by Zuora's `updatedAt`).

**Deadline:** an alert when a run is not done 30 minutes after it was queued
(`$ZUORA_SYNC_DEADLINE_MINUTES`, 0 = none); off under `airflow dags test`, where Airflow 3.3.2
crashes at the end of a run of any DAG with a deadline.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, TriggerRule, dag, task, task_group
from airflow.sdk.exceptions import AirflowSkipException

from zuora import settings
from zuora.alerts import run_deadline
from zuora.callbacks import dead_letter_failed_task
from zuora.notifications.alerts import ZuoraAlertNotifier
from zuora.retry import TransientErrorRetryPolicy

# Task bodies import zuora.sync (requests, psycopg) when they run, not
# when this file is parsed: the dag-processor parses it every 30 s, each task process once.
# No `-> dict` return annotations: Airflow would store every key of a report as an XCom row
# of its own (multiple_outputs), dozens of metadata rows per customer.
CUSTOMER_LABEL = "{{ task.op_kwargs['customer']['customer_id'] }}"
BATCH_LABEL = "{{ task.op_kwargs['batch']['label'] }}"


@dag(
    dag_id="zuora_workflow_sync",
    schedule=settings.schedule(),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["zuora", "sync"],
    doc_md=__doc__,
    params={
        # nullable, so the trigger form does not mark them required
        "customer_ids": Param(
            [],
            type=["array", "null"],
            items={"type": "string"},
            description="Only these customers; empty means every enabled customer.",
        ),
        "full_refresh": Param(
            False,
            type=["boolean", "null"],
            description="Export every workflow, not only new or changed ones.",
        ),
    },
    default_args={
        "retries": len(settings.retry_delays()),
        "retry_delay": settings.retry_delays()[0],
        "retry_policy": TransientErrorRetryPolicy(),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": [dead_letter_failed_task, ZuoraAlertNotifier()],
    },
    deadline=run_deadline(settings.deadline_minutes()),
)
def zuora_workflow_sync():
    # The warehouse's migrations first (idempotent: a new release's, else nothing), then the
    # run's customers go to one shape: returned for one group each, or pushed as `batches` (the
    # other is empty). Airflow refuses to map over a key of a task's XCom (at parse time), so
    # `list_batches` hands the batches on as its own.
    @task(execution_timeout=timedelta(minutes=5))
    def list_customers(params=None, ti=None) -> list[dict]:
        from zuora import batches, sync

        sync.migrate()
        shape = batches.shape_run(params["customer_ids"])
        ti.xcom_push(key="batches", value=shape.batches)
        return shape.customers

    @task(execution_timeout=timedelta(minutes=5))
    def list_batches(batched: list[dict]) -> list[dict]:
        return batched

    @task(trigger_rule=TriggerRule.ALL_DONE, on_failure_callback=ZuoraAlertNotifier())
    def summarize(customers: list[dict] | None, batched: list[dict] | None, run_id=None):
        from zuora import batches, sync

        return sync.summarize_run(run_id, batches.run_customers(customers, batched))

    customers = list_customers()
    batched = list_batches(customers["batches"])
    [one_group_per_customer(customers), one_task_per_batch(batched)] >> summarize(customers, batched)


def one_group_per_customer(customers):
    """A mapped group of four tasks per customer (none when the run is in batches)."""

    @task_group
    def customer_sync(customer: dict):
        @task(pool=settings.POOL, map_index_template=CUSTOMER_LABEL)
        def list_workflows(customer: dict, params=None, run_id=None, ti=None):
            from zuora import sync

            listed = sync.list_stage(
                customer, run_id, finish_unchanged=not params["full_refresh"], map_index=ti.map_index
            )
            if listed.finished is not None:
                # A customer with nothing to do was synced by this task. Ending it skipped makes
                # the scheduler skip the other three without starting them (a short-circuit
                # cannot: Airflow 3.3 ignores it inside a mapped task group, apache/airflow#67265).
                raise AirflowSkipException(
                    f"customer {customer['customer_id']} synced in this task: nothing new, changed "
                    "or deleted, so export, validate and upsert are skipped (see zuora.sync_runs)"
                )
            return listed.report

        @task(
            pool=settings.POOL,
            max_active_tis_per_dagrun=settings.max_concurrent_exports(),
            map_index_template=CUSTOMER_LABEL,
            execution_timeout=timedelta(minutes=60),
        )
        def export_workflows(customer: dict, listed: dict, params=None, run_id=None):
            from zuora import sync

            return sync.export_stage(customer, run_id, full_refresh=bool(params["full_refresh"]))

        @task(map_index_template=CUSTOMER_LABEL)
        def validate(customer: dict, exported: dict, run_id=None):
            from zuora import sync

            return sync.validate_stage(customer, run_id)

        @task(map_index_template=CUSTOMER_LABEL)
        def upsert(customer: dict, validated: dict, run_id=None):
            from zuora import sync

            return sync.upsert_stage(customer, run_id)

        listed = list_workflows(customer=customer)
        exported = export_workflows(customer=customer, listed=listed)
        validated = validate(customer=customer, exported=exported)
        return upsert(customer=customer, validated=validated)

    return customer_sync.expand(customer=customers)


def one_task_per_batch(batched):
    """A mapped `sync_customers` task per batch (none when the run has one group per customer).
    Each holds one `zuora_api` pool slot while it syncs its customers one after the other; at
    most `$ZUORA_SYNC_MAX_CONCURRENT_EXPORTS` run at once per run."""

    @task(
        pool=settings.POOL,
        max_active_tis_per_dagrun=settings.max_concurrent_exports(),
        map_index_template=BATCH_LABEL,
        execution_timeout=settings.batch_timeout(),
    )
    def sync_customers(batch: dict, params=None, run_id=None, ti=None):
        from zuora import batches

        return batches.sync_batch(
            batch,
            run_id,
            map_index=ti.map_index,
            full_refresh=bool(params["full_refresh"]),
            try_number=ti.try_number,
            first_try=batches.is_first_try(ti),
        )

    return sync_customers.expand(batch=batched)


zuora_workflow_sync()
