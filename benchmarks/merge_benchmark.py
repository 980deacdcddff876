"""Merge benchmark: 100,000 workflows for 20 customers through COPY + merge, against a
row-by-row upsert baseline, and the rows a rerun with nothing changed rewrites (target 0).

Run: .venv/bin/python benchmarks/merge_benchmark.py [--customers 20] [--per-customer 5000]
Starts its own embedded Postgres (devstack.postgres.EmbeddedPostgres) and stops it after.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="zws-bench-airflow-"))

import psycopg  # noqa: E402

from devstack.postgres import EmbeddedPostgres  # noqa: E402
from zuora import warehouse  # noqa: E402

BASE = datetime(2024, 1, 1, tzinfo=UTC)
FORMATS = ("%Y-%m-%dT%H:%M:%S.000Z", "%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%d %H:%M:%S")


def list_item(workflow_id: int) -> dict:
    updated = (BASE + timedelta(minutes=workflow_id)).strftime(FORMATS[workflow_id % 3])
    return {
        "id": workflow_id,
        "name": f"Workflow {workflow_id}",
        "description": "",
        "status": "Active",
        "type": "Workflow::Setup",
        "ondemandTrigger": True,
        "calloutTrigger": False,
        "scheduledTrigger": workflow_id % 2 == 0,
        "interval": "0 0 3 /1 * *",
        "timezone": "Eastern Time (US & Canada)",
        "createdAt": updated,
        "updatedAt": updated,
        "active_version": {"id": workflow_id + 1, "version": "0.0.1", "status": "Active"},
        "latest_inactive_verisons": [],
    }


def small_export(workflow_id: int) -> dict:
    return {
        "workflow": {
            "id": workflow_id,
            "name": f"Workflow {workflow_id}",
            "priority": "Medium",
            "version": "0.0.1",
        },
        "tasks": [
            {
                "id": workflow_id * 10,
                "name": "Call",
                "action_type": "Callout",
                "parameters": {
                    "url": "https://example.com/x?api_key=SIM-SECRET-1",
                    "authorization": {"type": "bearer", "token": "SIM-SECRET-2"},
                },
            }
        ],
        "linkages": [
            {
                "source_workflow_id": workflow_id,
                "source_task_id": None,
                "target_task_id": workflow_id * 10,
                "linkage_type": "Start",
            }
        ],
    }


STAGE_SECONDS: dict[str, float] = {}


def _timed(stage: str, function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    STAGE_SECONDS[stage] = STAGE_SECONDS.get(stage, 0.0) + time.perf_counter() - started
    return result


def sync_customer(conn, run_id: str, customer_id: str, count: int, key: bytes | None) -> dict:
    ids = range(1, count + 1)
    _timed(
        "list (COPY)", warehouse.stage_listing, conn, run_id, customer_id, (list_item(i) for i in ids), True
    )
    to_export = warehouse.workflows_to_export(
        conn, run_id, customer_id, full_refresh=False, lookback=timedelta(days=7)
    )
    _timed(
        "export (redact, encrypt, COPY)",
        warehouse.stage_exports,
        conn,
        run_id,
        customer_id,
        ((i, small_export(i), None) for i in to_export),
        encryption_key=key,
    )
    _timed("validate", warehouse.validate_staged, conn, run_id, customer_id)
    return _timed("merge", warehouse.merge_customer, conn, run_id, customer_id)


def rewritten(conn) -> int:
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.commit()
    return conn.execute(
        "SELECT coalesce(sum(n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables "
        "WHERE schemaname = 'zuora' AND relname IN ('workflows', 'workflow_definitions')"
    ).fetchone()[0]


BASELINE_COLUMNS = (
    "customer_id",
    "zuora_id",
    "name",
    "status",
    "zuora_updated_at",
    "content_hash",
    "list_item",
    "last_run_id",
)


def baseline_rows(customer_id: str, count: int):
    from psycopg.types.json import Jsonb

    from zuora.warehouse.transform import content_hash, parse_zuora_timestamp

    for i in range(1, count + 1):
        item = list_item(i)
        yield (
            customer_id,
            i,
            item["name"],
            item["status"],
            parse_zuora_timestamp(item["updatedAt"]),
            content_hash(item),
            Jsonb(item),
            "baseline",
        )


def baseline(uri: str, conn, count: int) -> tuple[str, float]:
    """Row-by-row upsert of ``count`` list items: PostgresHook.insert_rows(replace=True) when it
    works outside a scheduler, else psycopg executemany of INSERT ... ON CONFLICT."""
    warehouse.upsert_customer(
        conn, customer_id="baseline", name="Baseline", zuora_conn_id="z", environment="sandbox"
    )
    rows = list(baseline_rows("baseline", count))
    try:
        os.environ["AIRFLOW_CONN_ZUORA_WAREHOUSE"] = uri
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id="zuora_warehouse")
        started = time.perf_counter()
        hook.insert_rows(
            "zuora.workflows",
            rows,
            target_fields=list(BASELINE_COLUMNS),
            commit_every=1000,
            replace=True,
            replace_index=["customer_id", "zuora_id"],
            executemany=False,
        )
        return (
            "PostgresHook.insert_rows(replace=True), one INSERT ... ON CONFLICT per row",
            time.perf_counter() - started,
        )
    except Exception as exc:  # noqa: BLE001 - fall back and say so
        print(f"PostgresHook baseline unavailable ({type(exc).__name__}: {exc}); using executemany")
    placeholders = ", ".join(["%s"] * len(BASELINE_COLUMNS))
    updates = ", ".join(f"{c} = excluded.{c}" for c in BASELINE_COLUMNS[2:])
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO zuora.workflows ({', '.join(BASELINE_COLUMNS)}) VALUES "
            f"({placeholders}) ON CONFLICT (customer_id, zuora_id) DO UPDATE SET {updates}",
            rows,
        )
    conn.commit()
    return "psycopg executemany of INSERT ... ON CONFLICT, row by row", time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--per-customer", type=int, default=5000)
    parser.add_argument("--baseline-rows", type=int, default=5000)
    args = parser.parse_args()
    total = args.customers * args.per_customer
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    with EmbeddedPostgres() as pg, psycopg.connect(pg.uri) as conn:
        warehouse.apply_migrations(conn)
        customers = [f"customer_{n:02d}" for n in range(args.customers)]
        for customer in customers:
            warehouse.upsert_customer(
                conn,
                customer_id=customer,
                name=customer,
                zuora_conn_id=f"zuora_{customer}",
                environment="sandbox",
            )
        started = time.perf_counter()
        for customer in customers:
            counts = sync_customer(conn, "run-1", customer, args.per_customer, key)
            assert counts["inserted"] == args.per_customer, counts
        first = time.perf_counter() - started
        first_stages = dict(STAGE_SECONDS)

        before = rewritten(conn)
        started = time.perf_counter()
        unchanged = 0
        for customer in customers:
            counts = sync_customer(conn, "run-2", customer, args.per_customer, key)
            unchanged += counts["unchanged"]
        rerun = time.perf_counter() - started
        rows_rewritten = rewritten(conn) - before
        history = conn.execute("SELECT count(*) FROM zuora.workflow_history").fetchone()[0]
        conn.commit()

        method, baseline_seconds = baseline(pg.uri, conn, args.baseline_rows)

    lines = [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, embedded Postgres 16 "
        "(fsync off)",
        f"- Command: `.venv/bin/python benchmarks/merge_benchmark.py --customers {args.customers} "
        f"--per-customer {args.per_customer} --baseline-rows {args.baseline_rows}`",
        f"- First run, {total:,} new workflows ({args.customers} customers x {args.per_customer:,}), "
        f"list + export (~0.5 KB, encrypted) + validate + merge: {first:.1f} s = "
        f"**{total / first:,.0f} workflows/s** end to end",
        f"- Rerun with nothing changed: {rerun:.1f} s ({total / rerun:,.0f} workflows/s), "
        f"{unchanged:,} unchanged, 0 exported, **{rows_rewritten} rows rewritten** in workflows + "
        f"workflow_definitions (pg_stat_user_tables n_tup_upd + n_tup_del), history rows {history:,} "
        f"(= the inserts only)",
        "- First run by stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in first_stages.items()),
        f"- **COPY + merge** (list COPY into staging + merge transaction, first run): "
        f"**{total / (first_stages['list (COPY)'] + first_stages['merge']):,.0f} workflows/s**",
        f"- Baseline, {args.baseline_rows:,} list items via {method}: {baseline_seconds:.1f} s = "
        f"**{args.baseline_rows / baseline_seconds:,.0f} rows/s** (list-item columns only: no "
        "validation, no history, no definitions)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
