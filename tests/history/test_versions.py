"""Zuora's version history in the warehouse: a backfill bounded per run that ends with every
version stored, no call for an unchanged tenant, and a changed workflow's new version from
one versions call."""

from __future__ import annotations

from zuora import sync
from zuora.warehouse.fingerprint import summarize as summarize_stored
from zuora.warehouse.redaction import redact


def summarize(export: dict):
    """The summary of an export as stored: of its redacted definition."""
    return summarize_stored(redact(export))


def versions_in_zuora(tenant) -> dict[int, list[str]]:
    return {
        wid: tenant.admin.get_workflow(tenant.tenant_id, wid)["versions"] for wid in tenant.workflow_ids()
    }


def test_the_history_backfill_spreads_over_runs_within_its_budget(env, sim_tenant):
    tenant = sim_tenant(workflows=4)
    first, second, *_ = tenant.workflow_ids()
    for _ in range(3):
        tenant.update_workflow(first)
    for _ in range(2):
        tenant.update_workflow(second)
    in_zuora = versions_in_zuora(tenant)
    assert sum(map(len, in_zuora.values())) >= 9
    acme = env.customer("acme", tenant)
    env.monkeypatch.setenv("ZUORA_SYNC_HISTORY_CALLS", "3")
    pending = []
    for run in range(1, 10):
        tenant.reset_stats()
        sync.run_customer(acme, f"run-{run}")
        requests = tenant.stats()["requests"]
        current_exports = 4 if run == 1 else 0
        assert requests.get("versions", 0) + requests["export"] - current_exports <= 3, (run, requests)
        pending.append(
            env.query("SELECT versions_pending FROM zuora.sync_runs WHERE run_id = %s", f"run-{run}")[0][0]
        )
        if pending[-1] == 0:
            break
    assert pending[-1] == 0 and len(pending) >= 3 and pending == sorted(pending, reverse=True)
    stored = env.query(
        "SELECT zuora_id, version, fingerprint FROM zuora.workflow_versions ORDER BY zuora_id, version_order"
    )
    assert {wid: [v for w, v, _ in stored if w == wid] for wid in in_zuora} == in_zuora
    for zuora_id, version, fingerprint in stored:
        expected = tenant.admin.expected_export(tenant.tenant_id, zuora_id, version)
        assert fingerprint == summarize(expected).fingerprint, (zuora_id, version)

    # nothing changed: no history call at all
    tenant.reset_stats()
    sync.run_customer(acme, "run-quiet")
    assert tenant.stats()["requests"].get("versions", 0) == 0
    assert tenant.stats()["requests"].get("export", 0) == 0

    # one workflow changed: its versions listed once, its new version from the current export
    changed = tenant.workflow_ids()[2]
    tenant.update_workflow(changed)
    tenant.reset_stats()
    sync.run_customer(acme, "run-changed")
    assert tenant.stats()["requests"]["versions"] == 1
    assert tenant.stats()["requests"]["export"] == 1
    assert env.query(
        "SELECT version, exported FROM zuora.workflow_version_changes "
        "WHERE zuora_id = %s ORDER BY version_order",
        changed,
    ) == [(version, True) for version in versions_in_zuora(tenant)[changed]]


def test_the_version_changes_view_says_what_changed_task_by_task(env, sim_tenant):
    tenant = sim_tenant(workflows=0)
    wid = tenant.add_workflow()["id"]  # version 0.0.1
    tenant.update_workflow(wid)  # new content
    tenant.update_workflow(wid, change_content=False, description="only the settings")
    acme = env.customer("acme", tenant)
    sync.run_customer(acme, "run-1")
    exports = [tenant.admin.expected_export(tenant.tenant_id, wid, v) for v in ("0.0.1", "0.0.2")]
    before, after = (summarize(e).task_hashes for e in exports)
    rows = env.query(
        "SELECT version, previous_version, tasks_added, tasks_removed, tasks_changed, "
        "settings_changed FROM zuora.workflow_version_changes ORDER BY version_order"
    )
    assert rows[0] == ("0.0.1", None, sorted(before), [], [], True)
    assert rows[1][:2] == ("0.0.2", "0.0.1")
    assert rows[1][2] == sorted(after.keys() - before.keys())
    assert rows[1][3] == sorted(before.keys() - after.keys())
    assert rows[1][4] == sorted(k for k in after.keys() & before.keys() if after[k] != before[k])
    assert rows[1][2] or rows[1][3] or rows[1][4]  # the content did change
    assert rows[2] == ("0.0.3", "0.0.2", [], [], [], True)  # only the description
    tasks = env.query("SELECT version, count(*) FROM zuora.workflow_version_tasks GROUP BY 1 ORDER BY 1")
    assert [count for _, count in tasks] == [len(before), len(after), len(after)]


def test_a_failing_history_call_never_fails_the_sync_and_is_tried_again(env, sim_tenant):
    tenant = sim_tenant(workflows=2)
    acme = env.customer("acme", tenant, max_attempts=1)
    tenant.script([{"endpoint": "versions", "kind": "status", "status": 500}])
    sync.run_customer(acme, "run-1")
    assert env.query("SELECT status, stored, versions_failed, versions_pending > 0 FROM zuora.sync_runs") == [
        ("success", 2, 1, True)
    ]
    sync.run_customer(acme, "run-2")
    assert env.query(
        "SELECT status, versions_failed, versions_pending FROM zuora.sync_runs WHERE run_id = 'run-2'"
    ) == [("success", 0, 0)]
