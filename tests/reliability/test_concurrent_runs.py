"""Runs that overlap: the same customer synced by two runs at once, and an old run's merge
replayed after a newer run (a backfill, or a failed upsert cleared and rerun later): the
merges serialise on the customer's lock, nothing is stored twice, and newer data stays."""

from __future__ import annotations

import threading

from tests.reliability.checks import assert_consistent, current_ids, rows, snapshot
from zuora import sync
from zuora.sync import run_customer


def test_same_customer_synced_by_two_runs_at_once(env, sim_tenant):
    tenant = sim_tenant(workflows=40, latency_ms=15)
    acme = env.customer("acme", tenant)
    env.monkeypatch.setenv("ZUORA_SYNC_HISTORY_CALLS", "0")  # counts current exports only
    start = threading.Barrier(2)
    outcome, errors = {}, []

    def run(run_id):
        try:
            start.wait()
            outcome[run_id] = run_customer(acme, run_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((run_id, exc))

    def run_at_once(*run_ids):
        threads = [threading.Thread(target=run, args=(run_id,)) for run_id in run_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors

    run_at_once("run-a", "run-b")
    inserted = [outcome[r]["upsert"]["inserted"] for r in ("run-a", "run-b")]
    assert sorted(inserted) == [0, 40]  # one merge inserted, the other saw them
    for run_id in ("run-a", "run-b"):
        assert_consistent(env.uri, "acme", run_id, tenant=tenant, key=env.key)
    assert rows(env.uri, "SELECT change_kind, count(*) FROM zuora.workflow_history GROUP BY 1") == [
        ("insert", 40)
    ]
    assert tenant.stats()["requests"]["export"] == 80  # both exported everything, as expected

    # a second pair at once, after changes at Zuora: each change recorded once
    ids = tenant.workflow_ids()
    tenant.update_workflow(ids[0], name="Renamed")
    tenant.delete_workflow(ids[1])
    tenant.add_workflow(name="New")
    start.reset()
    run_at_once("run-c", "run-d")
    for run_id in ("run-c", "run-d"):
        assert_consistent(env.uri, "acme", run_id, tenant=tenant, key=env.key)
    kinds = dict(
        rows(
            env.uri,
            "SELECT change_kind, count(*) FROM zuora.workflow_history "
            "WHERE run_id IN ('run-c', 'run-d') GROUP BY 1",
        )
    )
    assert kinds == {"insert": 1, "update": 1, "delete": 1}


def test_old_run_replayed_after_a_newer_one_keeps_newer_data(env, sim_tenant):
    tenant = sim_tenant(workflows=20)
    acme = env.customer("acme", tenant)
    run_customer(acme, "run-0")
    ids = tenant.workflow_ids()

    # the old run lists, exports and validates, but its merge does not happen yet
    run_customer(acme, "run-old", stages=("list", "export", "validate"))
    tenant.update_workflow(ids[0], name="Renamed later")  # newer updatedAt
    tenant.delete_workflow(ids[1])  # gone at Zuora
    tenant.update_workflow(ids[2], description="changed, same updatedAt", touch_updated_at=False)
    tenant.update_workflow(ids[3], touch_updated_at=False, bump_version=False)  # export only
    added = tenant.add_workflow(name="Added later")["id"]
    run_customer(acme, "run-new", full_refresh=True)
    assert_consistent(env.uri, "acme", "run-new", tenant=tenant, key=env.key)
    newer = snapshot(env.uri, "acme")

    sync.upsert_stage(acme, "run-old")  # the replay

    after = snapshot(env.uri, "acme")
    assert current_ids(env.uri, "acme") == set(tenant.workflow_ids())
    assert ids[1] not in current_ids(env.uri, "acme") and added in current_ids(env.uri, "acme")
    assert after["workflows"] == newer["workflows"]
    assert after["definitions"] == newer["definitions"]
    assert after["history"] == newer["history"]
    old = assert_consistent(env.uri, "acme", "run-old")
    assert old["listed"] == 20
    assert rows(
        env.uri, "SELECT stale, restored, updated, inserted FROM zuora.sync_runs WHERE run_id = 'run-old'"
    ) == [(3, 0, 0, 0)]
