"""Incremental exports, the analytics views, retention and stale staging."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.warehouse.factories import BASE_TIME, list_item, sync
from zuora import warehouse
from zuora.warehouse.retention import Retention


def test_workflows_to_export_is_incremental(conn):
    sync(conn, "r1", "acme", [list_item(i) for i in range(1, 7)], failures={6: RuntimeError("503")})
    # lookback: workflow 5's definition is old
    conn.execute(
        "UPDATE zuora.workflow_definitions SET exported_at = now() - interval '8 days' WHERE zuora_id = 5"
    )
    conn.commit()
    items = [
        list_item(1),
        list_item(2, updated=BASE_TIME + timedelta(days=9)),  # updated time
        list_item(3, version=2),  # active version
        list_item(4, status="Inactive"),  # status
        list_item(5),
        list_item(6),  # stale def; failed export
        list_item(7),
    ]  # new
    warehouse.stage_listing(conn, "r2", "acme", items, True)
    ask = dict(full_refresh=False, lookback=timedelta(days=7))
    assert warehouse.workflows_to_export(conn, "r2", "acme", **ask) == [2, 3, 4, 5, 6, 7]
    assert warehouse.workflows_to_export(
        conn, "r2", "acme", full_refresh=True, lookback=timedelta(days=7)
    ) == [1, 2, 3, 4, 5, 6, 7]
    # a 9-day lookback: workflow 5 (exported 8 days ago) comes back on its own day of the 9,
    # from then on until it is exported again, and at the latest 9 days after its export
    exported_on = conn.execute("SELECT exported_at::date FROM zuora.workflow_definitions WHERE zuora_id = 5")
    exported_on = exported_on.fetchone()[0]
    due_days = [
        k
        for k in range(10)
        if 5
        in warehouse.workflows_to_export(
            conn, "r2", "acme", lookback=timedelta(days=9), today=exported_on + timedelta(days=k)
        )
    ]
    assert due_days == list(range(due_days[0], 10)) and 1 <= due_days[0] <= 9


def test_the_lookback_re_export_is_spread_over_the_lookback(conn):
    """28 simulated days of daily runs for a customer of 200 unchanged workflows, all first
    exported on one day: no weekly wave (the largest day at most 1.25x the mean day), and no
    workflow longer than the 7-day lookback without a re-export."""
    conn.execute("SET TIME ZONE 'UTC'")
    items = [list_item(i) for i in range(1001, 1201)]
    sync(conn, "r0", "acme", items)
    warehouse.stage_listing(conn, "daily", "acme", items, True)
    day0 = conn.execute("SELECT min(exported_at)::date FROM zuora.workflow_definitions").fetchone()[0]
    conn.execute("UPDATE zuora.workflow_definitions SET exported_at = %s::date + interval '2 hours'", (day0,))
    conn.commit()
    last_export = dict.fromkeys(range(1001, 1201), 0)
    per_day, longest = [], 0
    for day in range(1, 29):
        due = warehouse.workflows_to_export(
            conn, "daily", "acme", lookback=timedelta(days=7), today=day0 + timedelta(days=day)
        )
        per_day.append(len(due))
        for zuora_id in due:  # exported by the run at 02:00 that day
            longest = max(longest, day - last_export[zuora_id])
            last_export[zuora_id] = day
        conn.execute(
            "UPDATE zuora.workflow_definitions SET exported_at = %s::date + interval '2 hours' "
            "WHERE zuora_id = ANY(%s)",
            (day0 + timedelta(days=day), due),
        )
        conn.commit()
    mean = sum(per_day) / len(per_day)
    assert max(per_day) <= 1.25 * mean, per_day
    assert longest <= 7 and max(28 - day for day in last_export.values()) < 7, (longest, last_export)
    assert sum(per_day) == 4 * 200  # each workflow once a week, no more


def test_views_return_sensible_rows(conn):
    sync(conn, "r1", "acme", [list_item(1), list_item(2)], failures={2: RuntimeError("boom")})
    sync(conn, "g1", "globex", [list_item(1, timezone_name="Sydney")])
    warehouse.start_sync_run(conn, "r2", "acme")
    warehouse.finish_sync_run(conn, "r2", "acme", status="failed", error="list: 503")
    current = conn.execute(
        "SELECT customer_id, zuora_id, timezone_iana, task_count, last_seen_at "
        "FROM zuora.current_workflows ORDER BY 1, 2"
    ).fetchall()
    assert [(c, z, tz, n) for c, z, tz, n, _ in current] == [
        ("acme", 1, "America/New_York", 2),
        ("acme", 2, "America/New_York", None),
        ("globex", 1, "Australia/Sydney", 2),
    ]
    tasks = conn.execute(
        "SELECT position, action_type, task_name FROM zuora.workflow_tasks "
        "WHERE customer_id = 'acme' AND zuora_id = 1 ORDER BY position"
    ).fetchall()
    assert tasks == [(1, "Query", "Find overdue accounts"), (2, "Callout", "Notify CRM")]
    per_day = conn.execute(
        "SELECT customer_id, inserted, changes FROM zuora.changes_per_day ORDER BY 1"
    ).fetchall()
    assert per_day == [("acme", 2, 2), ("globex", 1, 1)]
    health = dict(
        (r[0], r[1:])
        for r in conn.execute(
            "SELECT customer_id, last_status, last_success_at IS NOT NULL, runs_30d, success_rate_30d, "
            "open_dead_letters FROM zuora.sync_health"
        )
    )
    assert health["acme"][0] == "failed" and health["acme"][1] is True
    assert health["acme"][2] == 2 and float(health["acme"][3]) == 0.5 and health["acme"][4] == 1
    assert health["globex"][:4] == ("success", True, 1, 1)
    open_letters = conn.execute(
        "SELECT customer_id, stage, zuora_id, workflow_name FROM zuora.open_dead_letters"
    ).fetchall()
    assert open_letters == [("acme", "export", 2, "Workflow 2")]


def test_cleanup_applies_retention(conn):
    sync(conn, "old", "acme", [list_item(1)], failures={1: RuntimeError("x")})
    sync(conn, "new", "acme", [list_item(1)])  # resolves the dead letter
    warehouse.stage_listing(conn, "abandoned", "acme", [list_item(1)], True)
    conn.execute("UPDATE zuora.staging_listings SET listed_at = now() - interval '3 days'")
    conn.execute("UPDATE zuora.dead_letters SET resolved_at = now() - interval '100 days'")
    conn.execute("UPDATE zuora.sync_runs SET started_at = now() - interval '500 days' WHERE run_id = 'old'")
    conn.commit()
    removed = warehouse.cleanup(conn, Retention())
    assert removed == {
        "staging": 1,
        "resolved_dead_letters": 1,
        "validation_issues": 0,
        "sync_runs": 1,
        "history": 0,
    }
    left = conn.execute(
        "SELECT (SELECT count(*) FROM zuora.staging_list_items), "
        "(SELECT count(*) FROM zuora.sync_runs), "
        "(SELECT count(*) FROM zuora.workflow_history)"
    ).fetchone()
    assert left == (0, 1, 2)  # insert, then the definition arriving
    assert warehouse.cleanup(conn, Retention(history=timedelta(0)))["history"] == 2


def test_retention_settings_come_from_json_in_days():
    assert Retention.from_json(None) == Retention.from_json("{}") == Retention()
    retention = Retention.from_json(
        '{"staging_days": 1, "resolved_dead_letters_days": 0.5, "sync_runs_days": null, "history_days": 3650}'
    )
    assert retention == Retention(
        staging=timedelta(days=1),
        resolved_dead_letters=timedelta(hours=12),
        sync_runs=None,
        history=timedelta(days=3650),
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("[2]", "zuora_retention must be a JSON object"),
        ('{"staging": 2}', "unknown retention setting 'staging'"),
        ('{"dead_letters_days": 2}', "unknown retention setting 'dead_letters_days'"),
        (
            '{"staging_days": null}',
            "retention setting 'staging_days' must be a number of days >= 0, not null",
        ),
        (
            '{"sync_runs_days": "30"}',
            "retention setting 'sync_runs_days' must be a number of days >= 0 "
            'or null (keep forever), not "30"',
        ),
        ('{"history_days": true}', "retention setting 'history_days' must be a number of days"),
        ('{"validation_issues_days": -1}', "retention setting 'validation_issues_days' must be a number"),
    ],
)
def test_retention_settings_are_parsed_strictly(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Retention.from_json(text)


def test_list_customers_filters_enabled_and_named(conn):
    warehouse.upsert_customer(
        conn,
        customer_id="initech",
        name="Initech",
        zuora_conn_id="z_i",
        environment="production",
        enabled=False,
    )
    assert [c["customer_id"] for c in warehouse.list_customers(conn)] == ["acme", "globex"]
    assert [c["customer_id"] for c in warehouse.list_customers(conn, ["globex", "initech"])] == ["globex"]
    assert warehouse.list_customers(conn, ["acme"])[0]["zuora_conn_id"] == "zuora_acme"
