"""Migrations: applied once however often they run; the reader role and its limits."""

from __future__ import annotations

import threading

import psycopg

from zuora import warehouse
from zuora.warehouse.migrations import migration_files

TABLES = {
    "customers",
    "workflows",
    "workflow_definitions",
    "workflow_history",
    "sync_runs",
    "dead_letters",
    "validation_issues",
    "schema_migrations",
    "staging_listings",
    "staging_list_items",
    "staging_workflows",
    "staging_exports",
}
VIEWS = {
    "current_workflows",
    "workflow_tasks",
    "changes_per_day",
    "sync_health",
    "open_dead_letters",
    "workflow_version_changes",
    "workflow_version_tasks",
    "environment_drift",
}


def _schema(conn) -> tuple[set, set, list]:
    tables = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'zuora' "
            "AND table_type = 'BASE TABLE'"
        )
    }
    views = {
        r[0]
        for r in conn.execute("SELECT table_name FROM information_schema.views WHERE table_schema = 'zuora'")
    }
    ledger = conn.execute("SELECT version FROM zuora.schema_migrations ORDER BY version").fetchall()
    return tables, views, ledger


def test_migrations_twice_equal_once(warehouse_uri):
    with psycopg.connect(warehouse_uri) as conn:
        first = warehouse.apply_migrations(conn)
        after_first = _schema(conn)
        second = warehouse.apply_migrations(conn)
        after_second = _schema(conn)
    assert first == [version for version, _, _ in migration_files()] and first[0] == "0001"
    assert second == []
    assert after_first == after_second
    tables, views, ledger = after_second
    assert TABLES <= tables and VIEWS <= views
    assert [r[0] for r in ledger] == first


def test_concurrent_migrations_apply_each_version_once(warehouse_uri):
    results, errors = [], []

    def migrate():
        try:
            with psycopg.connect(warehouse_uri) as conn:
                results.append(warehouse.apply_migrations(conn))
        except Exception as exc:  # pragma: no cover - the assertion shows it
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results, key=len) == [[], [], [version for version, _, _ in migration_files()]]


def test_reader_role_reads_everything_but_the_encrypted_original(conn):
    def can(table, column):
        return conn.execute(
            "SELECT has_column_privilege('zuora_reader', %s, %s, 'SELECT')", (f"zuora.{table}", column)
        ).fetchone()[0]

    assert can("workflows", "name") and can("workflow_definitions", "definition")
    assert can("sync_runs", "zuora_environment") and can("dead_letters", "payload")
    assert not can("workflow_definitions", "original_encrypted")
    assert not can("workflow_definitions", "original_hash")
    assert can("workflow_versions", "definition") and can("restores", "zuora_response")
    assert not can("workflow_versions", "original_encrypted")
    assert not can("workflow_versions", "original_hash")
    for view in VIEWS:
        assert conn.execute(
            "SELECT has_table_privilege('zuora_reader', %s, 'SELECT')", (f"zuora.{view}",)
        ).fetchone()[0], view
    assert not conn.execute(
        "SELECT has_table_privilege('zuora_reader', 'zuora.staging_exports', 'SELECT')"
    ).fetchone()[0]
    assert not conn.execute(
        "SELECT has_table_privilege('zuora_reader', 'zuora.workflows', 'INSERT')"
    ).fetchone()[0]
