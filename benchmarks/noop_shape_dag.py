"""The floor Airflow itself imposes: zuora_workflow_sync's shape (migrate -> list_customers ->
one mapped group of four tasks per customer, labelled by customer -> summarize) with tasks that
do nothing but say when their body started (as our stages' reports do).
benchmarks/cluster_overhead.py puts it beside the real DAGs in the cluster's DAG folder and
runs both for the same customers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from airflow.sdk import TriggerRule, dag, task, task_group

LABEL = "{{ task.op_kwargs['customer']['customer_id'] }}"


@dag(
    dag_id="zuora_noop_shape",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["benchmark"],
)
def zuora_noop_shape():
    @task
    def migrate():
        return {}

    @task
    def list_customers(params=None, dag_run=None) -> list[dict]:
        return [{"customer_id": c} for c in dag_run.conf.get("customer_ids", [])]

    @task_group
    def customer_sync(customer: dict):
        @task(map_index_template=LABEL)
        def list_workflows(customer: dict):
            return {"started_at": time.time(), "duration_s": 0.0}

        @task(map_index_template=LABEL)
        def export_workflows(customer: dict, listed: dict):
            return {"started_at": time.time(), "duration_s": 0.0}

        @task(map_index_template=LABEL)
        def validate(customer: dict, exported: dict):
            return {"started_at": time.time(), "duration_s": 0.0}

        @task(map_index_template=LABEL)
        def upsert(customer: dict, validated: dict):
            return {"started_at": time.time(), "duration_s": 0.0}

        # keywords, as in our DAG: the map index template reads op_kwargs
        listed = list_workflows(customer=customer)
        exported = export_workflows(customer=customer, listed=listed)
        return upsert(customer=customer, validated=validate(customer=customer, exported=exported))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summarize(customers: list[dict] | None):
        return {"customers": len(customers or [])}

    customers = list_customers()
    migrate() >> customers
    customer_sync.expand(customer=customers) >> summarize(customers)


zuora_noop_shape()
