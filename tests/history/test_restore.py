"""Restore and promote: a dry run changes nothing in Zuora; an apply imports the stored exact
original (once, whatever the retries), the next sync stores it; every refusal says what to do;
every attempt is audited."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.reliability.conftest import stage_process
from zuora import cli, restore, sync
from zuora.api.errors import ZuoraAuthError, ZuoraError
from zuora.restore import RestoreRefused

WRITES = ("import", "versions_import")


def writes(tenant) -> int:
    requests = tenant.stats()["requests"]
    return sum(requests.get(endpoint, 0) for endpoint in WRITES)


def content(export: dict) -> dict:
    """An export without what Zuora assigns on import: ids, version number, linkage ids."""
    positions = {task["id"]: n for n, task in enumerate(export["tasks"])}
    return {
        "workflow": {k: v for k, v in export["workflow"].items() if k not in ("id", "version")},
        "tasks": [{k: v for k, v in task.items() if k != "id"} for task in export["tasks"]],
        "linkages": [
            {
                **link,
                "source_task_id": positions.get(link["source_task_id"]),
                "target_task_id": positions.get(link["target_task_id"]),
                "source_workflow_id": None,
            }
            for link in export["linkages"]
        ],
    }


@pytest.fixture
def synced(env, sim_tenant):
    """A sandbox customer whose one workflow has versions 0.0.1 to 0.0.3, all stored."""
    tenant = sim_tenant(workflows=0)
    wid = tenant.add_workflow(name="Late fees")["id"]
    tenant.update_workflow(wid)
    tenant.update_workflow(wid)
    customer = env.customer("acme", tenant)
    sync.run_customer(customer, "run-1")
    assert env.query(
        "SELECT count(*) FROM zuora.workflow_versions WHERE definition IS NOT NULL "
        "AND original_encrypted IS NOT NULL"
    ) == [(3,)]
    return tenant, customer, wid


def test_a_dry_run_changes_nothing_and_shows_the_task_differences(env, synced):
    tenant, _, wid = synced
    tenant.reset_stats()
    text, summary = restore.run("acme", wid, version="0.0.1", requested_by="jane")
    assert writes(tenant) == 0 and tenant.imports() == []
    assert "dry run" in text and "version 0.0.1" in text and "import as version 0.0.4" in text
    plan = env.query(
        "SELECT status, applied, requested_by, source_version, new_version, "
        "plan -> 'changes' FROM zuora.restores"
    )
    assert plan[0][:5] == ("planned", False, "jane", "0.0.1", "0.0.4")
    changes = plan[0][5]
    # what the simulator's two updates did between 0.0.1 and the active 0.0.3, task by task
    v1, v3 = (tenant.admin.expected_export(tenant.tenant_id, wid, v) for v in ("0.0.1", "0.0.3"))
    names_1, names_3 = ({t["name"] for t in v["tasks"]} for v in (v1, v3))
    assert sorted(names_1 - names_3) == changes["added"] and sorted(names_3 - names_1) == changes["removed"]
    assert changes["added"] + changes["removed"] + changes["changed"] != []
    for task in changes["added"] + changes["removed"] + changes["changed"]:
        assert task in text
    assert "scope:   restore into the same customer" in text


def test_apply_round_trip_the_next_sync_stores_that_version_again(env, synced):
    tenant, customer, wid = synced
    restore.run("acme", wid, version="0.0.1", activate=True, requested_by="jane")
    # a 429 first: Zuora surely did not import, so the hook sends it again
    tenant.script([{"endpoint": "versions_import", "kind": "rate_limit", "retry_after": 0}])
    text, summary = restore.run(
        "acme", wid, version="0.0.1", activate=True, apply_it=True, requested_by="jane"
    )
    assert summary["applied"] and summary["new_version"] == "0.0.4"
    imports = tenant.imports()
    assert [(i["version"], i["replay"]) for i in imports] == [("0.0.4", False)]
    assert tenant.stats()["requests"]["versions_import"] == 2
    assert tenant.admin.get_workflow(tenant.tenant_id, wid)["versions"] == [
        "0.0.1",
        "0.0.2",
        "0.0.3",
        "0.0.4",
    ]

    sync.run_customer(customer, "run-2")
    source, current = env.query(
        "SELECT v.fingerprint, d.fingerprint FROM zuora.workflow_versions v, zuora.workflow_definitions d "
        "WHERE v.version = '0.0.1' AND d.zuora_id = v.zuora_id"
    )[0]
    assert current == source and env.query("SELECT version FROM zuora.workflow_definitions") == [("0.0.4",)]
    from zuora import warehouse
    from zuora.warehouse.connection import warehouse_connection

    with warehouse_connection() as conn:
        stored_now = warehouse.decrypt_original(conn, "acme", wid, env.key)
    assert content(stored_now) == content(tenant.admin.expected_export(tenant.tenant_id, wid, "0.0.1"))
    assert env.query(
        "SELECT status, zuora_status, idempotency_key = %s FROM zuora.restores WHERE applied",
        imports[0]["idempotency_key"],
    ) == [("imported", 200, True)]
    # that dry run is used up: a second apply is refused, and a new dry run sees version 0.0.4
    with pytest.raises(RestoreRefused, match="already used by an apply"):
        restore.run("acme", wid, version="0.0.1", activate=True, apply_it=True, requested_by="jane")
    assert len(tenant.imports()) == 1
    text, summary = restore.run("acme", wid, version="0.0.1", activate=True, requested_by="jane")
    assert summary["new_version"] == "0.0.5" and "active version 0.0.4" in text


def test_promotion_from_sandbox_to_production_needs_the_confirmation(env, synced, sim_tenant):
    tenant, _, wid = synced
    env.customer("acme", tenant, tenant_group="acme")  # acme's sandbox, paired with its production
    production = sim_tenant(workflows=1)
    env.customer("acme_prod", production, environment="production", tenant_group="acme")
    sync.run_customer(
        {"customer_id": "acme_prod", "zuora_conn_id": "zuora_acme_prod", "environment": "production"},
        "run-p1",
    )
    choice = dict(version="0.0.2", to="acme_prod", as_new_workflow=True, requested_by="jane")
    text, _ = restore.run("acme", wid, **choice)
    assert "as a new workflow" in text and "--confirm-production" in text
    assert "scope:   promotion within the tenant group" in text
    with pytest.raises(RestoreRefused, match="production tenant"):
        restore.run("acme", wid, apply_it=True, **choice)
    assert production.imports() == []
    _, summary = restore.run("acme", wid, apply_it=True, confirm_production=True, **choice)
    new_id = summary["zuora_workflow_id"]
    assert [i["kind"] for i in production.imports()] == ["workflow"]
    sync.run_customer(
        {"customer_id": "acme_prod", "zuora_conn_id": "zuora_acme_prod", "environment": "production"},
        "run-p2",
    )
    assert env.query(
        "SELECT d.fingerprint = v.fingerprint FROM zuora.workflow_definitions d, "
        "zuora.workflow_versions v WHERE d.customer_id = 'acme_prod' AND d.zuora_id = %s "
        "AND v.customer_id = 'acme' AND v.version = '0.0.2'",
        new_id,
    ) == [(True,)]
    assert env.query(
        "SELECT status, scope FROM zuora.restores WHERE target_customer_id = 'acme_prod' ORDER BY restore_id"
    ) == [("planned", "promotion"), ("refused", "promotion"), ("imported", "promotion")]


def test_refusals_say_what_to_do(env, synced, monkeypatch):
    tenant, _, wid = synced
    with pytest.raises(RestoreRefused, match="no version 9.9.9"):
        restore.run("acme", wid, version="9.9.9", requested_by="jane")
    with pytest.raises(RestoreRefused, match="no dry run"):
        restore.run("acme", wid, version="0.0.2", apply_it=True, requested_by="jane")
    restore.run("acme", wid, version="0.0.2", requested_by="jane")
    monkeypatch.delenv("ZUORA_EXPORT_ENCRYPTION_KEY")
    with pytest.raises(RestoreRefused, match="no export encryption key"):
        restore.run("acme", wid, version="0.0.2", apply_it=True, requested_by="jane")
    env.query(
        "UPDATE zuora.workflow_versions SET original_encrypted = NULL WHERE version = '0.0.2' RETURNING 1"
    )
    monkeypatch.setenv("ZUORA_EXPORT_ENCRYPTION_KEY", env.key.decode())
    with pytest.raises(RestoreRefused, match="redacted definition cannot be imported"):
        restore.run("acme", wid, version="0.0.2", apply_it=True, requested_by="jane")
    # without Workflow Manage Access, Zuora's 403 says which permission
    tenant.update(manage_access=False)
    restore.run("acme", wid, version="0.0.1", requested_by="jane")
    with pytest.raises(ZuoraAuthError, match="Workflow Manage Access"):
        restore.run("acme", wid, version="0.0.1", apply_it=True, requested_by="jane")
    assert [i["status"] for i in tenant.imports()] == []  # refused before the import handler
    assert env.query("SELECT status, zuora_status FROM zuora.restores WHERE applied ORDER BY restore_id") == [
        ("refused", None)
    ] * 3 + [("failed", 403)]


def test_the_cli_and_the_dag_params_drive_the_same_restore(env, synced, capsys):
    _, _, wid = synced
    assert cli.main(["restore", "acme", str(wid), "--as-of", "2100-01-01T00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "version 0.0.3" in out and "--apply" in out  # the newest version by then
    # a time without its zone is refused by both, with the same words, never taken as UTC
    with pytest.raises(SystemExit):
        cli.main(["restore", "acme", str(wid), "--as-of", "2100-01-01"])
    assert "has no time zone" in capsys.readouterr().err
    with pytest.raises(RestoreRefused, match="has no time zone"):
        restore.run_from_params(
            {"customer_id": "acme", "zuora_id": wid, "as_of": "2100-01-01"}, requested_by="a"
        )
    with pytest.raises(SystemExit, match="refused: no dry run"):
        cli.main(["restore", "acme", str(wid), "--version", "0.0.1", "--apply"])
    summary = restore.run_from_params(
        {
            "customer_id": "acme",
            "zuora_id": wid,
            "version": "0.0.1",
            "as_of": None,
            "to_customer": None,
            "apply": False,
        },
        requested_by="admin",
    )
    assert summary["applied"] is False and summary["source"] == f"acme/{wid}@0.0.1"
    assert env.query("SELECT requested_by FROM zuora.restores ORDER BY restore_id") == [
        (cli.getpass.getuser(),),
        (cli.getpass.getuser(),),
        ("admin",),
    ]


def test_a_promotion_stays_within_the_tenant_group(env, synced, sim_tenant):
    """Another company's tenant is reached only by a copy asked for by name, named so in the
    dry run and audited as such."""
    tenant, _, wid = synced
    env.customer("acme", tenant, tenant_group="acme")
    other = sim_tenant(workflows=0)
    env.customer("globex", other, tenant_group="globex")
    choice = dict(version="0.0.2", to="globex", as_new_workflow=True, requested_by="jane")
    with pytest.raises(RestoreRefused, match="not in the tenant group of acme.*--into-another-company"):
        restore.run("acme", wid, **choice)
    with pytest.raises(RestoreRefused, match="not in the tenant group"):
        restore.run("acme", wid, apply_it=True, **choice)
    assert other.imports() == []
    text, summary = restore.run("acme", wid, into_another_company=True, **choice)
    assert "COPY INTO ANOTHER COMPANY'S TENANT" in text and summary["scope"] == "cross_company_copy"
    restore.run("acme", wid, into_another_company=True, apply_it=True, **choice)
    assert [i["kind"] for i in other.imports()] == ["workflow"]
    assert env.query("SELECT applied, status, scope FROM zuora.restores ORDER BY restore_id") == [
        (False, "refused", "cross_company_copy"),
        (True, "refused", "cross_company_copy"),
        (False, "planned", "cross_company_copy"),
        (True, "imported", "cross_company_copy"),
    ]


@pytest.mark.parametrize("zuora_keeps_keys", [True, False], ids=["zuora-keeps-keys", "zuora-forgets-keys"])
def test_one_dry_run_allows_one_apply(env, synced, zuora_keeps_keys):
    """The same --as-new-workflow --apply twice imports once, whether or not Zuora still
    remembers the Idempotency-Key: the dry run is used up, and a new one reads the target live."""
    tenant, _, wid = synced
    tenant.update(remember_idempotency_keys=zuora_keeps_keys)
    choice = dict(version="0.0.1", as_new_workflow=True, requested_by="jane")
    restore.run("acme", wid, **choice)
    restore.run("acme", wid, apply_it=True, **choice)
    with pytest.raises(RestoreRefused, match="already used by an apply"):
        restore.run("acme", wid, apply_it=True, **choice)
    named = [w for w in tenant.admin.workflows(tenant.tenant_id) if w["name"] == "Late fees"]
    assert len(named) == 2  # the original and one copy, not two
    # no sync ran: a new dry run still sees the copy, live from Zuora, so its state differs
    text, _ = restore.run("acme", wid, **choice)
    assert (
        len({row[0] for row in env.query("SELECT target_state FROM zuora.restores WHERE NOT applied")}) == 2
    )
    assert env.query("SELECT status FROM zuora.restores WHERE applied ORDER BY restore_id") == [
        ("imported",),
        ("refused",),
    ]


RESET_AFTER_THE_IMPORT = {"kind": "reset", "phase": "body"}  # Zuora imports, the answer is cut
GATEWAY_504_AFTER_THE_IMPORT = {"kind": "status", "status": 504, "performed": True}


def imported_copies(tenant, wid, mode) -> int:
    """What restores of 'Late fees' 0.0.1 left in Zuora: new workflows of that name, or new
    versions of it above the synced 0.0.3."""
    if mode == "new_workflow":
        return sum(w["name"] == "Late fees" for w in tenant.admin.workflows(tenant.tenant_id)) - 1
    return len(tenant.admin.get_workflow(tenant.tenant_id, wid)["versions"]) - 3


@pytest.mark.parametrize(
    "zuora_keeps_keys, mode, lost",
    [  # each key mode meets each import and each lost answer
        pytest.param(
            False, "new_workflow", RESET_AFTER_THE_IMPORT, id="zuora-forgets-keys-new_workflow-reset"
        ),
        pytest.param(
            False, "new_version", GATEWAY_504_AFTER_THE_IMPORT, id="zuora-forgets-keys-new_version-504"
        ),
        pytest.param(
            True, "new_workflow", GATEWAY_504_AFTER_THE_IMPORT, id="zuora-keeps-keys-new_workflow-504"
        ),
        pytest.param(True, "new_version", RESET_AFTER_THE_IMPORT, id="zuora-keeps-keys-new_version-reset"),
    ],
)
def test_one_dry_run_allows_one_apply_when_the_answer_is_lost(env, synced, zuora_keeps_keys, mode, lost):
    """Zuora imports, the answer is lost: the import is not sent again (a Zuora that forgot the
    key would import it twice, or answer 400 to a second version of that number), the apply is
    'unknown' and raises, saying what to do; no apply into the customer until a dry run reads
    Zuora, finds the import and records it; that dry run allows one apply."""
    tenant, _, wid = synced
    tenant.update(remember_idempotency_keys=zuora_keeps_keys)
    choice = dict(version="0.0.1", as_new_workflow=mode == "new_workflow", requested_by="jane")
    restore.run("acme", wid, **choice)
    endpoint = "import" if mode == "new_workflow" else "versions_import"
    tenant.script([{"endpoint": endpoint, **lost}])
    with pytest.raises(restore.RestoreOutcomeUnknown, match="run the same dry run") as unknown:
        restore.run("acme", wid, apply_it=True, **choice)
    assert [i["replay"] for i in tenant.imports()] == [False]  # sent once
    assert imported_copies(tenant, wid, mode) == 1
    attempt = unknown.value.restore_id
    [(status, zuora_status, request_id, message)] = env.query(
        "SELECT status, zuora_status, zuora_request_id, message FROM zuora.restores WHERE restore_id = %s",
        attempt,
    )
    assert status == "unknown" and f"zws-restore-{attempt}" in str(unknown.value)
    if lost["kind"] == "status":  # Zuora's gateway answered: its request id is kept
        assert zuora_status == 504 and request_id and request_id in message
    with pytest.raises(RestoreRefused, match=f"outcome of restore #{attempt} into acme is unknown"):
        restore.run("acme", wid, apply_it=True, **choice)

    text, _ = restore.run("acme", wid, **choice)
    assert text.startswith(f"Settled restore #{attempt} (applied ") and "IMPORTED: " in text
    assert env.query(
        "SELECT status, settled_at IS NOT NULL FROM zuora.restores WHERE restore_id = %s", attempt
    ) == [("imported", True)]
    # the dry run read the import live: one apply of it imports once more, on purpose
    restore.run("acme", wid, apply_it=True, **choice)
    with pytest.raises(RestoreRefused, match="already used by an apply"):
        restore.run("acme", wid, apply_it=True, **choice)
    assert imported_copies(tenant, wid, mode) == 2 and len(tenant.imports()) == 2
    assert "Settled" not in restore.run("acme", wid, **choice)[0]
    assert env.query("SELECT status FROM zuora.restores WHERE applied ORDER BY restore_id") == [
        ("imported",),
        ("refused",),
        ("imported",),
        ("refused",),
    ]


def test_an_answer_lost_before_zuora_imported_is_settled_as_not_imported(env, synced):
    """A 503 may come before or after Zuora imported: unknown, until the dry run finds no
    version 0.0.4 and records 'not_imported'; the next apply imports it as 0.0.4."""
    tenant, _, wid = synced
    restore.run("acme", wid, version="0.0.1", requested_by="jane")
    tenant.script([{"endpoint": "versions_import", "kind": "status", "status": 503}])
    with pytest.raises(restore.RestoreOutcomeUnknown):
        restore.run("acme", wid, version="0.0.1", apply_it=True, requested_by="jane")
    assert tenant.imports() == []
    text, summary = restore.run("acme", wid, version="0.0.1", requested_by="jane")
    assert "NOT IMPORTED: workflow" in text and "has no version 0.0.4" in text and summary["settled"] == 1
    assert summary["new_version"] == "0.0.4"
    restore.run("acme", wid, version="0.0.1", apply_it=True, requested_by="jane")
    assert [i["version"] for i in tenant.imports()] == ["0.0.4"]
    assert env.query("SELECT status, zuora_status FROM zuora.restores WHERE applied ORDER BY restore_id") == [
        ("not_imported", 503),
        ("imported", 200),
    ]


def test_an_apply_claims_its_dry_run_and_an_import_key_is_imported_once(env, synced):
    """The database holds both rules, whatever the code above it does: two applies of one dry
    run (two workers at once) and a second 'imported' row for one Idempotency-Key are refused."""
    import psycopg

    from zuora.warehouse.connection import warehouse_connection

    _, _, wid = synced
    _, summary = restore.run("acme", wid, version="0.0.1", requested_by="jane")
    with warehouse_connection() as conn:
        plan = restore.make_plan(conn, "acme", wid, version="0.0.1")
        dry_run = summary["restore_id"]
        restore.record(conn, plan, requested_by="a", applied=True, status="applying", dry_run_id=dry_run)
        with pytest.raises(RestoreRefused, match=f"dry run #{dry_run} was used by another apply"):
            restore.record(conn, plan, requested_by="b", applied=True, status="applying", dry_run_id=dry_run)
        restore.record(conn, plan, requested_by="c", applied=True, status="imported")
        with pytest.raises(psycopg.errors.UniqueViolation):
            restore.record(conn, plan, requested_by="d", applied=True, status="imported")


def test_an_apply_is_refused_when_the_source_or_the_live_target_changed(env, synced):
    tenant, _, wid = synced
    choice = dict(version="0.0.1", as_new_workflow=True, requested_by="jane")
    restore.run("acme", wid, **choice)
    # someone creates a workflow of that name in Zuora; no sync has seen it
    tenant.add_workflow(name="Late fees")
    with pytest.raises(RestoreRefused, match="the target or the source changed since the dry run"):
        restore.run("acme", wid, apply_it=True, **choice)
    restore.run("acme", wid, **choice)
    env.query(  # the stored source is replaced (a sync stored an edited version under that id)
        "UPDATE zuora.workflow_versions SET original_hash = 'other' WHERE version = '0.0.1' RETURNING 1"
    )
    with pytest.raises(RestoreRefused, match="the target or the source changed since the dry run"):
        restore.run("acme", wid, apply_it=True, **choice)
    restore.run("acme", wid, **choice)
    env.query("UPDATE zuora.restores SET requested_at = now() - interval '25 hours' RETURNING 1")
    with pytest.raises(RestoreRefused, match="older than 24 hours"):
        restore.run("acme", wid, apply_it=True, **choice)
    assert tenant.imports() == []


def test_a_failed_import_is_audited_and_raised_with_secrets_redacted(env, synced):
    tenant, _, wid = synced
    restore.run("acme", wid, version="0.0.1", requested_by="jane")
    # Zuora's error repeats a callout URL of the import, credentials and all
    body = {
        "success": False,
        "message": "callout https://svc:hunter2pass@x.example/?api_key=hunter2pass failed",
    }
    tenant.script([{"endpoint": "versions_import", "kind": "status", "status": 400, "body": body}])
    with pytest.raises(ZuoraError) as raised:
        restore.run("acme", wid, version="0.0.1", apply_it=True, requested_by="jane")
    assert "callout" in str(raised.value) and "hunter2pass" not in str(raised.value)  # nor in the logs
    [(status, zuora_status, message)] = env.query(
        "SELECT status, zuora_status, message FROM zuora.restores WHERE applied"
    )
    assert (status, zuora_status) == ("failed", 400) and "callout" in message
    assert "hunter2pass" not in message


def test_refusals_made_while_planning_are_audited(env, synced, sim_tenant):
    """Every attempt is a row, the requests refused before a plan exists included."""
    tenant, _, wid = synced
    env.customer("globex", sim_tenant(workflows=0), tenant_group="globex")
    with pytest.raises(RestoreRefused, match="no version 9.9.9"):
        restore.run("acme", wid, version="9.9.9", requested_by="jane")
    with pytest.raises(RestoreRefused, match="not in the tenant group"):
        restore.run("acme", wid, version="0.0.1", to="globex", apply_it=True, requested_by="jane")
    with pytest.raises(RestoreRefused, match="no customer 'nobody'"):
        restore.run("acme", wid, version="0.0.1", to="nobody", requested_by="jane")
    with pytest.raises(RestoreRefused, match="exactly one of"):
        restore.run("acme", wid, requested_by="jane")
    tenant.update(forbidden=True)  # Zuora refuses to list: the dry run failed
    with pytest.raises(ZuoraAuthError):
        restore.run("acme", wid, version="0.0.1", requested_by="jane")
    rows = env.query(
        "SELECT applied, status, scope, target_customer_id, source_version, plan -> 'request' ->> 'to', "
        "message FROM zuora.restores ORDER BY restore_id"
    )
    assert [row[:6] for row in rows] == [
        (False, "refused", "restore", "acme", "9.9.9", None),
        (True, "refused", "cross_company_copy", "globex", "0.0.1", "globex"),
        (False, "refused", None, "nobody", "0.0.1", "nobody"),
        (False, "refused", "restore", "acme", None, None),
        (False, "failed", "restore", "acme", "0.0.1", None),
    ]
    assert "no version 9.9.9" in rows[0][6] and rows[4][6].startswith("ZuoraAuthError: ")


def test_an_import_answered_under_a_key_already_imported_fails_loudly(env, synced, capsys):
    """Zuora's 200 under an Idempotency-Key an earlier apply imported with is a replay, or a
    second import by a Zuora that forgot the key: unknown, and the CLI exits non-zero."""
    from zuora.warehouse.connection import warehouse_connection

    tenant, _, wid = synced
    restore.run("acme", wid, version="0.0.1", requested_by="jane")
    with warehouse_connection() as conn:  # an earlier apply imported with this very key
        plan = restore.make_plan(conn, "acme", wid, version="0.0.1")
        earlier = restore.record(conn, plan, requested_by="earlier", applied=True, status="imported")
    with pytest.raises(SystemExit) as exited:
        cli.main(["restore", "acme", str(wid), "--version", "0.0.1", "--apply"])
    assert exited.value.code == cli.EXIT_OUTCOME_UNKNOWN == 3
    err = capsys.readouterr().err
    assert "outcome unknown: restore #" in err and "run the same dry run" in err
    assert env.query("SELECT status, message FROM zuora.restores WHERE applied ORDER BY restore_id")[1] == (
        "unknown",
        f"Zuora answered 200 under the Idempotency-Key restore #{earlier} already imported with: a "
        "replay of that import (nothing new), or a second import if Zuora forgot the key",
    )
    assert len(tenant.imports()) == 1
    text, _ = restore.run("acme", wid, version="0.0.1", requested_by="jane")
    assert "IMPORTED: version 0.0.4 of workflow" in text  # settled beside the earlier row


def test_an_apply_whose_target_cannot_be_reached_is_failed_not_left_applying(env, synced, monkeypatch):
    """Reading the target customer or its connection fails before Zuora is called: 'failed',
    never 'applying' for ever."""
    from zuora.warehouse.connection import warehouse_connection

    _, _, wid = synced
    with warehouse_connection() as conn:
        plan = restore.make_plan(conn, "acme", wid, version="0.0.1")
        gone = dataclasses.replace(plan, target_customer="gone")  # removed after its plan was made
        restore.record(conn, gone, requested_by="jane")
        with pytest.raises(RestoreRefused, match="no customer 'gone'"):
            restore.apply(conn, gone, requested_by="jane")
        restore.record(conn, plan, requested_by="jane")
        monkeypatch.delenv("AIRFLOW_CONN_ZUORA_ACME")  # its connection removed since
        with pytest.raises(Exception, match="zuora_acme"):
            restore.apply(conn, plan, requested_by="jane")
    rows = env.query(
        "SELECT target_customer_id, status FROM zuora.restores WHERE applied ORDER BY restore_id"
    )
    assert rows == [("gone", "failed"), ("acme", "failed")]


def test_an_apply_killed_while_importing_is_settled_once_it_is_cut_short(env, synced):
    """A worker killed during the import leaves its row 'applying': no apply into the customer
    meanwhile, and once it is older than APPLY_CUT_SHORT the next dry run settles it."""
    tenant, _, wid = synced
    restore.run("acme", wid, version="0.0.1", requested_by="jane")
    tenant.script([{"endpoint": "versions_import", "kind": "hang", "seconds": 1}])  # then imported
    worker = stage_process(
        f"from zuora import restore; restore.run('acme', {wid}, version='0.0.1', apply_it=True, requested_by='w')"
    )
    deadline = time.monotonic() + 30
    while tenant.stats()["in_flight"] == 0 and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
    worker.kill()  # SIGKILL while Zuora holds the import
    worker.wait()
    while not tenant.imports() and time.monotonic() < deadline:
        time.sleep(0.05)
    [(attempt, status)] = env.query("SELECT restore_id, status FROM zuora.restores WHERE applied")
    assert status == "applying" and [i["version"] for i in tenant.imports()] == ["0.0.4"]

    text, _ = restore.run("acme", wid, version="0.0.1", requested_by="jane")
    assert "Settled" not in text  # it may still be running
    with pytest.raises(RestoreRefused, match=f"restore #{attempt} into acme is being applied now"):
        restore.run("acme", wid, version="0.0.1", apply_it=True, requested_by="jane")
    env.query(
        "UPDATE zuora.restores SET requested_at = requested_at - %s WHERE restore_id = %s RETURNING 1",
        restore.APPLY_CUT_SHORT,
        attempt,
    )
    text, summary = restore.run("acme", wid, version="0.0.1", requested_by="jane")
    assert f"Settled restore #{attempt}" in text and "IMPORTED: version 0.0.4 of workflow" in text
    assert summary["new_version"] == "0.0.5"
    assert env.query("SELECT status FROM zuora.restores WHERE restore_id = %s", attempt) == [("imported",)]


def test_the_restore_dag_fails_and_alerts_when_the_outcome_is_unknown(env, synced, airflow_db, monkeypatch):
    """Under real Airflow (dag.test): the apply's task fails, and its alert says what to do."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.dags.test_monitor import _Webhook

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    receiver.received = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ZUORA_ALERTS",
        json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{receiver.server_port}/hook"}),
    )
    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "zuora_workflow_restore.py"
    dag = DagBag(dag_folder=dag_file).dags["zuora_workflow_restore"]
    tenant, _, wid = synced
    choice = {"customer_id": "acme", "zuora_id": wid, "version": "0.0.1", "apply": True}
    restore.run("acme", wid, version="0.0.1", requested_by="jane")
    try:
        tenant.script([{"endpoint": "versions_import", "kind": "status", "status": 504, "performed": True}])
        assert dag.test(run_conf=choice).state == "failed"
    finally:
        receiver.shutdown()
    assert env.query("SELECT status FROM zuora.restores WHERE applied") == [("unknown",)]
    [alert] = receiver.received
    assert alert["kind"] == "task_failed" and alert["details"]["error"].startswith("RestoreOutcomeUnknown: ")
    assert "run the same dry run" in alert["details"]["error"]
