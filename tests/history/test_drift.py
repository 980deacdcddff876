"""Drift between a company's sandbox and production (zuora.environment_drift, zuora.drift),
end to end: two simulator tenants made from the same seed hold the same workflows (same
ids, names and content); the test changes them in known ways, syncs both customers and
checks the view's rows and the report against those changes and ``fingerprint.diff`` of the
stored definitions."""

from __future__ import annotations

import copy
from datetime import UTC

import psycopg
import pytest
import requests

from zuora import drift, sync
from zuora.warehouse.fingerprint import diff, summarize

SEED = 4242
WORKFLOWS = 10


def _export(tenant, workflow_id: int) -> dict:
    return tenant.admin.expected_export(tenant.tenant_id, workflow_id)


def _extra_task(tasks: list[dict], name: str) -> dict:
    """A copy of the last task under a new id and name (no linkages)."""
    return {**copy.deepcopy(tasks[-1]), "id": max(t["id"] for t in tasks) + 1, "name": name}


@pytest.fixture
def umbrella(env, sim_tenant):
    """Sandbox and production of one company, differing in known ways, both synced.
    Returns (names by id, the known differences)."""
    sbx = sim_tenant(prefix="sbx", workflows=WORKFLOWS, seed=SEED, avg_export_kb=3)
    prod = sim_tenant(prefix="prod", workflows=WORKFLOWS, seed=SEED, avg_export_kb=3)
    truth = sbx.admin.workflows(sbx.tenant_id)
    assert truth == prod.admin.workflows(prod.tenant_id)  # what the known differences build on
    names = {wf["id"]: wf["name"] for wf in truth}
    a, b, c, d, e, f, g = sorted(names)[:7]

    prod.delete_workflow(a)  # only in sandbox
    sbx.delete_workflow(b)  # only in production
    # production: one task changed and one added (a hotfix), so production is newer
    export = _export(prod, c)
    tasks = export["tasks"]
    tasks[1]["notes"] = "hotfix: retry twice"
    hotfix = _extra_task(tasks, "Hotfix follow-up")
    prod.update_workflow(c, tasks=[*tasks, hotfix], linkages=export["linkages"])
    # sandbox: a new description and a draft task, so the sandbox is newer
    export = _export(sbx, d)
    draft = _extra_task(export["tasks"], "Draft approval step")
    sbx.update_workflow(
        d, description="Reworked in sandbox", tasks=[*export["tasks"], draft], linkages=export["linkages"]
    )
    # promoted: production's copy replaced by an import of the sandbox's, under a new id
    prod.delete_workflow(e)
    imported = requests.post(
        f"{prod.base_url}/workflows/import",
        json=_export(sbx, e),
        params={"activate": "true"},
        headers=prod.auth_headers(),
        timeout=30,
    )
    assert imported.status_code == 200, imported.text
    promoted_id = imported.json()["id"]
    assert promoted_id != e
    # a second sandbox workflow named like g
    twin = sbx.add_workflow(name=names[g])

    sandbox = env.customer("umbrella_sbx", sbx, environment="sandbox", tenant_group="umbrella")
    production = env.customer("umbrella_prod", prod, environment="production", tenant_group="umbrella")
    sync.run_customer(sandbox, "run-1")
    sync.run_customer(production, "run-1")
    # f: production's definition stored before fingerprints existed (not filled yet)
    with psycopg.connect(env.uri) as conn:
        conn.execute(
            "UPDATE zuora.workflow_definitions SET fingerprint = NULL, "
            "settings_hash = NULL, task_hashes = NULL "
            "WHERE customer_id = 'umbrella_prod' AND zuora_id = %s",
            (f,),
        )
    return names, {
        "only_sandbox": a,
        "only_production": b,
        "changed_in_production": c,
        "changed_in_sandbox": d,
        "promoted": e,
        "promoted_id": promoted_id,
        "unknown": f,
        "duplicate": g,
        "twin": twin["id"],
        "changed_task": tasks[1]["name"],
    }


def _stored_diff(env, sandbox_id: int, production_id: int):
    """fingerprint.diff from production's to the sandbox's stored definition."""
    definitions = dict(
        env.query(
            "SELECT customer_id, definition FROM zuora.workflow_definitions "
            "WHERE (customer_id, zuora_id) IN (('umbrella_sbx', %s), ('umbrella_prod', %s))",
            sandbox_id,
            production_id,
        )
    )
    return diff(summarize(definitions["umbrella_prod"]), summarize(definitions["umbrella_sbx"]))


def test_drift_rows_and_report(env, umbrella):
    names, known = umbrella
    with psycopg.connect(env.uri) as conn:
        rows = drift.drift(conn, "umbrella")
    by_name = {row["workflow_name"]: row for row in rows}
    assert len(rows) == len(by_name) == WORKFLOWS
    expected = {name: "same" for name in names.values()}
    expected.update(
        {
            names[known["only_sandbox"]]: "only_sandbox",
            names[known["only_production"]]: "only_production",
            names[known["changed_in_production"]]: "different",
            names[known["changed_in_sandbox"]]: "different",
            names[known["unknown"]]: "unknown",
            names[known["duplicate"]]: "duplicate_name",
        }
    )
    assert {name: row["state"] for name, row in by_name.items()} == expected
    order = [drift.STATES.index(row["state"]) for row in rows]
    assert order == sorted(order)
    assert drift.summary(rows) == {
        "different": 2,
        "duplicate_name": 1,
        "only_sandbox": 1,
        "only_production": 1,
        "unknown": 1,
        "same": 4,
    }
    assert all(
        row["tenant_group"] == "umbrella"
        and row["sandbox_customer_id"] == "umbrella_sbx"
        and row["production_customer_id"] == "umbrella_prod"
        for row in rows
    )

    # the differing workflows: the view's task lists are fingerprint.diff's, and the changes made
    hotfix = by_name[names[known["changed_in_production"]]]
    draft = by_name[names[known["changed_in_sandbox"]]]
    for row in (hotfix, draft):
        stored = _stored_diff(env, row["sandbox_zuora_id"], row["production_zuora_id"])
        assert (
            row["tasks_only_in_sandbox"],
            row["tasks_only_in_production"],
            row["tasks_different"],
            row["settings_different"],
        ) == (stored.added, stored.removed, stored.changed, stored.settings_changed)
    assert (
        hotfix["tasks_different"],
        hotfix["tasks_only_in_production"],
        hotfix["tasks_only_in_sandbox"],
        hotfix["settings_different"],
        hotfix["newer"],
    ) == ([known["changed_task"]], ["Hotfix follow-up"], [], False, "production")
    assert hotfix["sandbox_zuora_id"] == hotfix["production_zuora_id"] == known["changed_in_production"]
    assert (
        draft["tasks_different"],
        draft["tasks_only_in_sandbox"],
        draft["tasks_only_in_production"],
        draft["settings_different"],
        draft["newer"],
    ) == ([], ["Draft approval step"], [], True, "sandbox")

    # matched by name, not id: the promoted copy has its own id in production and is the same
    promoted = by_name[names[known["promoted"]]]
    assert (
        promoted["state"],
        promoted["sandbox_zuora_id"],
        promoted["production_zuora_id"],
        promoted["tasks_different"],
        promoted["settings_different"],
        promoted["newer"],
    ) == ("same", known["promoted"], known["promoted_id"], [], False, "production")
    untouched = [row for row in rows if row["state"] == "same" and row is not promoted]
    assert len(untouched) == 3 and all(
        row["newer"] is None
        and row["sandbox_zuora_id"] == row["production_zuora_id"]
        and row["sandbox_fingerprint"] == row["production_fingerprint"]
        for row in untouched
    )

    only_sandbox = by_name[names[known["only_sandbox"]]]
    assert (
        only_sandbox["sandbox_zuora_id"],
        only_sandbox["production_zuora_id"],
        only_sandbox["newer"],
        only_sandbox["tasks_different"],
    ) == (known["only_sandbox"], None, None, None)
    only_production = by_name[names[known["only_production"]]]
    assert (only_production["sandbox_zuora_id"], only_production["production_zuora_id"]) == (
        None,
        known["only_production"],
    )
    unknown = by_name[names[known["unknown"]]]
    assert (unknown["production_fingerprint"], unknown["tasks_different"], unknown["settings_different"]) == (
        None,
        None,
        None,
    )
    assert unknown["sandbox_fingerprint"] is not None
    twins = by_name[names[known["duplicate"]]]
    assert (
        twins["sandbox_zuora_id"],
        twins["sandbox_zuora_ids"],
        twins["production_zuora_id"],
        twins["production_zuora_ids"],
        twins["newer"],
    ) == (None, sorted([known["duplicate"], known["twin"]]), known["duplicate"], [known["duplicate"]], None)

    # the report
    report = drift.run("umbrella")
    lines = report.splitlines()
    assert lines[0] == "Drift between the environments of tenant group umbrella"
    assert lines[1].startswith('  sandbox:    umbrella_sbx "Umbrella_Sbx", last synced ')
    assert lines[2].startswith('  production: umbrella_prod "Umbrella_Prod", last synced ')
    assert (
        "10 workflow names: 2 different, 1 duplicate name, 1 only in sandbox, "
        "1 only in production, 1 not compared, 4 same"
    ) in lines
    assert _entry(lines, "different", names[known["changed_in_production"]])[1:] == [
        _side(hotfix, "sandbox"),
        _side(hotfix, "production") + "  (newer)",
        f"tasks different: {known['changed_task']}",
        "tasks only in production: Hotfix follow-up",
    ]
    assert _entry(lines, "different", names[known["changed_in_sandbox"]])[1:] == [
        _side(draft, "sandbox") + "  (newer)",
        _side(draft, "production"),
        "tasks only in sandbox: Draft approval step",
        "workflow settings different (name, triggers, schedule, parameters...)",
    ]
    assert _entry(lines, "only in sandbox", names[known["only_sandbox"]])[1:] == [
        _side(only_sandbox, "sandbox")
    ]
    assert _entry(lines, "only in production", names[known["only_production"]])[1:] == [
        _side(only_production, "production")
    ]
    assert _entry(lines, "not compared", names[known["unknown"]])[3] == (
        "no fingerprint yet in production (not exported yet, or stored before fingerprints): not compared"
    )
    assert _entry(lines, "duplicate name", names[known["duplicate"]])[1:] == [
        f"sandbox:    2 workflows of this name, ids {known['duplicate']}, {known['twin']}",
        f"production: 1 workflow of this name, id {known['duplicate']}",
        "not compared: rename them so each name is unique",
    ]
    for row in untouched:
        assert _entry(lines, "same", row["workflow_name"]) == [f"{'same':<20}{row['workflow_name']}"]

    assert drift.run(None) == (
        "umbrella  umbrella_sbx vs umbrella_prod  10 workflow names: 2 different, "
        "1 duplicate name, 1 only in sandbox, 1 only in production, 1 not compared, 4 same"
    )


def _side(row: dict, side: str) -> str:
    return (
        f"{side + ':':<12}id {row[f'{side}_zuora_id']}, version {row[f'{side}_version']}, "
        f"updated {row[f'{side}_updated_at'].astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    ).replace(", version None", "")


def _entry(lines: list[str], label: str, name: str) -> list[str]:
    """The report's lines of one workflow: its title line, then its indented details."""
    title = f"{label:<20}{name}"
    assert title in lines, f"{title!r} not in the report"
    start = lines.index(title)
    end = start + 1
    while end < len(lines) and lines[end].startswith(" " * 20):
        end += 1
    return [lines[start]] + [line.strip() for line in lines[start + 1 : end]]


def test_unknown_group_and_group_without_production(env):
    with pytest.raises(SystemExit) as unknown:
        drift.run("nope")
    assert str(unknown.value).startswith(
        "Unknown tenant group 'nope': no customer in zuora.customers has it (known groups: none)"
    )
    env.customer("solo_sbx", host="http://127.0.0.1:9", environment="sandbox", tenant_group="solo")
    with pytest.raises(SystemExit) as unknown:
        drift.run("nope")
    assert "(known groups: solo)" in str(unknown.value)
    with pytest.raises(SystemExit) as lonely:
        drift.run("solo")
    assert str(lonely.value) == (
        "Tenant group 'solo' has no production customer, only the sandbox customer solo_sbx: "
        "register the company's production customer with tenant group 'solo' (python -m "
        "zuora.cli add-customer ... --tenant-group solo, or zuora.customers.tenant_group), "
        "sync it, then run drift again."
    )
    assert drift.run(None) == "solo  solo_sbx vs (no production)  not compared: no production customer"
    assert drift.format_report("solo", []).endswith("No current workflows on either side (not synced yet?).")


def test_demo_umbrella_differs_in_exactly_two_workflows(env, simulator):
    """`make demo`'s Umbrella: the sandbox edited in one workflow and with one of its own."""
    from types import SimpleNamespace

    from zuora_simulator import demo

    tenants = []
    try:
        for config in demo.umbrella_tenants():
            simulator.admin.add_tenant(**config)
            tenants.append(SimpleNamespace(base_url=simulator.base_url, **config))
        made = demo.make_umbrella_drift(simulator.admin)
        for tenant, environment in zip(tenants, ("sandbox", "production"), strict=True):
            sync.run_customer(
                env.customer(tenant.tenant_id, tenant, environment=environment, tenant_group="umbrella"),
                "run-1",
            )
    finally:
        for tenant in tenants:
            simulator.admin.delete_tenant(tenant.tenant_id)
    with psycopg.connect(env.uri) as conn:
        rows = drift.drift(conn, "umbrella")
    changed_id, changed_name, changed_task = made["changed"]
    assert [(r["state"], r["workflow_name"]) for r in rows if r["state"] != "same"] == [
        ("different", changed_name),
        ("only_sandbox", demo.UMBRELLA_NEW_WORKFLOW),
    ]
    assert drift.summary(rows)["same"] == demo.UMBRELLA_WORKFLOWS - 1
    assert (
        rows[0]["tasks_different"],
        rows[0]["tasks_only_in_sandbox"],
        rows[0]["tasks_only_in_production"],
        rows[0]["settings_different"],
        rows[0]["newer"],
        rows[0]["sandbox_zuora_id"],
    ) == ([changed_task], [], [], False, "sandbox", changed_id)


def test_tasks_sharing_a_name_are_keyed_by_content_not_by_their_place():
    """Two tenants holding the same workflow may list its same-named tasks in another order:
    the same fingerprint, and a real change still shows on the task that changed."""
    from zuora.warehouse.fingerprint import diff, summarize

    def export(tasks):
        return {"workflow": {"name": "W"}, "tasks": tasks, "linkages": []}

    first = {"id": 1, "name": "Callout", "action_type": "Callout", "parameters": {"url": "https://a"}}
    second = {"id": 2, "name": "Callout", "action_type": "Callout", "parameters": {"url": "https://b"}}
    one, other = summarize(export([first, second])), summarize(export([second, first]))
    assert one.fingerprint == other.fingerprint
    changed = summarize(export([second, {**first, "parameters": {"url": "https://c"}}]))
    assert changed.fingerprint != one.fingerprint
    assert diff(one, changed).added + diff(one, changed).removed + diff(one, changed).changed != []


def test_the_version_changes_view_sorts_task_names_bytewise_like_the_drift_view(env):
    """Both views (and Python's sorted(), which the restore's dry run uses) order task names
    the same way whatever the database's collation."""
    import re
    from pathlib import Path

    views = Path(__file__).resolve().parents[2] / "include" / "sql" / "views"
    for name in ("060_workflow_versions.sql", "070_environment_drift.sql"):
        text = (views / name).read_text()
        orders = re.findall(r"ORDER BY (?:t\.|s\.)?(?:k|key)\b[^,)]*", text)
        assert orders and all('COLLATE "C"' in order for order in orders), (name, orders)
