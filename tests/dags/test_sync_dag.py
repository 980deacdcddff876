"""The sync DAG end to end with dag.test(): real Postgres, the simulator over real HTTP."""

from __future__ import annotations

import logging

import psycopg


def run(dag, **conf):
    return dag.test(run_conf={"customer_ids": [], "full_refresh": False, **conf})


def query(uri, sql, *params):
    with psycopg.connect(uri) as conn:
        return conn.execute(sql, params).fetchall()


def stored_ids(uri, customer_id):
    return {row[0] for row in query(uri, "SELECT zuora_id FROM zuora.workflows "
                                         "WHERE customer_id = %s AND deleted_at IS NULL", customer_id)}


def test_first_run_stores_everything_and_a_rerun_exports_only_changes(sync_dag, sync_env):
    acme = sync_env("acme", workflows=30)
    globex = sync_env("globex", workflows=12)

    first = run(sync_dag)
    assert first.state == "success"
    for customer, tenant in (("acme", acme), ("globex", globex)):
        assert stored_ids(sync_env.uri, customer) == set(tenant.workflow_ids())
        assert tenant.stats()["requests"]["export"] == len(tenant.workflow_ids())
        assert tenant.stats()["tokens_minted"] == 1  # shared by the list and export tasks
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
    assert acme.stats()["requests"]["export"] == 3   # the two changed and the new one
    assert stored_ids(sync_env.uri, "acme") == set(acme.workflow_ids())
    kinds = dict(query(sync_env.uri, """
        SELECT change_kind, count(*) FROM zuora.workflow_history
         WHERE customer_id = 'acme' AND run_id = %s GROUP BY 1""", second.run_id))
    assert kinds == {"update": 2, "insert": 1, "delete": 1}
    deleted = query(sync_env.uri, "SELECT deleted_at IS NOT NULL FROM zuora.workflows "
                                  "WHERE customer_id = 'acme' AND zuora_id = %s", ids[2])
    assert deleted == [(True,)]
    assert added in stored_ids(sync_env.uri, "acme")


def test_full_refresh_exports_everything_and_finds_silent_changes(sync_dag, sync_env):
    acme = sync_env("acme", workflows=6)
    assert run(sync_dag).state == "success"
    wid = acme.workflow_ids()[0]
    definition_hash = "SELECT definition_hash FROM zuora.workflow_definitions WHERE zuora_id = %s"
    before = query(sync_env.uri, definition_hash, wid)
    # the export changes but the list item does not: Zuora's timestamps do not always move
    acme.update_workflow(wid, touch_updated_at=False, bump_version=False)
    acme.reset_stats()
    assert run(sync_dag).state == "success"
    assert acme.stats()["requests"].get("export", 0) == 0
    assert run(sync_dag, full_refresh=True).state == "success"
    assert acme.stats()["requests"]["export"] == 6
    assert query(sync_env.uri, definition_hash, wid) != before


def test_bad_credentials_fail_one_customer_alone(sync_dag, sync_env, caplog):
    good = sync_env("good", workflows=5)
    sync_env("broken", workflows=5, secret="wrong-secret")

    with caplog.at_level(logging.WARNING, logger="zuora.alerts"):
        result = run(sync_dag)
    assert result.state == "failed"   # someone must look
    assert "list_workflows failed for customer broken" in caplog.text  # the on-call alert
    assert stored_ids(sync_env.uri, "good") == set(good.workflow_ids())
    statuses = dict(query(sync_env.uri, "SELECT customer_id, status FROM zuora.sync_runs "
                                        "WHERE run_id = %s", result.run_id))
    assert statuses == {"good": "success", "broken": "failed"}
    letters = query(sync_env.uri, "SELECT stage, error_type, message FROM zuora.dead_letters "
                                  "WHERE customer_id = 'broken' AND resolved_at IS NULL")
    assert len(letters) == 1
    stage, error_type, message = letters[0]
    assert (stage, error_type) == ("list", "ZuoraAuthError")
    assert "refused the client credentials" in message and "wrong-secret" not in message


def test_customer_ids_param_limits_the_run(sync_dag, sync_env):
    sync_env("one", workflows=3)
    two = sync_env("two", workflows=3)
    result = run(sync_dag, customer_ids=["one"])
    assert result.state == "success"
    assert [r[0] for r in query(sync_env.uri, "SELECT customer_id FROM zuora.sync_runs "
                                              "WHERE run_id = %s", result.run_id)] == ["one"]
    assert two.stats()["requests"] == {}
