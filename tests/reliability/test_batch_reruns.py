"""A batch task's tries, as Airflow runs them (``zuora.batches``), against the real warehouse
and simulator: a worker killed in the middle of a batch, a retry after a lost try, a clear
after a fixed credential, and the failure callback's closing of what a last try left open. The
batches are the run's, as the DAG's list_customers makes them by default (auto)."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

from tests.reliability.conftest import stage_process
from tests.reliability.test_killed_merge import wait_for
from zuora import batches, sync
from zuora.retry import CustomerFailure, CustomersToRetry
from zuora.warehouse.connection import warehouse_connection


def the_runs_batch(env, monkeypatch, tenants: dict) -> dict:
    """The customers registered, then made into the run's batches as the DAG's list_customers
    makes them by default (auto), with one export slot: one batch of them all."""
    monkeypatch.setenv("ZUORA_SYNC_MAX_CONCURRENT_EXPORTS", "1")
    for name, (tenant, secret) in tenants.items():
        env.customer(name, tenant, secret=secret)
    shape = batches.shape_run(None)
    assert not shape.customers, "auto kept a group per customer"
    [batch] = shape.batches
    return batch


def statuses(env, run_id: str = "run-1") -> dict[str, str]:
    return dict(env.query("SELECT customer_id, status FROM zuora.sync_runs WHERE run_id = %s", run_id))


def lists(tenant) -> int:
    return tenant.stats()["by_endpoint_status"].get("list", {}).get("200", 0)


def test_a_worker_killed_mid_batch_leaves_no_sync_running_after_the_summary(env, sim_tenant, monkeypatch):
    tenants = {name: sim_tenant(workflows=2) for name in ("a1", "b2", "c3")}
    batch = the_runs_batch(env, monkeypatch, {name: (tenant, None) for name, tenant in tenants.items()})
    tenants["b2"].script([{"endpoint": "list", "kind": "hang", "seconds": 30}])
    worker = stage_process(f"from zuora import batches; batches.sync_batch({batch!r}, 'run-1', map_index=0)")
    try:
        wait_for(lambda: statuses(env) == {"a1": "success", "b2": "running"}, what="b2's hanging list")
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    # its last try lost with the worker: no callback runs; the run's summary closes b2 and c3
    with pytest.raises(sync.CustomersFailed, match="2 of 3 customers failed: b2, c3"):
        sync.summarize_run("run-1", batches.run_customers([], [batch]))  # as the DAG's summarize
    assert statuses(env) == {"a1": "success", "b2": "failed", "c3": "failed"}
    assert env.query("SELECT customer_id, stage, error_type FROM zuora.open_dead_letters ORDER BY 1") == [
        ("b2", "task", "TaskLost"),
        ("c3", "task", "TaskLost"),
    ]


def test_the_retry_of_a_lost_try_syncs_only_the_customers_still_open(env, sim_tenant, monkeypatch):
    tenants = {name: sim_tenant(workflows=2) for name in ("a1", "b2", "c3")}
    batch = the_runs_batch(env, monkeypatch, {name: (tenant, None) for name, tenant in tenants.items()})
    customers = batch["customers"]
    # what a worker lost in the middle of b2 leaves: a1 synced, b2 running, c3 not started
    sync.run_customer(customers[0], "run-1", map_index=0, task_id=batches.TASK_ID)
    sync.list_stage(customers[1], "run-1", map_index=0, task_id=batches.TASK_ID)

    outcome = batches.sync_batch(batch, "run-1", map_index=0, try_number=2, first_try=False)

    assert outcome == {"customers": 3, "succeeded": 2, "already_succeeded": 1, "failed": 0, "to_retry": 0}
    assert statuses(env) == {"a1": "success", "b2": "success", "c3": "success"}
    assert [lists(tenants[name]) for name in ("a1", "b2", "c3")] == [1, 2, 1]  # b2's first listing was lost


def test_a_retry_leaves_a_failed_customer_alone_and_a_clear_reruns_it(env, sim_tenant, monkeypatch):
    a1, b2 = sim_tenant(workflows=2), sim_tenant(workflows=2)
    batch = the_runs_batch(env, monkeypatch, {"a1": (a1, None), "b2": (b2, "wrong")})
    with pytest.raises(
        sync.CustomersFailed, match="1 of 2 customers of batch a1 … b2 \\(2\\) failed for good: b2"
    ):
        batches.sync_batch(batch, "run-1", map_index=0)
    assert env.query("SELECT customer_id, stage, error_type, attempts FROM zuora.open_dead_letters") == [
        ("b2", "list", "ZuoraAuthError", 1)
    ]
    env.customer("b2", b2)  # the credentials fixed
    b2.reset_stats()

    # a retry of the same try sequence (another customer's transient failure) does not retry b2
    with pytest.raises(sync.CustomersFailed, match="failed for good: b2"):
        batches.sync_batch(batch, "run-1", map_index=0, try_number=2, first_try=False)
    assert b2.stats()["total_requests"] == 0

    # the first try after a clear reruns it, and only it
    outcome = batches.sync_batch(batch, "run-1", map_index=0, try_number=3, first_try=True)
    assert outcome == {"customers": 2, "succeeded": 1, "already_succeeded": 1, "failed": 0, "to_retry": 0}
    assert statuses(env) == {"a1": "success", "b2": "success"}
    assert lists(a1) == 1
    # b2's dead letter is resolved by its next run's success, not by this run's own (as for a
    # cleared group of the unbatched DAG: include/sql/merge/07_resolve_dead_letters.sql)
    assert env.query("SELECT count(*) FROM zuora.open_dead_letters") == [(1,)]
    sync.run_customer(batch["customers"][1], "run-2")
    assert env.query("SELECT count(*) FROM zuora.open_dead_letters") == [(0,)]


def test_the_failure_callback_closes_only_the_syncs_the_last_try_left_open(env, sim_tenant, monkeypatch):
    names = ("done", "failed", "retrying", "unreached")
    batch = the_runs_batch(env, monkeypatch, {name: (sim_tenant(workflows=1), None) for name in names})
    done, failed, retrying, _ = batch["customers"]
    sync.run_customer(done, "run-1")
    with warehouse_connection() as conn:
        sync.fail_customer(conn, "run-1", "failed", stage="list", error_type="ZuoraAuthError", message="401")
    sync.list_stage(retrying, "run-1")
    error = CustomersToRetry(
        "1 of 4 customers failed transiently",
        {"retrying": CustomerFailure("export", "ZuoraTransientError", "503")},
    )

    closed = batches.close_unfinished(batch, "run-1", error, attempts=4, task="sync_customers[0]")

    assert closed == ["retrying", "unreached"]
    assert statuses(env) == {
        "done": "success",
        "failed": "failed",
        "retrying": "failed",
        "unreached": "failed",
    }
    assert env.query(
        "SELECT customer_id, stage, error_type, attempts, left(message, 60) FROM zuora.open_dead_letters ORDER BY 1"
    ) == [
        ("failed", "list", "ZuoraAuthError", 1, "401"),  # not counted twice
        ("retrying", "export", "ZuoraTransientError", 4, "503"),
        (
            "unreached",
            "task",
            "CustomersToRetry",
            4,
            "the batch task sync_customers[0] ended before the customer's",
        ),
    ]


def test_batches_are_consecutive_customers_with_short_labels():
    customers = [{"customer_id": name} for name in ("a", "b", "c", "d", "e" * 60)]
    made = batches.make_batches(customers, 2)
    assert [batch["label"] for batch in made] == ["a … b (2)", "c … d (2)", "e" * 39 + "…"]
    assert batches.customers_in(made) == customers
    assert batches.make_batches([], 2) == []


@pytest.mark.parametrize(
    ("try_number", "max_tries", "first"),
    [(1, 3, True), (2, 3, False), (4, 3, False), (5, 7, True), (6, 7, False)],  # 5: cleared after 4 tries
)
def test_the_first_try_after_a_clear_is_known_from_airflows_counts(try_number, max_tries, first):
    ti = SimpleNamespace(try_number=try_number, max_tries=max_tries, task=SimpleNamespace(retries=3))
    assert batches.is_first_try(ti) is first
