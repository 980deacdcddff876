"""The floor of an unchanged daily run: zuora_workflow_sync's run (migrate -> list_customers ->
one mapped task per customer, labelled by customer, in the zuora_api pool -> summarize) with
tasks that do nothing. An unchanged customer costs our DAG one task process (its list task),
so this is what Airflow itself costs for it. benchmarks/unchanged_run.py runs it beside the real
DAG in the same cluster, for the same customers."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import TriggerRule, dag, task

LABEL = "{{ task.op_kwargs['customer']['customer_id'] }}"


@dag(
    dag_id="zuora_noop_one_task",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["benchmark"],
)
def zuora_noop_one_task():
    @task
    def migrate():
        return {}

    @task
    def list_customers(dag_run=None) -> list[dict]:
        return [{"customer_id": c} for c in dag_run.conf.get("customer_ids", [])]

    @task(pool="zuora_api", map_index_template=LABEL)
    def sync_customer(customer: dict):
        return {"customer_id": customer["customer_id"]}

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summarize(customers: list[dict] | None):
        return {"customers": len(customers or [])}

    customers = list_customers()
    migrate() >> customers
    sync_customer.expand(customer=customers) >> summarize(customers)


zuora_noop_one_task()
