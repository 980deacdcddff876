"""Malformed and hostile data from Zuora, through the whole DAG (dag.test): broken JSON,
missing or wrong ids, wrong types, 1 MB names, SQL-looking strings, odd and invalid Unicode,
NUL bytes, deeply nested exports. What can be stored is stored, the rest is dead-lettered,
listed = stored + dead-lettered holds, and one customer's garbage fails that customer alone.

The simulator serves the odd values its admin API accepts (any header field, any tasks);
a stub server serves what it cannot (items without ids, non-objects, duplicates, broken JSON).
"""

from __future__ import annotations

import json

import pytest

from tests.reliability.checks import assert_consistent, current_ids, ledger, rows
from zuora.sync import run_customer

SQL_NAME = "x'); DROP TABLE zuora.workflows; --"
# valid text whose UTC time is beyond Python's datetime (years 1 to 9999)
TOO_EARLY = "0001-01-01T00:00:00+01:00"
TOO_LATE = "9999-12-31T23:59:59-01:00"
ODD_UNICODE = "Zażółć 🐍 \u202eRTL\u200b \ufeff BOM 𝔘𝔫𝔦 \U0010ffff"
LONG_NAME = "L" * 1_000_000


def nested(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def item(workflow_id, **fields):
    base = {
        "id": workflow_id,
        "name": f"Workflow {workflow_id}",
        "description": "",
        "status": "Active",
        "type": "Workflow::Setup",
        "ondemandTrigger": True,
        "calloutTrigger": False,
        "scheduledTrigger": False,
        "interval": "0 0 3 * * ?",
        "timezone": "UTC",
        "createdAt": "2024-03-01T12:00:00.000Z",
        "updatedAt": "2024-03-02T12:00:00.000Z",
        "active_version": {
            "id": 1000 + (workflow_id if isinstance(workflow_id, int) else 0),
            "version": "0.0.1",
        },
    }
    base.update(fields)
    return base


def export(workflow_id, **workflow_fields):
    return {
        "workflow": {
            "id": workflow_id,
            "name": f"Workflow {workflow_id}",
            "version": "0.0.1",
            **workflow_fields,
        },
        "tasks": [{"id": 1, "name": "t", "action_type": "Delay", "parameters": {}}],
        "linkages": [],
    }


def hostile_pages() -> tuple[dict, set[int], int]:
    """The stub's pages, the ids that must be stored, and how many items must be dead-lettered."""
    no_id = {"name": "no id at all", "status": "Active"}
    items = [
        item(1),
        item(2, name=SQL_NAME, description="'; SELECT pg_sleep(10); --"),
        item(3, name=LONG_NAME),
        item(4, name="nul\x00name", description="a\x00b"),
        item(5, name="lone \ud800 surrogate \udfff", timezone="Mars/Olympus_Mons"),
        item(6, name=12345, ondemandTrigger="maybe", updatedAt="yesterday", interval={"cron": 1}),
        item(7),
        item(7),
        item(7),  # the same item three times
        item("8", name="id given as text"),
        item(9),
        item(10),
        item(11, createdAt=TOO_EARLY, updatedAt=TOO_LATE),
        item(12),
        no_id,
        dict(no_id),
        {"id": True},
        {"id": 2**70, "name": "too big"},
        {"id": "DROP TABLE"},
        "not an object",
        None,
        42,
        [1, 2],
    ]
    stored_ids = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
    dead = len(items) - 12
    exports = {i: (200, json.dumps(export(i)).encode()) for i in (1, 2, 4, 5, 6, 7)}
    exports[8] = (200, json.dumps(export(8, createdAt=TOO_EARLY, updatedAt=TOO_LATE)).encode())
    exports[3] = (200, json.dumps(export(3, name=LONG_NAME)).encode())
    exports[4] = (200, json.dumps(export(4, name="n\x00ul", description=SQL_NAME)).encode())
    exports[9] = (200, json.dumps(export(9))[:-40].encode())  # broken JSON
    exports[10] = (
        200,
        ('{"workflow": {"id": 10}, "tasks": ' + "[" * 100_000 + "]" * 100_000 + "}").encode(),
    )  # nested too deep
    exports[11] = (200, b'{"workflow": "not an object", "tasks": []}')
    exports[12] = (200, b'{"workflow": {"id": 12, "name": "bad utf8 \xff\xfe"}, "tasks": []}')
    pages = {"/workflows": (200, json.dumps({"data": items, "pagination": {}}).encode())}
    pages.update({f"/workflows/{i}/export": answer for i, answer in exports.items()})
    return pages, stored_ids, dead


@pytest.mark.slow  # about 20 s: a whole dag.test() run of three customers, one with 1 MB names
def test_hostile_data_through_the_dag(env, sim_tenant, stub_zuora, sync_dag):
    # simulator: odd values in the fields its admin API lets a test set
    tenant = sim_tenant(workflows=3)
    for fields in (
        {"name": SQL_NAME},
        {"name": LONG_NAME},
        {"name": ODD_UNICODE},
        {"name": "nul\x00inside", "description": "\x00"},
        {"name": 7, "description": ["a", "list"], "ondemand_trigger": "yes", "interval": {"x": 1}},
        {"tasks": [{"id": 1, "deep": nested(300)}], "linkages": []},
        {"tasks": [{"id": 1, "deep": nested(700)}], "linkages": []},
        {"tasks": [{"id": 1, "parameters": {"zoql": SQL_NAME + "\x00" + ODD_UNICODE}}]},
    ):
        tenant.add_workflow(**fields)
    env.customer("acme", tenant)
    pages, hostile_ids, hostile_dead = hostile_pages()
    env.customer("hostile", host=stub_zuora(pages), max_attempts=2)
    env.customer(
        "garbage", host=stub_zuora({"/workflows": (200, b'{"data": [{"id": 1}, {"id"')}), max_attempts=2
    )

    result = sync_dag.test(run_conf={"customer_ids": [], "full_refresh": False})

    assert result.state == "failed"  # garbage failed; someone must look
    statuses = dict(
        rows(env.uri, "SELECT customer_id, status FROM zuora.sync_runs WHERE run_id = %s", result.run_id)
    )
    assert statuses == {"acme": "success", "hostile": "success", "garbage": "failed"}
    letters = rows(
        env.uri, "SELECT stage, error_type, attempts FROM zuora.dead_letters WHERE customer_id = 'garbage'"
    )
    assert letters == [("list", "ZuoraMalformedResponseError", 1)]  # bad data: not retried
    assert current_ids(env.uri, "garbage") == set()

    run = assert_consistent(env.uri, "acme", result.run_id, tenant=tenant, key=env.key)
    assert run["listed"] == 11 and run["exports_failed"] == 1
    # too deep to redact (a few hundred levels): that export is dead-lettered, its workflow stored
    assert rows(
        env.uri, "SELECT stage, error_type, message FROM zuora.dead_letters WHERE customer_id = 'acme'"
    ) == [("export", "ValueError", "export cannot be stored: RecursionError")]
    names = dict(rows(env.uri, "SELECT zuora_id, name FROM zuora.workflows WHERE customer_id = 'acme'"))
    assert {SQL_NAME, LONG_NAME, ODD_UNICODE, "nulinside", None} <= set(names.values())
    assert rows(env.uri, "SELECT count(*) FROM zuora.workflows")[0][0] == 11 + 12  # no table dropped

    run = assert_consistent(
        env.uri, "hostile", result.run_id, expected_ids=hostile_ids, dead_lettered=hostile_dead
    )
    assert run["listed"] == len(hostile_ids) + hostile_dead
    export_letters = dict(
        rows(
            env.uri,
            "SELECT zuora_id, error_type FROM zuora.dead_letters "
            "WHERE customer_id = 'hostile' AND stage = 'export'",
        )
    )
    assert export_letters == {
        9: "ZuoraMalformedResponseError",
        10: "ZuoraMalformedResponseError",
        11: "ZuoraMalformedResponseError",
        12: "ZuoraMalformedResponseError",
    }
    stored = dict(rows(env.uri, "SELECT zuora_id, name FROM zuora.workflows WHERE customer_id = 'hostile'"))
    assert stored[2] == SQL_NAME and stored[3] == LONG_NAME and stored[4] == "nulname"
    assert (
        stored[5] == "lone \ufffd surrogate \ufffd" and stored[6] is None and stored[8] == "id given as text"
    )
    # a time beyond Python's datetime: stored without it, with an issue that says so
    assert rows(
        env.uri,
        "SELECT zuora_created_at, zuora_updated_at FROM zuora.workflows "
        "WHERE customer_id = 'hostile' AND zuora_id = 11",
    ) == [(None, None)]
    assert rows(
        env.uri,
        "SELECT field, detail FROM zuora.validation_issues WHERE customer_id = 'hostile' "
        "AND zuora_id = 11 AND rule = 'bad_timestamp' ORDER BY field",
    ) == [
        ("createdAt", f"timestamp out of range in UTC: {TOO_EARLY!r}"),
        ("updatedAt", f"timestamp out of range in UTC: {TOO_LATE!r}"),
    ]
    assert rows(
        env.uri,
        "SELECT definition -> 'workflow' ->> 'createdAt', definition -> 'workflow' ->> 'updatedAt' "
        "FROM zuora.workflow_definitions WHERE customer_id = 'hostile' AND zuora_id = 8",
    ) == [(TOO_EARLY, TOO_LATE)]  # an export keeps Zuora's text as it came
    definition = rows(
        env.uri,
        "SELECT definition -> 'workflow' ->> 'name', definition -> 'workflow' "
        "->> 'description' FROM zuora.workflow_definitions "
        "WHERE customer_id = 'hostile' AND zuora_id = 4",
    )
    assert definition == [("nul", SQL_NAME)]
    reasons = sorted(
        r[0]
        for r in rows(
            env.uri,
            "SELECT error_type FROM zuora.dead_letters WHERE customer_id = 'hostile' AND stage = 'validate'",
        )
    )
    assert reasons == sorted(
        [
            "duplicate_id",
            "duplicate_id",
            "missing_id",
            "missing_id",
            "missing_id",
            "missing_id",
            "missing_id",
            "not_an_object",
            "not_an_object",
            "not_an_object",
            "not_an_object",
        ]
    )
    assert ledger(env.uri, result.run_id, "hostile")["exports_failed"] == 4

    # the next run (the task bodies alone) with the same data: nothing changes, nothing new
    letters_before = rows(
        env.uri,
        "SELECT dead_letter_id, item_key, attempts FROM zuora.dead_letters "
        "WHERE customer_id = 'hostile' ORDER BY 1",
    )
    for customer in ("acme", "hostile"):
        run_customer(
            env.customer(customer, tenant)
            if customer == "acme"
            else {"customer_id": "hostile", "zuora_conn_id": "zuora_hostile"},
            "run-2",
        )
    assert_consistent(env.uri, "hostile", "run-2", expected_ids=hostile_ids, dead_lettered=hostile_dead)
    assert_consistent(env.uri, "acme", "run-2", tenant=tenant, key=env.key)
    assert rows(env.uri, "SELECT count(*) FROM zuora.workflow_history WHERE run_id = 'run-2'") == [(0,)]
    letters_after = rows(
        env.uri,
        "SELECT dead_letter_id, item_key, attempts FROM zuora.dead_letters "
        "WHERE customer_id = 'hostile' ORDER BY 1",
    )
    assert [(i, k, a + 1) for i, k, a in letters_before] == letters_after  # same letters, one more try
