"""The sync DAG end to end with dag.test(): real Postgres, the simulator over real HTTP.

The DAG's default ($ZUORA_SYNC_CUSTOMERS_PER_TASK=auto) picks the shape per run: these runs of
a few customers have one group each; the tests that say ``shape`` also run in batches (auto
with one export slot: every run of two customers or more in batches; tests/dags/test_batches.py)."""

from __future__ import annotations

import psycopg
import pytest


def run(dag, **conf):
    return dag.test(run_conf={"customer_ids": [], "full_refresh": False, **conf})


def query(uri, sql, *params):
    with psycopg.connect(uri) as conn:
        return conn.execute(sql, params).fetchall()


def stored_ids(uri, customer_id):
    return {
        row[0]
        for row in query(
            uri,
            "SELECT zuora_id FROM zuora.workflows WHERE customer_id = %s AND deleted_at IS NULL",
            customer_id,
        )
    }


def stage_states(result) -> dict[str, list[str]]:
    """Stage -> the states of its mapped task instances, by map index (customers by id)."""
    states: dict[str, list[str]] = {}
    for ti in sorted(result.get_task_instances(), key=lambda ti: ti.map_index):
        if ti.map_index >= 0:
            states.setdefault(ti.task_id.rsplit(".", 1)[-1], []).append(ti.state)
    return states


@pytest.fixture(params=["groups", "batches"])
def shape(request, monkeypatch) -> str:
    """The shape auto picks for the test's runs: groups (a few customers, 4 export slots), or
    batches (one export slot). Read when each run's list_customers runs."""
    if request.param == "batches":
        monkeypatch.setenv("ZUORA_SYNC_MAX_CONCURRENT_EXPORTS", "1")
    return request.param


def synced_by(uri, run_id) -> set:
    """The tasks that synced the run's customers: None for their own groups."""
    return {row[0] for row in query(uri, "SELECT task_id FROM zuora.sync_runs WHERE run_id = %s", run_id)}


def test_first_run_stores_everything_and_a_rerun_exports_only_changes(sync_dag, sync_env, shape):
    acme = sync_env("acme", workflows=30)
    globex = sync_env("globex", workflows=12)

    first = run(sync_dag)
    assert first.state == "success"
    assert synced_by(sync_env.uri, first.run_id) == {"groups": {None}, "batches": {"sync_customers"}}[shape]
    for customer, tenant in (("acme", acme), ("globex", globex)):
        assert stored_ids(sync_env.uri, customer) == set(tenant.workflow_ids())
        assert tenant.stats()["requests"]["export"] == len(tenant.workflow_ids())
        assert tenant.stats()["tokens_minted"] == 1  # shared by the list and export stages
    definitions = query(sync_env.uri, "SELECT count(*) FROM zuora.workflow_definitions")[0][0]
    assert definitions == 42

    ids = acme.workflow_ids()
    acme.update_workflow(ids[0], name="Renamed")
    acme.update_workflow(ids[1], description="same timestamp", touch_updated_at=False)
    acme.delete_workflow(ids[2])
    added = acme.add_workflow(name="Brand new")["id"]
    acme.reset_stats()
    globex.reset_stats()

    second = run(sync_dag, customer_ids=None, full_refresh=None)  # a trigger form left empty
    assert second.state == "success"
    # an unchanged customer costs its list page and no exports (the token is still cached)
    assert globex.stats()["requests"] == {"list": 1}
    assert acme.stats()["requests"]["export"] == 3  # the two changed and the new one
    assert stored_ids(sync_env.uri, "acme") == set(acme.workflow_ids())
    kinds = dict(
        query(
            sync_env.uri,
            """
        SELECT change_kind, count(*) FROM zuora.workflow_history
         WHERE customer_id = 'acme' AND run_id = %s GROUP BY 1""",
            second.run_id,
        )
    )
    assert kinds == {"update": 2, "insert": 1, "delete": 1}
    deleted = query(
        sync_env.uri,
        "SELECT deleted_at IS NOT NULL FROM zuora.workflows WHERE customer_id = 'acme' AND zuora_id = %s",
        ids[2],
    )
    assert deleted == [(True,)]
    assert added in stored_ids(sync_env.uri, "acme")


def test_full_refresh_exports_everything_and_finds_silent_changes(sync_dag, sync_env, shape):
    acme = sync_env("acme", workflows=6)
    sync_env("globex", workflows=1)  # two customers: a batch of two with one export slot
    assert run(sync_dag).state == "success"
    wid = acme.workflow_ids()[0]
    definition_hash = "SELECT definition_hash FROM zuora.workflow_definitions WHERE zuora_id = %s"
    before = query(sync_env.uri, definition_hash, wid)
    # the export changes but the list item does not: Zuora's timestamps do not always move
    acme.update_workflow(wid, touch_updated_at=False, bump_version=False)
    acme.reset_stats()
    assert run(sync_dag).state == "success"
    assert acme.stats()["requests"].get("export", 0) == 0
    refresh = run(sync_dag, full_refresh=True)  # runs the four stages, changed or not
    assert refresh.state == "success"
    if shape == "groups":
        assert stage_states(refresh)["upsert"] == ["success", "success"]
    else:
        assert stage_states(refresh)["sync_customers"] == ["success"]
        assert synced_by(sync_env.uri, refresh.run_id) == {"sync_customers"}
    assert acme.stats()["requests"]["export"] == 6
    assert query(sync_env.uri, definition_hash, wid) != before


def test_an_unchanged_customer_costs_one_task_and_any_change_runs_all_four(sync_dag, sync_env):
    """New, changed, deleted or dead-lettered work runs the four tasks; a customer whose only
    work is the lookback re-export of a few definitions is synced by its list task alone."""
    tenants = {name: sync_env(name, workflows=3) for name in ("busy", "gone", "letter", "quiet")}
    first = run(sync_dag)
    assert first.state == "success"
    assert set(stage_states(first)["upsert"]) == {"success"}

    tenants["busy"].update_workflow(tenants["busy"].workflow_ids()[0], name="Changed")
    tenants["gone"].delete_workflow(tenants["gone"].workflow_ids()[0])
    from zuora import warehouse
    from zuora.warehouse.connection import warehouse_connection

    with warehouse_connection() as conn:  # an earlier run left a dead letter to retry
        warehouse.record_dead_letter(
            conn,
            run_id="earlier",
            customer_id="letter",
            stage="list",
            error_type="ZuoraTransientError",
            message="503",
        )
        # quiet's definitions are due for the lookback re-export: its list task does them itself
        conn.execute(
            "UPDATE zuora.workflow_definitions SET exported_at = now() - interval '8 days' "
            "WHERE customer_id = 'quiet'"
        )
        conn.commit()
    for tenant in tenants.values():
        tenant.reset_stats()
    second = run(sync_dag)
    assert second.state == "success"
    everything = ["success"] * 3
    assert stage_states(second) == {  # busy, gone, letter, quiet: synced by its list task
        "list_workflows": everything + ["skipped"],
        "export_workflows": everything + ["skipped"],
        "validate": everything + ["skipped"],
        "upsert": everything + ["skipped"],
    }
    assert tenants["quiet"].stats()["requests"] == {"list": 1, "export": 3}
    rows = query(
        sync_env.uri,
        "SELECT customer_id, status, listed, stored, unchanged, deleted "
        "FROM zuora.sync_runs WHERE run_id = %s ORDER BY 1",
        second.run_id,
    )
    assert rows == [
        ("busy", "success", 3, 3, 2, 0),
        ("gone", "success", 2, 2, 2, 1),
        ("letter", "success", 3, 3, 3, 0),
        ("quiet", "success", 3, 3, 3, 0),
    ]
    assert query(sync_env.uri, "SELECT count(*) FROM zuora.open_dead_letters") == [(0,)]
