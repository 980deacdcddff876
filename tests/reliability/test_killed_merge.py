"""The upsert task's process is killed (SIGKILL) in the middle of a customer's merge, then the
task is rerun: the merge is one transaction, so the warehouse shows the previous state until
the rerun, and the complete new state after it."""

from __future__ import annotations

import os
import signal
import time

import psycopg

from tests.reliability.checks import assert_consistent, rows, snapshot
from tests.reliability.conftest import stage_process
from zuora import sync
from zuora.sync import run_customer


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_merge_killed_mid_transaction_then_rerun(env, sim_tenant):
    tenant = sim_tenant(workflows=30)
    acme = env.customer("acme", tenant)
    run_customer(acme, "run-1")
    assert_consistent(env.uri, "acme", "run-1", tenant=tenant, key=env.key)

    ids = tenant.workflow_ids()
    tenant.update_workflow(ids[0], name="Renamed")
    tenant.update_workflow(ids[1], description="same timestamp", touch_updated_at=False)
    tenant.delete_workflow(ids[2])
    added = tenant.add_workflow(name="Brand new")["id"]
    run_customer(acme, "run-2", stages=("list", "export", "validate"))
    before = snapshot(env.uri, "acme")

    # A second session holds the run's ledger row: the merge does all its writes (workflows,
    # definitions, history, soft deletes, dead letters) and then waits to record its counts.
    with psycopg.connect(env.uri) as blocker:
        blocker.execute(
            "SELECT 1 FROM zuora.sync_runs WHERE run_id = 'run-2' AND customer_id = 'acme' FOR UPDATE"
        )
        worker = stage_process(f"sync.upsert_stage({acme!r}, 'run-2')")
        try:
            backend = wait_for(
                lambda: rows(
                    env.uri,
                    """
                SELECT pid FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE 'INSERT INTO zuora.sync_runs%%'""",
                ),
                what="the blocked merge",
            )[0][0]
            written = {
                r[0]
                for r in rows(
                    env.uri,
                    """
                SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                 WHERE l.pid = %s AND l.mode = 'RowExclusiveLock'""",
                    backend,
                )
            }
            assert {"workflows", "workflow_definitions", "workflow_history"} <= written
        finally:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        assert snapshot(env.uri, "acme") == before  # nothing of the merge is visible
        blocker.rollback()  # let the orphaned backend go on
    # the backend finishes its statement, finds its client gone and rolls back
    wait_for(
        lambda: not rows(env.uri, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", backend),
        what="the orphaned backend to end",
    )
    assert snapshot(env.uri, "acme") == before
    assert rows(env.uri, "SELECT status FROM zuora.sync_runs WHERE run_id = 'run-2'") == [("running",)]
    assert rows(env.uri, "SELECT listed FROM zuora.staging_listings WHERE run_id = 'run-2'") == [(30,)]

    sync.upsert_stage(acme, "run-2")  # the task, rerun
    run = assert_consistent(env.uri, "acme", "run-2", tenant=tenant, key=env.key)
    assert run["listed"] == 30
    kinds = dict(
        rows(
            env.uri,
            "SELECT change_kind, count(*) FROM zuora.workflow_history WHERE run_id = 'run-2' GROUP BY 1",
        )
    )
    assert kinds == {"update": 2, "insert": 1, "delete": 1}
    assert rows(env.uri, "SELECT name FROM zuora.workflows WHERE zuora_id = %s", ids[0]) == [("Renamed",)]
    assert added in {
        r[0] for r in rows(env.uri, "SELECT zuora_id FROM zuora.workflows WHERE deleted_at IS NULL")
    }
    # and rerunning the finished task changes nothing
    after = snapshot(env.uri, "acme")
    assert sync.upsert_stage(acme, "run-2")["already_merged"] is True
    assert snapshot(env.uri, "acme") == after
