"""The merge: insert, update, unchanged, delete, restore, stale, history, atomicity, locking."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.warehouse.factories import BASE_TIME, export, list_item, sync
from zuora import warehouse
from zuora.warehouse import merge


def workflows(conn, customer="acme") -> dict[int, tuple]:
    rows = conn.execute(
        "SELECT zuora_id, name, deleted_at, zuora_updated_at, xmin::text::bigint "
        "FROM zuora.workflows WHERE customer_id = %s",
        (customer,),
    ).fetchall()
    conn.rollback()
    return {r[0]: r[1:] for r in rows}


def history(conn, customer="acme") -> list[tuple]:
    rows = conn.execute(
        "SELECT zuora_id, change_kind, run_id, changed_fields FROM zuora.workflow_history "
        "WHERE customer_id = %s ORDER BY history_id",
        (customer,),
    ).fetchall()
    conn.rollback()
    return rows


def n_tup_upd(conn, table: str) -> int:
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.rollback()
    return conn.execute(
        "SELECT n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE schemaname = 'zuora' AND relname = %s",
        (table,),
    ).fetchone()[0]


def test_insert_then_update(conn):
    counts = sync(conn, "r1", "acme", [list_item(1), list_item(2), list_item(3)])
    assert (counts["inserted"], counts["updated"], counts["unchanged"]) == (3, 0, 0)
    assert counts["to_export"] == [1, 2, 3]
    changed = list_item(2, name="Renamed", updated=BASE_TIME + timedelta(days=5), version=2)
    counts = sync(
        conn,
        "r2",
        "acme",
        [list_item(1), changed, list_item(3)],
        exports={2: export(2, name="Renamed", version=2)},
    )
    assert (counts["inserted"], counts["updated"], counts["unchanged"]) == (0, 1, 2)
    assert counts["to_export"] == [2]
    stored = workflows(conn)
    assert stored[2][0] == "Renamed" and stored[1][0] == "Workflow 1"
    assert stored[2][2] == BASE_TIME + timedelta(days=5)
    row = conn.execute(
        "SELECT active_version, active_version_id, timezone_iana, priority "
        "FROM zuora.workflows WHERE customer_id = 'acme' AND zuora_id = 2"
    ).fetchone()
    assert row == ("0.0.2", 22, "America/New_York", "Medium")
    assert (
        conn.execute("SELECT version FROM zuora.workflow_definitions WHERE zuora_id = 2").fetchone()[0]
        == "0.0.2"
    )
    kinds = [(h[0], h[1], h[2]) for h in history(conn)]
    assert kinds == [(1, "insert", "r1"), (2, "insert", "r1"), (3, "insert", "r1"), (2, "update", "r2")]
    update = history(conn)[-1]
    assert {"name", "zuora_updated_at", "active_version", "definition"} <= set(update[3])


def test_unchanged_rows_are_not_rewritten(conn):
    items = [
        list_item(i, fmt=fmt)
        for i, fmt in enumerate(["iso_z", "iso_offset", "utc_suffix", "naive"] * 5, start=1)
    ]
    sync(conn, "r1", "acme", items)
    before = workflows(conn)
    upd_workflows, upd_definitions = n_tup_upd(conn, "workflows"), n_tup_upd(conn, "workflow_definitions")
    history_before = len(history(conn))

    counts = sync(conn, "r2", "acme", items)

    assert counts["unchanged"] == 20 and counts["updated"] == counts["inserted"] == 0
    assert counts["to_export"] == [] and counts["exports_unchanged"] == 20
    assert workflows(conn) == before  # same xmin: no row was rewritten
    assert n_tup_upd(conn, "workflows") == upd_workflows
    assert n_tup_upd(conn, "workflow_definitions") == upd_definitions
    assert len(history(conn)) == history_before


def test_full_refresh_with_nothing_changed_rewrites_no_workflow(conn):
    items = [list_item(i) for i in range(1, 6)]
    sync(conn, "r1", "acme", items)
    before = workflows(conn)
    counts = sync(conn, "r2", "acme", items, full_refresh=True)
    assert counts["to_export"] == [1, 2, 3, 4, 5] and counts["unchanged"] == 5
    assert counts["definitions_changed"] == 0
    assert workflows(conn) == before
    assert len(history(conn)) == 5


def test_delete_only_after_a_complete_listing_and_restore(conn):
    sync(conn, "r1", "acme", [list_item(1), list_item(2), list_item(3)])
    counts = sync(conn, "r2", "acme", [list_item(1)], complete=False)
    assert counts["deleted"] == 0
    assert all(row[1] is None for row in workflows(conn).values())

    counts = sync(conn, "r3", "acme", [list_item(1), list_item(3)], complete=True)
    assert counts["deleted"] == 1
    stored = workflows(conn)
    assert stored[2][1] is not None and stored[1][1] is None and stored[3][1] is None
    current = {
        r[0] for r in conn.execute("SELECT zuora_id FROM zuora.current_workflows WHERE customer_id = 'acme'")
    }
    assert current == {1, 3}

    counts = sync(conn, "r4", "acme", [list_item(1), list_item(2), list_item(3)])
    assert counts["restored"] == 1 and counts["to_export"] == [2]
    assert workflows(conn)[2][1] is None
    assert [(h[0], h[1]) for h in history(conn)][-2:] == [(2, "delete"), (2, "restore")]
    # another customer is never touched by acme's deletes
    sync(conn, "g1", "globex", [list_item(2)])
    sync(conn, "r5", "acme", [list_item(1)])
    assert workflows(conn, "globex")[2][1] is None


def test_stale_record_does_not_win(conn):
    newer = list_item(1, name="New name", updated=BASE_TIME + timedelta(days=10))
    sync(conn, "r2", "acme", [newer])
    older = list_item(1, name="Old name", updated=BASE_TIME + timedelta(days=1))
    counts = sync(
        conn, "r1-replayed", "acme", [older], exports={1: export(1, name="Old name")}, full_refresh=True
    )
    assert counts["stale"] == 1 and counts["updated"] == 0
    assert workflows(conn)[1][0] == "New name"
    definition_name = conn.execute(
        "SELECT definition -> 'workflow' ->> 'name' FROM zuora.workflow_definitions WHERE zuora_id = 1"
    ).fetchone()[0]
    assert definition_name == "Workflow 1"
    rules = [
        r[0]
        for r in conn.execute(
            "SELECT rule FROM zuora.validation_issues WHERE run_id = 'r1-replayed' AND zuora_id = 1"
        )
    ]
    assert "stale_record" in rules


def test_stale_complete_listing_does_not_delete_newer_workflows(conn):
    warehouse.stage_listing(conn, "old", "acme", [list_item(1)], True)  # listed before r-new
    warehouse.validate_staged(conn, "old", "acme")
    sync(conn, "new", "acme", [list_item(1), list_item(2)])
    counts = warehouse.merge_customer(conn, "old", "acme")
    assert counts["deleted"] == 0 and workflows(conn)[2][1] is None


def test_same_timestamp_different_content_is_kept_and_flagged(conn):
    sync(conn, "r1", "acme", [list_item(1)])
    sync(conn, "r2", "acme", [list_item(1, name="Same time, new name")])
    assert workflows(conn)[1][0] == "Same time, new name"
    issue = conn.execute(
        "SELECT severity FROM zuora.validation_issues WHERE run_id = 'r2' "
        "AND rule = 'same_updated_at_different_content'"
    ).fetchone()
    assert issue == ("warning",)


def test_history_answers_as_of_queries(conn):
    sync(conn, "r1", "acme", [list_item(1, name="First")])
    first_done = conn.execute("SELECT now()").fetchone()[0]
    conn.rollback()
    time.sleep(0.05)
    sync(conn, "r2", "acme", [list_item(1, name="Second", updated=BASE_TIME + timedelta(days=2))])
    second_done = conn.execute("SELECT now()").fetchone()[0]
    conn.rollback()
    time.sleep(0.05)
    sync(conn, "r3", "acme", [], complete=True)
    as_of = """
        SELECT DISTINCT ON (zuora_id) change_kind, snapshot ->> 'name',
               snapshot -> 'definition' -> 'workflow' ->> 'id'
          FROM zuora.workflow_history
         WHERE customer_id = 'acme' AND zuora_id = 1 AND changed_at <= %s
         ORDER BY zuora_id, changed_at DESC, history_id DESC"""
    assert conn.execute(as_of, (first_done,)).fetchone() == ("insert", "First", "1")
    assert conn.execute(as_of, (second_done,)).fetchone() == ("update", "Second", "1")
    assert conn.execute(as_of, (datetime.now(UTC) + timedelta(seconds=1),)).fetchone()[0] == "delete"
    assert conn.execute(as_of, (first_done - timedelta(days=1),)).fetchone() is None
    last_week = conn.execute(
        "SELECT sum(changes) FROM zuora.changes_per_day WHERE customer_id = 'acme' AND day > current_date - 7"
    ).fetchone()[0]
    assert last_week == 3


def test_failure_mid_merge_leaves_previous_state_and_staging(conn, monkeypatch):
    sync(conn, "r1", "acme", [list_item(1), list_item(2)])
    before = workflows(conn)
    history_before = history(conn)
    warehouse.stage_listing(
        conn,
        "r2",
        "acme",
        [list_item(1, name="Changed", updated=BASE_TIME + timedelta(days=3)), list_item(3)],
        True,
    )
    warehouse.stage_exports(conn, "r2", "acme", [(1, export(1), None), (3, export(3), None)])
    warehouse.validate_staged(conn, "r2", "acme")
    original_sql = merge._sql

    def failing_sql(name):
        if name == "05_soft_delete":
            raise RuntimeError("simulated crash between upsert and delete")
        return original_sql(name)

    monkeypatch.setattr(merge, "_sql", failing_sql)
    with pytest.raises(RuntimeError, match="simulated crash"):
        warehouse.merge_customer(conn, "r2", "acme")
    assert workflows(conn) == before and history(conn) == history_before
    staged = conn.execute("SELECT count(*) FROM zuora.staging_list_items WHERE run_id = 'r2'").fetchone()
    assert staged == (2,)
    conn.rollback()

    monkeypatch.setattr(merge, "_sql", original_sql)  # the retry succeeds from the same staging
    counts = warehouse.merge_customer(conn, "r2", "acme")
    assert (counts["inserted"], counts["updated"], counts["deleted"]) == (1, 1, 1)
    assert warehouse.merge_customer(conn, "r2", "acme")["already_merged"] is True


def test_two_merges_of_one_customer_are_serialised(conn, migrated_uri):
    sync(conn, "r1", "acme", [list_item(1)])
    warehouse.stage_listing(conn, "r2", "acme", [list_item(1), list_item(2)], True)
    warehouse.validate_staged(conn, "r2", "acme")
    holder = psycopg.connect(migrated_uri)
    holder.execute("BEGIN")
    warehouse.lock_customer(holder, "acme")  # as if another merge of acme were running
    done = threading.Event()
    result = {}

    def second_merge():
        with psycopg.connect(migrated_uri) as other:
            result["counts"] = warehouse.merge_customer(other, "r2", "acme")
        done.set()

    thread = threading.Thread(target=second_merge)
    thread.start()
    try:
        assert not done.wait(1.0), "the second merge did not wait for the lock"
        waiting = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()[0]
        conn.rollback()
        assert waiting == 1
        assert set(workflows(conn)) == {1}
    finally:
        holder.rollback()
        holder.close()
    assert done.wait(10)
    thread.join()
    assert result["counts"]["inserted"] == 1 and set(workflows(conn)) == {1, 2}


def test_concurrent_real_merges_of_one_customer_both_succeed_consistently(conn, migrated_uri):
    for run in ("a", "b"):
        warehouse.stage_listing(conn, run, "acme", [list_item(i) for i in range(1, 51)], True)
        warehouse.stage_exports(conn, run, "acme", [(i, export(i), None) for i in range(1, 51)])
        warehouse.validate_staged(conn, run, "acme")
    results = {}

    def run_merge(run):
        with psycopg.connect(migrated_uri) as other:
            results[run] = warehouse.merge_customer(other, run, "acme")

    threads = [threading.Thread(target=run_merge, args=(run,)) for run in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["inserted"] for r in results.values()) == [0, 50]
    assert sorted(r["unchanged"] for r in results.values()) == [0, 50]
    assert len(history(conn)) == 50


def test_listed_equals_stored_plus_dead_lettered(conn):
    items = [
        list_item(1),
        {"name": "no id at all"},
        list_item(2),
        "not even an object",
        list_item(2, name="duplicate of 2", updated=BASE_TIME - timedelta(days=1)),
        list_item(3, createdAt="not a date"),
    ]
    counts = sync(conn, "r1", "acme", items, failures={3: RuntimeError("export timed out")})
    assert counts["listed"] == 6
    assert counts["stored"] == 3 and counts["dead_lettered"] == 3
    assert counts["listed"] == counts["stored"] + counts["dead_lettered"]
    assert counts["invalid"] == 1 and counts["exports_failed"] == 1
    run = conn.execute(
        "SELECT listed, stored, dead_lettered, status, zuora_environment, zuora_conn_id "
        "FROM zuora.sync_runs WHERE run_id = 'r1'"
    ).fetchone()
    assert run == (6, 3, 3, "success", "sandbox", "zuora_acme")
    letters = conn.execute(
        "SELECT stage, zuora_id, error_type FROM zuora.dead_letters "
        "WHERE resolved_at IS NULL ORDER BY stage, error_type"
    ).fetchall()
    assert letters == [
        ("export", 3, "RuntimeError"),
        ("validate", 2, "duplicate_id"),
        ("validate", None, "missing_id"),
        ("validate", None, "not_an_object"),
    ]
    assert workflows(conn)[2][0] == "Workflow 2"  # the newer of the duplicates
    conn.rollback()

    # the next run lists cleanly: every dead letter it fixed is resolved
    counts = sync(conn, "r2", "acme", [list_item(1), list_item(2), list_item(3)])
    assert counts["to_export"] == [3]
    open_letters = conn.execute("SELECT count(*) FROM zuora.open_dead_letters").fetchone()[0]
    resolved = conn.execute(
        "SELECT count(*) FROM zuora.dead_letters WHERE resolved_run_id = 'r2'"
    ).fetchone()[0]
    assert (open_letters, resolved) == (0, 4)


def test_task_level_dead_letter_repeats_then_resolves(conn):
    for attempt in (1, 2):
        warehouse.record_dead_letter(
            conn,
            run_id=f"f{attempt}",
            customer_id="acme",
            stage="export",
            error_type="ZuoraAuthError",
            message="401 from /oauth/token",
            attempts=1,
        )
    warehouse.finish_sync_run(conn, "f2", "acme", status="failed", error="export: 401")
    row = conn.execute("SELECT attempts, run_id FROM zuora.dead_letters").fetchone()
    assert row == (2, "f2")
    conn.rollback()
    sync(conn, "ok", "acme", [list_item(1)])
    assert conn.execute("SELECT resolved_run_id FROM zuora.dead_letters").fetchone() == ("ok",)
