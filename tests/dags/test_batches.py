"""The sync DAG's two shapes end to end with dag.test(): real Postgres, the simulator over real
HTTP. The DAG holds both; each run's list_customers picks one ($ZUORA_SYNC_CUSTOMERS_PER_TASK:
auto, the default, or a number that forces it). In batches each customer is still synced,
ledgered, dead-lettered and retried on its own; a batch's retry syncs only its customers not
yet successful in the run; every customer is synced once per run, whatever the shape.

The tests run the default (auto); those that want a batch of 2 or 3 customers give the run one
export slot ($ZUORA_SYNC_MAX_CONCURRENT_EXPORTS=1), so auto puts every customer past the first
in batches, about one per slot."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.dags.test_sync_dag import query

DAY = datetime(2026, 12, 1, 2, tzinfo=UTC)
GROUP_TASKS = [
    "customer_sync.export_workflows",
    "customer_sync.list_workflows",
    "customer_sync.upsert",
    "customer_sync.validate",
]


@pytest.fixture
def default_dag(airflow_db, monkeypatch):
    """default_dag(**env) parses the sync DAG with the product's settings plus ``env`` (and
    two retries 1 s apart unless given), as every Airflow component would; the variables stay
    set while the test runs it, as they must on every component."""

    def parse(**env: str):
        from airflow.dag_processing.dagbag import DagBag

        for name, value in {"ZUORA_SYNC_RETRY_DELAYS": "1,1", **env}.items():
            monkeypatch.setenv(name, value)
        dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["zuora_workflow_sync"]
        dag.deadline = None  # dag.test() crashes at the end of a run with a deadline (Airflow 3.3.2)
        return dag

    return parse


ONE_SLOT = {"ZUORA_SYNC_MAX_CONCURRENT_EXPORTS": "1"}  # auto: every run of 2 or more in batches


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


def states(result, *task_ids: str) -> dict[str, list[tuple]]:
    """task id -> (map index, state) of its task instances, for ``task_ids``."""
    found: dict[str, list[tuple]] = {task_id: [] for task_id in task_ids}
    for ti in result.get_task_instances():
        if ti.task_id in found:
            found[ti.task_id].append((ti.map_index, ti.state))
    return {task_id: sorted(tis) for task_id, tis in found.items()}


def lists(tenant) -> int:
    return tenant.stats()["by_endpoint_status"].get("list", {}).get("200", 0)


def test_the_dag_holds_both_shapes_whatever_the_setting(default_dag):
    """A component that parses the file with another $ZUORA_SYNC_CUSTOMERS_PER_TASK than the
    scheduler's finds the same tasks: only the batch task's timeout follows the setting."""
    shapes = {}
    for setting in ("auto", "1", "25"):
        dag = default_dag(ZUORA_SYNC_CUSTOMERS_PER_TASK=setting)
        shapes[setting] = {task.task_id: sorted(task.upstream_task_ids) for task in dag.tasks}
        timeout = dag.get_task("sync_customers").execution_timeout
        assert timeout == {"auto": timedelta(minutes=260), "1": timedelta(minutes=62)}.get(
            setting, timedelta(minutes=110)
        ), setting
    assert shapes["auto"] == shapes["1"] == shapes["25"]
    assert shapes["auto"] == {
        "list_customers": [],  # the warehouse's migrations first
        "list_batches": ["list_customers"],  # the batches, from list_customers' XCom
        "customer_sync.list_workflows": ["list_customers"],
        "customer_sync.export_workflows": ["customer_sync.list_workflows", "list_customers"],
        "customer_sync.validate": ["customer_sync.export_workflows", "list_customers"],
        "customer_sync.upsert": ["customer_sync.validate", "list_customers"],
        "sync_customers": ["list_batches"],
        "summarize": ["customer_sync.upsert", "list_batches", "list_customers", "sync_customers"],
    }


def test_more_customers_than_export_slots_go_in_batches_each_with_its_own_ledger_row(default_dag, sync_env):
    tenants = {name: sync_env(name, workflows=3) for name in ("a1", "b2", "c3", "d4", "e5")}

    first = run(default_dag())  # 5 customers, 4 export slots: batches of 2
    assert first.state == "success"
    assert batch_tasks(first) == [
        (0, "success", 1, "a1 … b2 (2)"),
        (1, "success", 1, "c3 … d4 (2)"),
        (2, "success", 1, "e5"),
    ]
    # the groups, mapped over no customer, are skipped without a task instance per customer
    assert states(first, *GROUP_TASKS, "list_batches") == {
        **{task: [(-1, "skipped")] for task in GROUP_TASKS},
        "list_batches": [(-1, "success")],
    }
    batch = {"a1": 0, "b2": 0, "c3": 1, "d4": 1, "e5": 2}
    assert ledger(sync_env.uri, first.run_id) == {
        customer: ("success", "sync_customers", index) for customer, index in batch.items()
    }
    for tenant in tenants.values():  # metrics: the task usage of issue 31
        assert tenant.stats()["requests"] == {"token": 1, "list": 1, "export": 3, "metrics": 1}
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
    assert first.get_task_instance("summarize").xcom_pull(task_ids="summarize")["succeeded"] == 5


def test_a_customer_with_bad_credentials_is_dead_lettered_and_its_batch_mates_are_synced(
    default_dag, sync_env
):
    good = sync_env("a1", workflows=2), sync_env("c3", workflows=2)
    sync_env("b2", workflows=2, secret="not-the-secret")

    result = run(default_dag(**ONE_SLOT))

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


def test_a_transient_failure_retries_the_batch_task_which_syncs_only_that_customer(default_dag, sync_env):
    a1, b2 = sync_env("a1", workflows=2), sync_env("b2", workflows=2)
    # b2's list answers 503 to every attempt of the first try (the hook tries 3 times)
    b2.script([{"endpoint": "list", "kind": "status", "status": 503, "count": 3}])

    result = run(default_dag(**ONE_SLOT))

    assert result.state == "success"
    assert batch_tasks(result) == [(0, "success", 2, "a1 … b2 (2)")]  # the second try
    assert lists(a1) == 1  # not synced again by the retry
    assert b2.stats()["by_endpoint_status"]["list"] == {"503": 3, "200": 1}
    assert ledger(sync_env.uri, result.run_id) == {
        "a1": ("success", "sync_customers", 0),
        "b2": ("success", "sync_customers", 0),
    }
    assert query(sync_env.uri, "SELECT count(*) FROM zuora.dead_letters") == [(0,)]


def test_the_retry_leaves_a_customer_that_failed_for_good_alone(default_dag, sync_env):
    a1, b2 = sync_env("a1", workflows=2), sync_env("b2", workflows=2)
    c3 = sync_env("c3", workflows=2, secret="not-the-secret")
    b2.script([{"endpoint": "list", "kind": "status", "status": 503, "count": 3}])

    result = run(default_dag(**ONE_SLOT))

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
    default_dag, sync_env
):
    a1, b2 = sync_env("a1", workflows=1), sync_env("b2", workflows=1)
    b2.set_faults(error_rate=1.0)  # every call to b2 answers 5xx

    result = run(default_dag(ZUORA_SYNC_RETRY_DELAYS="1", **ONE_SLOT))  # one retry

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


def test_a_run_for_one_named_customer_keeps_its_group_and_full_refresh_exports_everything_in_batches(
    default_dag, sync_env
):
    tenants = {name: sync_env(name, workflows=2) for name in ("a1", "b2", "c3", "d4", "e5")}
    dag = default_dag()

    only = run(dag, customer_ids=["b2"])  # a rerun of one customer from the trigger form
    assert only.state == "success"
    assert states(only, "customer_sync.upsert", "sync_customers", "list_batches") == {
        "customer_sync.upsert": [(0, "success")],
        "sync_customers": [(-1, "skipped")],
        "list_batches": [(-1, "success")],
    }
    assert only.get_task_instance("customer_sync.upsert", map_index=0).rendered_map_index == "b2"
    assert ledger(sync_env.uri, only.run_id) == {"b2": ("success", None, 0)}
    assert [lists(tenant) for tenant in tenants.values()] == [0, 1, 0, 0, 0]

    assert run(dag).state == "success"
    for tenant in tenants.values():
        tenant.reset_stats()
    refresh = run(dag, full_refresh=True)
    assert refresh.state == "success"
    assert len(batch_tasks(refresh)) == 3
    assert {name: tenant.stats()["requests"] for name, tenant in tenants.items()} == {
        name: {"list": 1, "export": 2} for name in tenants
    }


def test_a_changed_setting_syncs_every_customer_once_a_run(default_dag, sync_env):
    tenants = {f"c{n}": sync_env(f"c{n}", workflows=1) for n in range(5)}

    runs = []
    # a number forces the shape (1: a group per customer), auto picks batches of 2 for 5
    for day, setting in enumerate(("2", "3", "1", "auto")):
        dag = default_dag(ZUORA_SYNC_CUSTOMERS_PER_TASK=setting)
        for tenant in tenants.values():
            tenant.reset_stats()
        result = run(dag, day=day)
        assert result.state == "success", setting
        assert all(lists(tenant) == 1 for tenant in tenants.values()), setting
        runs.append(result.run_id)

    with psycopg.connect(sync_env.uri) as conn:
        rows = conn.execute(
            "SELECT run_id, count(*), count(DISTINCT customer_id), count(*) FILTER (WHERE status = 'success') "
            "FROM zuora.sync_runs GROUP BY 1"
        ).fetchall()
    assert sorted(rows) == sorted((run_id, 5, 5, 5) for run_id in runs)
    assert ledger(sync_env.uri, runs[1])["c4"] == ("success", "sync_customers", 1)  # c3 … c4 (2)
    assert ledger(sync_env.uri, runs[2])["c4"] == ("success", None, 4)  # its own group again
    assert ledger(sync_env.uri, runs[3])["c4"] == ("success", "sync_customers", 2)  # auto: c4 alone
