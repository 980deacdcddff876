"""A customer whose task was lost with its worker on the last try (no exception, so no failure
callback) is closed by the run's summary: failed, dead-lettered, alerted; never 'running'."""

from __future__ import annotations

import pytest

from zuora import batches, sync, warehouse
from zuora.warehouse.connection import warehouse_connection


@pytest.mark.parametrize("slots", ["4", "1"], ids=["groups", "batches"])
def test_the_summary_closes_a_customer_left_running(env, sim_tenant, monkeypatch, slots):
    """In the default's two shapes: with 4 export slots auto gives the run's two customers a
    group each, with one it puts them in a batch."""
    monkeypatch.setenv("ZUORA_SYNC_MAX_CONCURRENT_EXPORTS", slots)
    env.customer("acme", sim_tenant(workflows=2))
    env.customer("globex", sim_tenant(workflows=2))
    shape = batches.shape_run(None)  # what the run's list_customers hands on
    task_id = None if shape.customers else batches.TASK_ID
    acme, globex = shape.customers or batches.customers_in(shape.batches)
    sync.run_customer(acme, "run-1", map_index=0, task_id=task_id)
    # then globex's task (its group's export task, or the batch task) died with its worker for good
    sync.list_stage(globex, "run-1", map_index=1 if task_id is None else 0, task_id=task_id)
    with pytest.raises(sync.CustomersFailed, match="1 of 2 customers failed: globex"):
        sync.summarize_run("run-1", batches.run_customers(shape.customers, shape.batches))
    assert env.query("SELECT DISTINCT task_id FROM zuora.sync_runs") == [(task_id,)]
    assert env.query(
        "SELECT customer_id, status, coalesce(error, '') LIKE '%%task lost%%' FROM zuora.sync_runs "
        "WHERE run_id = 'run-1' ORDER BY 1"
    ) == [("acme", "success", False), ("globex", "failed", True)]
    assert env.query("SELECT customer_id, stage, error_type FROM zuora.open_dead_letters") == [
        ("globex", "task", "TaskLost")
    ]


def test_the_summary_of_a_run_without_a_customer_list_says_why():
    with pytest.raises(sync.CustomersFailed, match="list_customers failed"):
        sync.summarize_run("run-1", batches.run_customers(None, None))  # list_customers failed


def test_a_failed_customer_is_not_closed_twice(env, sim_tenant):
    acme = env.customer("acme", sim_tenant(workflows=1))
    sync.list_stage(acme, "run-1")
    with warehouse_connection() as conn:  # what the failure callback does
        warehouse.finish_sync_run(conn, "run-1", "acme", status="failed", error="export: boom")
    with pytest.raises(sync.CustomersFailed):
        sync.summarize_run("run-1", [acme])
    assert env.query("SELECT status, error FROM zuora.sync_runs") == [("failed", "export: boom")]
    assert env.query("SELECT count(*) FROM zuora.dead_letters") == [(0,)]
