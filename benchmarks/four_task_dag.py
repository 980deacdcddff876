"""zuora_workflow_sync as it was before an unchanged customer was synced by its list task:
the same DAG, but every customer runs its four stage tasks whatever the listing found.
benchmarks/unchanged_run.py runs it beside the real DAG for the same customers."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import TriggerRule, dag, task, task_group

from zuora import settings

LABEL = "{{ task.op_kwargs['customer']['customer_id'] }}"


@dag(
    dag_id="zuora_sync_four_tasks",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["benchmark"],
)
def zuora_sync_four_tasks():
    @task
    def migrate():
        from zuora import sync

        return {"applied": sync.migrate()}

    @task
    def list_customers(params=None, dag_run=None) -> list[dict]:
        from zuora import sync

        return sync.customers_to_sync(dag_run.conf.get("customer_ids"))

    @task_group
    def customer_sync(customer: dict):
        @task(pool=settings.POOL, map_index_template=LABEL)
        def list_workflows(customer: dict, run_id=None):
            from zuora import sync

            return sync.list_stage(customer, run_id).report  # never finishes the customer

        @task(
            pool=settings.POOL,
            max_active_tis_per_dagrun=settings.max_concurrent_exports(),
            map_index_template=LABEL,
        )
        def export_workflows(customer: dict, listed: dict, run_id=None):
            from zuora import sync

            return sync.export_stage(customer, run_id)

        @task(map_index_template=LABEL)
        def validate(customer: dict, exported: dict, run_id=None):
            from zuora import sync

            return sync.validate_stage(customer, run_id)

        @task(map_index_template=LABEL)
        def upsert(customer: dict, validated: dict, run_id=None):
            from zuora import sync

            return sync.upsert_stage(customer, run_id)

        listed = list_workflows(customer=customer)
        exported = export_workflows(customer=customer, listed=listed)
        return upsert(customer=customer, validated=validate(customer=customer, exported=exported))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summarize(customers: list[dict] | None, run_id=None):
        from zuora import sync

        return sync.summarize_run(run_id, customers)

    customers = list_customers()
    migrate() >> customers
    customer_sync.expand(customer=customers) >> summarize(customers)


zuora_sync_four_tasks()
