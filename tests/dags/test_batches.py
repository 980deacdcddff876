"""The sync DAG in batches ($ZUORA_SYNC_CUSTOMERS_PER_TASK > 1) end to end with dag.test():
real Postgres, the simulator over real HTTP. Each customer of a batch is synced, ledgered,
dead-lettered and retried on its own; a batch's retry syncs only its customers not yet
successful in the run; every customer is synced once per run, whatever the batch size."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.dags.test_sync_dag import query

DAY = datetime(2026, 12, 1, 2, tzinfo=UTC)


@pytest.fixture
def dag_in_batches(airflow_db, monkeypatch):
    """dag_in_batches(n) parses the sync DAG with $ZUORA_SYNC_CUSTOMERS_PER_TASK=n (and two
    retries 1 s apart), as every Airflow component would with that environment; the variables
    stay set while the test runs it, as they must on every component."""

    def parse(customers_per_task: int, retry_delays: str = "1,1"):
        from airflow.dag_processing.dagbag import DagBag

        monkeypatch.setenv("ZUORA_SYNC_CUSTOMERS_PER_TASK", str(customers_per_task))
        monkeypatch.setenv("ZUORA_SYNC_RETRY_DELAYS", retry_delays)
        dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["zuora_workflow_sync"]
        dag.deadline = None  # dag.test() crashes at the end of a run with a deadline (Airflow 3.3.2)
        return dag

    return parse


def run(dag, day: int = 0, **conf):
    """A run of ``dag`` on the daily run's ``day`` (0: DAY); each run gets a logical date of its
    own, or dag.test() would delete the session's earlier run of that date."""
    logical_date = DAY + timedelta(days=day, seconds=next(_runs))
    return dag.test(logical_date=logical_date, run_conf={"customer_ids": [], "full_refresh": False, **conf})


_runs = itertools.count()


def ledger(uri, run_id) -> dict[str, tuple]:
    """customer -> (status, task_id, map_index) of its sync_runs row in the run."""
    rows = query(
        uri, "SELECT customer_id, status, task_id, map_index FROM zuora.sync_runs WHERE run_id = %s", run_id
    )
    return {customer: tuple(rest) for customer, *rest in rows}


def batch_tasks(result) -> list[tuple]:
    """(map index, state, try number, grid label) of each sync_customers task instance."""
    tis = [ti for ti in result.get_task_instances() if ti.task_id == "sync_customers"]
    return sorted((ti.map_index, ti.state, ti.try_number, ti.rendered_map_index) for ti in tis)


def lists(tenant) -> int:
    return tenant.stats()["by_endpoint_status"].get("list", {}).get("200", 0)


def test_the_default_keeps_one_mapped_group_per_customer(sync_dag):
    assert sorted(sync_dag.task_ids) == [
        "customer_sync.export_workflows",
        "customer_sync.list_workflows",
        "customer_sync.upsert",
        "customer_sync.validate",
        "list_customers",
        "migrate",
        "summarize",
    ]


def test_batches_sync_each_customer_once_with_its_own_ledger_row(dag_in_batches, sync_env):
    tenants = {name: sync_env(name, workflows=3) for name in ("a1", "b2", "c3", "d4", "e5")}
    dag = dag_in_batches(2)
    assert sorted(dag.task_ids) == ["list_customers", "migrate", "summarize", "sync_customers"]

    first = run(dag)
    assert first.state == "success"
    assert batch_tasks(first) == [
        (0, "success", 1, "a1 … b2 (2)"),
        (1, "success", 1, "c3 … d4 (2)"),
        (2, "success", 1, "e5"),
    ]
    batch = {"a1": 0, "b2": 0, "c3": 1, "d4": 1, "e5": 2}
    assert ledger(sync_env.uri, first.run_id) == {
        customer: ("success", "sync_customers", index) for customer, index in batch.items()
    }
    for tenant in tenants.values():
        assert tenant.stats()["requests"] == {"token": 1, "list": 1, "export": 3}
    stored = query(sync_env.uri, "SELECT customer_id, count(*) FROM zuora.workflows GROUP BY 1 ORDER BY 1")
    assert stored == [(name, 3) for name in tenants]
    # the batch task's XCom is one small dict of counts
    sync_customers = first.get_task_instance("sync_customers", map_index=0)
    assert sync_customers.xcom_pull(task_ids="sync_customers", map_indexes=0) == {
        "customers": 2,
        "succeeded": 2,
        "already_succeeded": 0,
        "failed": 0,
        "to_retry": 0,
    }


def test_a_customer_with_bad_credentials_is_dead_lettered_and_its_batch_mates_are_synced(
    dag_in_batches, sync_env
):
    good = sync_env("a1", workflows=2), sync_env("c3", workflows=2)
    sync_env("b2", workflows=2, secret="not-the-secret")

    result = run(dag_in_batches(3))

    assert result.state == "failed"  # summarize fails the run: someone looks
    # a permanent failure: the batch task fails at once, no retry, naming the customer
    assert batch_tasks(result) == [(0, "failed", 1, "a1 … c3 (3)")]
    assert ledger(sync_env.uri, result.run_id) == {
        "a1": ("success", "sync_customers", 0),
        "b2": ("failed", "sync_customers", 0),
        "c3": ("success", "sync_customers", 0),
    }
    assert query(
        sync_env.uri,
        "SELECT customer_id, stage, error_type, attempts, last_run_id FROM zuora.open_dead_letters",
    ) == [("b2", "list", "ZuoraAuthError", 1, result.run_id)]
    assert all(lists(tenant) == 1 for tenant in good)


def test_a_transient_failure_retries_the_batch_task_which_syncs_only_that_customer(dag_in_batches, sync_env):
    a1, b2 = sync_env("a1", workflows=2), sync_env("b2", workflows=2)
    # b2's list answers 503 to every attempt of the first try (the hook tries 3 times)
    b2.script([{"endpoint": "list", "kind": "status", "status": 503, "count": 3}])

    result = run(dag_in_batches(2))

    assert result.state == "success"
    assert batch_tasks(result) == [(0, "success", 2, "a1 … b2 (2)")]  # the second try
    assert lists(a1) == 1  # not synced again by the retry
    assert b2.stats()["by_endpoint_status"]["list"] == {"503": 3, "200": 1}
    assert ledger(sync_env.uri, result.run_id) == {
        "a1": ("success", "sync_customers", 0),
        "b2": ("success", "sync_customers", 0),
    }
    assert query(sync_env.uri, "SELECT count(*) FROM zuora.dead_letters") == [(0,)]


def test_the_retry_leaves_a_customer_that_failed_for_good_alone(dag_in_batches, sync_env):
    a1, b2 = sync_env("a1", workflows=2), sync_env("b2", workflows=2)
    c3 = sync_env("c3", workflows=2, secret="not-the-secret")
    b2.script([{"endpoint": "list", "kind": "status", "status": 503, "count": 3}])

    result = run(dag_in_batches(3))

    # try 1: c3 dead-lettered, b2 to retry; try 2 syncs b2 only, then fails naming c3
    assert result.state == "failed"
    assert batch_tasks(result) == [(0, "failed", 2, "a1 … c3 (3)")]
    assert (lists(a1), lists(b2)) == (1, 1)
    assert c3.stats()["requests"] == {"token": 1}  # one try at its credentials
    assert ledger(sync_env.uri, result.run_id) == {
        "a1": ("success", "sync_customers", 0),
        "b2": ("success", "sync_customers", 0),
        "c3": ("failed", "sync_customers", 0),
    }
    assert query(
        sync_env.uri, "SELECT customer_id, stage, error_type, attempts FROM zuora.open_dead_letters"
    ) == [("c3", "list", "ZuoraAuthError", 1)]


def test_a_customer_still_failing_after_the_last_retry_is_dead_lettered_by_the_callback(
    dag_in_batches, sync_env
):
    a1, b2 = sync_env("a1", workflows=1), sync_env("b2", workflows=1)
    b2.set_faults(error_rate=1.0)  # every call to b2 answers 5xx

    result = run(dag_in_batches(2, retry_delays="1"))  # one retry

    assert result.state == "failed"
    assert batch_tasks(result) == [(0, "failed", 2, "a1 … b2 (2)")]
    assert lists(a1) == 1
    assert ledger(sync_env.uri, result.run_id) == {
        "a1": ("success", "sync_customers", 0),
        "b2": ("failed", "sync_customers", 0),
    }
    # its own stage and error from the last try, not the batch task's
    assert query(
        sync_env.uri, "SELECT customer_id, stage, error_type, attempts FROM zuora.open_dead_letters"
    ) == [("b2", "list", "ZuoraTransientError", 2)]
    assert query(
        sync_env.uri,
        "SELECT error LIKE 'list: ZuoraTransientError%%' FROM zuora.sync_runs WHERE customer_id = 'b2'",
    ) == [(True,)]


def test_customer_ids_is_one_batch_of_one_and_full_refresh_exports_everything(dag_in_batches, sync_env):
    tenants = {name: sync_env(name, workflows=2) for name in ("a1", "b2", "c3")}
    dag = dag_in_batches(2)

    only = run(dag, customer_ids=["b2"])
    assert only.state == "success"
    assert batch_tasks(only) == [(0, "success", 1, "b2")]
    assert ledger(sync_env.uri, only.run_id) == {"b2": ("success", "sync_customers", 0)}
    assert (lists(tenants["a1"]), lists(tenants["b2"]), lists(tenants["c3"])) == (0, 1, 0)

    assert run(dag).state == "success"
    for tenant in tenants.values():
        tenant.reset_stats()
    refresh = run(dag, full_refresh=True)
    assert refresh.state == "success"
    assert {name: tenant.stats()["requests"] for name, tenant in tenants.items()} == {
        name: {"list": 1, "export": 2} for name in tenants
    }


def test_a_changed_batch_size_syncs_every_customer_once_a_run(dag_in_batches, sync_env):
    tenants = {f"c{n}": sync_env(f"c{n}", workflows=1) for n in range(5)}

    runs = []
    for day, customers_per_task in enumerate((2, 3, 1)):  # 1: back to a group per customer
        dag = dag_in_batches(customers_per_task)
        for tenant in tenants.values():
            tenant.reset_stats()
        result = run(dag, day=day)
        assert result.state == "success", customers_per_task
        assert all(lists(tenant) == 1 for tenant in tenants.values()), customers_per_task
        runs.append(result.run_id)

    with psycopg.connect(sync_env.uri) as conn:
        rows = conn.execute(
            "SELECT run_id, count(*), count(DISTINCT customer_id), count(*) FILTER (WHERE status = 'success') "
            "FROM zuora.sync_runs GROUP BY 1"
        ).fetchall()
    assert sorted(rows) == sorted((run_id, 5, 5, 5) for run_id in runs)
    assert ledger(sync_env.uri, runs[1])["c4"] == ("success", "sync_customers", 1)  # c3 … c4 (2)
    assert ledger(sync_env.uri, runs[2])["c4"] == ("success", None, 4)  # its own group again
