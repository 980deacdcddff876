"""Workflow status transitions (zuora.workflow_events) through real syncs against the
simulator: activated, deactivated and active version changed, with when they were seen; a
version a restore of this product activated is 'restore', everything else (Zuora switching a
workflow off, a person in Zuora) 'zuora'; the events migration 0010 derives from the history
are the ones the syncs record."""

from __future__ import annotations

from datetime import datetime

from zuora import restore, sync
from zuora.warehouse.sql import sql_text

EVENT = (
    "SELECT zuora_id, kind, workflow_name, old_status, new_status, old_version, new_version, "
    "old_version_id IS DISTINCT FROM new_version_id, made_by, restore_id IS NOT NULL FROM zuora.workflow_events "
    "WHERE run_id = %s ORDER BY zuora_id, kind"
)


def started(env, run_id: str) -> datetime:
    return env.query("SELECT started_at FROM zuora.sync_runs WHERE run_id = %s", run_id)[0][0]


def test_activated_deactivated_and_version_changed_seen_by_the_syncs(env, sim_tenant):
    tenant = sim_tenant(workflows=0)
    ms = {"ts_format": "iso_z"}  # Zuora's updatedAt to the millisecond, so it orders with our clock
    late = tenant.add_workflow(name="Late fees", **ms)["id"]
    dunning = tenant.add_workflow(name="Dunning", **ms)["id"]
    paused = tenant.add_workflow(name="Paused", status="Inactive", **ms)["id"]
    quiet = tenant.add_workflow(name="Quiet", **ms)["id"]
    acme = env.customer("acme", tenant)
    sync.run_customer(acme, "run-1")
    assert env.query("SELECT count(*) FROM zuora.workflow_events") == [(0,)]  # first seen: no transition

    # Zuora switches Dunning off (no new version); Late fees gets version 0.0.2; Paused is
    # switched on; Quiet is renamed (a change, but no transition)
    tenant.update_workflow(dunning, status="Inactive", bump_version=False, change_content=False)
    tenant.update_workflow(late)
    tenant.update_workflow(paused, status="Active", bump_version=False, change_content=False)
    tenant.update_workflow(quiet, name="Quieter", bump_version=False, change_content=False)
    sync.run_customer(acme, "run-2")
    assert env.query(EVENT, "run-2") == [
        (late, "version_changed", "Late fees", "Active", "Active", "0.0.1", "0.0.2", True, "zuora", False),
        (dunning, "deactivated", "Dunning", "Active", "Inactive", "0.0.1", "0.0.1", False, "zuora", False),
        (paused, "activated", "Paused", "Inactive", "Active", "0.0.1", "0.0.1", False, "zuora", False),
    ]
    # when: between the previous sync and this run's listing; Zuora's updatedAt of the change
    for seen_at, previous_seen_at, zuora_updated_at in env.query(
        "SELECT seen_at, previous_seen_at, zuora_updated_at FROM zuora.workflow_events"
    ):
        assert previous_seen_at == started(env, "run-1") < zuora_updated_at
        assert started(env, "run-2") <= seen_at and zuora_updated_at <= seen_at
    assert env.query(
        "SELECT count(*) FROM zuora.workflow_events WHERE alerted_at IS NULL AND recorded_from = 'sync'"
    ) == [(3,)]

    sync.run_customer(acme, "run-3")  # nothing changed: nothing new
    tenant.update_workflow(dunning, status="Active", bump_version=False, change_content=False)
    tenant.update_workflow(dunning)  # switched back on, with a new version, between two syncs
    sync.run_customer(acme, "run-4")
    assert env.query(EVENT, "run-3") == []
    assert env.query(EVENT, "run-4") == [
        (dunning, "activated", "Dunning", "Inactive", "Active", "0.0.1", "0.0.2", True, "zuora", False),
        (dunning, "version_changed", "Dunning", "Inactive", "Active", "0.0.1", "0.0.2", True, "zuora", False),
    ]


def test_a_version_a_restore_activated_is_the_restore_s_a_switch_off_is_zuora_s(env, sim_tenant):
    tenant = sim_tenant(workflows=0)
    wid = tenant.add_workflow(name="Late fees")["id"]
    tenant.update_workflow(wid)
    acme = env.customer("acme", tenant)
    sync.run_customer(acme, "run-1")  # 0.0.1 and the active 0.0.2, with their originals

    restore.run("acme", wid, version="0.0.1", activate=True, requested_by="jane")
    _, summary = restore.run("acme", wid, version="0.0.1", activate=True, apply_it=True, requested_by="jane")
    assert summary["applied"] and summary["new_version"] == "0.0.3"
    sync.run_customer(acme, "run-2")
    [restore_id] = [r[0] for r in env.query("SELECT restore_id FROM zuora.restores WHERE applied")]
    assert env.query(
        "SELECT kind, old_version, new_version, made_by, restore_id FROM zuora.workflow_events WHERE run_id = 'run-2'"
    ) == [("version_changed", "0.0.2", "0.0.3", "restore", restore_id)]

    # then Zuora (or a person in Zuora) switches it off and a person activates another version
    tenant.update_workflow(wid, status="Inactive", bump_version=False, change_content=False)
    sync.run_customer(acme, "run-3")
    tenant.update_workflow(wid)
    sync.run_customer(acme, "run-4")
    assert env.query(
        "SELECT run_id, kind, new_version, made_by, restore_id FROM zuora.workflow_events "
        "WHERE run_id IN ('run-3', 'run-4') ORDER BY run_id"
    ) == [
        ("run-3", "deactivated", "0.0.3", "zuora", None),
        ("run-4", "version_changed", "0.0.4", "zuora", None),
    ]


def test_the_events_derived_from_the_history_are_those_the_syncs_recorded(env, sim_tenant):
    """Migration 0010 fills zuora.workflow_events from the history kept before it: run on a
    warehouse whose events were recorded by syncs, it finds the same transitions."""
    tenant = sim_tenant(workflows=6, seed=4)
    acme = env.customer("acme", tenant)
    sync.run_customer(acme, "run-1")
    ids = [
        w["id"]
        for w in tenant.admin.workflows(tenant.tenant_id)
        if w["status"] == "Active" and not w["legacy"]
    ]
    tenant.update_workflow(ids[0], status="Inactive", bump_version=False, change_content=False)
    tenant.update_workflow(ids[1])
    tenant.update_workflow(ids[2], name="renamed", bump_version=False)
    sync.run_customer(acme, "run-2")
    tenant.update_workflow(ids[0], status="Active", bump_version=False, change_content=False)
    tenant.update_workflow(ids[1])
    sync.run_customer(acme, "run-3")
    columns = (
        "customer_id, zuora_id, kind, workflow_name, seen_at::date, previous_seen_at, zuora_updated_at, "
        "old_status, new_status, old_version, new_version, old_version_id, new_version_id, made_by, "
        "restore_id, run_id"
    )
    recorded = env.query(f"SELECT {columns} FROM zuora.workflow_events ORDER BY run_id, zuora_id, kind")
    assert {(r[2], r[-1]) for r in recorded} >= {("deactivated", "run-2"), ("version_changed", "run-3")}

    migration = sql_text("migrations/0010_task_usage.sql")
    backfill = migration.split("-- The transitions the history kept so far")[1].split("\n", 1)[1]
    env.query("DELETE FROM zuora.workflow_events RETURNING 1")
    env.query(backfill.strip().rstrip(";") + " RETURNING 1")
    derived = env.query(f"SELECT {columns} FROM zuora.workflow_events ORDER BY run_id, zuora_id, kind")
    assert derived == recorded
    assert env.query("SELECT DISTINCT recorded_from FROM zuora.workflow_events") == [("history",)]
