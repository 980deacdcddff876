"""Zuora sync page benchmark: 1,000 customers with 400 days of daily syncs (400,000
``zuora.sync_runs`` rows), 20 workflows each with versions and fingerprints (half of the
customers paired in tenant groups, so drift is computed), open dead letters, alerts and
restores, 400 days of task usage and about 16,000 workflow status transitions; every page and
JSON answer timed through the api-server's real app
(``create_app()``, a viewer's JWT), then the fleet again without migration 0006's indexes.

Run: .venv/bin/python benchmarks/health_page.py [--customers 1000] [--days 400] [--repeat 10]
Starts its own embedded Postgres and a throwaway Airflow home (SQLite metadata), stops them after.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (paths and the Airflow environment first)
import psycopg

from devstack.postgres import EmbeddedPostgres
from zuora import warehouse

TARGET_SECONDS = 0.5

GENERATE = """
SELECT setseed(0.42);
INSERT INTO zuora.customers (customer_id, name, zuora_conn_id, environment, tenant_group)
SELECT format('cust-%%s', lpad(i::text, 4, '0')), format('Customer %%s', i), format('zuora_cust_%%s', i),
       CASE WHEN i %% 2 = 0 THEN 'production' ELSE 'sandbox' END,
       CASE WHEN i <= %(customers)s / 2 THEN format('group-%%s', (i + 1) / 2) END
  FROM generate_series(1, %(customers)s) i;

-- one run a day per customer; about 3%% fail, 10%% see 429s; slower customers stay slower
INSERT INTO zuora.sync_runs (run_id, customer_id, status, started_at, finished_at, duration_seconds,
                             api_requests, rate_limited, retries, listed, stored, versions_pending)
SELECT format('scheduled__%%s', (now() - make_interval(days => d))::date), c.customer_id,
       CASE WHEN random() < 0.03 THEN 'failed' ELSE 'success' END,
       s.started, s.started + make_interval(secs => s.seconds), s.seconds,
       20 + (random() * 60)::int, CASE WHEN random() < 0.1 THEN (random() * 12)::int ELSE 0 END,
       (random() * 2)::int, 20, 20, CASE WHEN d = 0 THEN (random() * 30)::int END
  FROM zuora.customers c
 CROSS JOIN generate_series(0, %(days)s - 1) d
 CROSS JOIN LATERAL (SELECT now() - make_interval(days => d, hours => 1)
                                  + make_interval(secs => substr(c.customer_id, 6)::int) AS started,
                            5 + random() * 40 + substr(c.customer_id, 6)::int %% 7 * 10 AS seconds) s;

INSERT INTO zuora.workflows (customer_id, zuora_id, name, status, active_version, zuora_updated_at,
                             content_hash, list_item, last_run_id)
SELECT c.customer_id, w, format('Workflow %%s', w), 'Active', '1.0.' || w, now() - make_interval(days => w),
       md5(c.customer_id || w), jsonb_build_object('id', w), 'bench'
  FROM zuora.customers c CROSS JOIN generate_series(1, 20) w;

INSERT INTO zuora.workflow_definitions (customer_id, zuora_id, version, definition, definition_hash,
                                        task_count, linkage_count, size_bytes, exported_at, run_id,
                                        original_hash, fingerprint, settings_hash, task_hashes)
SELECT customer_id, zuora_id, active_version, '{}', md5(customer_id || zuora_id), 3, 2, 100, now(), 'bench',
       md5(customer_id), md5(zuora_id::text || CASE WHEN random() < 0.1 THEN customer_id ELSE '' END),
       md5(zuora_id::text), jsonb_build_object('task a', md5(zuora_id::text), 'task b', md5(customer_id))
  FROM zuora.workflows;

INSERT INTO zuora.workflow_versions (customer_id, zuora_id, version_id, version, version_order, name,
                                     status, zuora_updated_at, run_id, definition, fingerprint,
                                     settings_hash, task_hashes)
SELECT w.customer_id, w.zuora_id, w.zuora_id * 10 + v, '1.0.' || v, ARRAY[1, 0, v], w.name, 'Active',
       now() - make_interval(days => 30 - v), 'bench',
       CASE WHEN v < 3 THEN '{}'::jsonb END, md5(w.zuora_id::text || v), md5(v::text),
       CASE WHEN v < 3 THEN jsonb_build_object('task a', md5(v::text)) END
  FROM zuora.workflows w CROSS JOIN generate_series(1, 3) v;

INSERT INTO zuora.dead_letters (customer_id, run_id, stage, zuora_id, item_key, error_type, message)
SELECT c.customer_id, 'bench', 'export', k, k::text, 'ZuoraError', format('HTTP 500 on export %%s', k)
  FROM zuora.customers c CROSS JOIN generate_series(1, 3) k
 WHERE random() < 0.1;

INSERT INTO zuora.alerts (raised_at, kind, severity, title, details, channel)
SELECT now() - make_interval(hours => h), 'slow_sync', 'warning', 'slow', jsonb_build_object(
           'customer_id', format('cust-%%s', lpad((1 + h %% %(customers)s)::text, 4, '0'))), 'log'
  FROM generate_series(1, %(days)s * 6) h;

INSERT INTO zuora.restores (requested_by, applied, status, scope, source_customer_id, source_zuora_id,
                            target_customer_id, mode, activate, plan)
SELECT 'ops', true, 'imported', 'cross_company_copy', format('cust-%%s', lpad((1 + i %% %(customers)s)::text, 4, '0')), 1,
       format('cust-%%s', lpad((2 + i %% %(customers)s)::text, 4, '0')), 'new_version', false, '{}'
  FROM generate_series(1, 2000) i;

-- task usage (issue 31): a day a row for every day, as a year of daily reads keeps it, for 95%%
-- of the customers (the others' tenants answer 403); an allowance for half of them
UPDATE zuora.customers SET task_allowance = 30000 + substr(customer_id, 6)::int %% 10 * 5000
 WHERE substr(customer_id, 6)::int %% 2 = 0;
INSERT INTO zuora.task_usage (customer_id, day, task_count, read_at, run_id)
SELECT c.customer_id, (now() AT TIME ZONE 'UTC')::date - d, 500 + (random() * 1500)::int,
       now() - make_interval(days => greatest(d - 2, 0)), 'bench'
  FROM zuora.customers c CROSS JOIN generate_series(0, %(days)s - 1) d
 WHERE substr(c.customer_id, 6)::int %% 20 <> 7;
INSERT INTO zuora.task_usage_reads (customer_id, checked_at, available, first_day, last_day, days,
                                    http_status, run_id)
SELECT customer_id, now() - interval '1 hour', substr(customer_id, 6)::int %% 20 <> 7,
       current_date - 2, current_date, 3, CASE WHEN substr(customer_id, 6)::int %% 20 = 7 THEN 403 END, 'bench'
  FROM zuora.customers;

-- workflow status transitions: about 16 a customer over the days, a third of them switch-offs
INSERT INTO zuora.workflow_events (customer_id, zuora_id, kind, workflow_name, seen_at, previous_seen_at,
                                   old_status, new_status, new_version, made_by, run_id)
SELECT w.customer_id, w.zuora_id, k.kind, w.name, now() - make_interval(days => d, hours => 1),
       now() - make_interval(days => d + 1, hours => 1),
       CASE k.kind WHEN 'activated' THEN 'Inactive' ELSE 'Active' END,
       CASE k.kind WHEN 'deactivated' THEN 'Inactive' ELSE 'Active' END, w.active_version, 'zuora',
       format('scheduled__%%s', (now() - make_interval(days => d))::date)
  FROM zuora.workflows w CROSS JOIN generate_series(0, %(days)s - 1) d
 CROSS JOIN LATERAL (SELECT (ARRAY['activated', 'deactivated', 'version_changed'])[1 + (random() * 2.99)::int]
                            AS kind) k
 WHERE random() < 0.002;
ANALYZE
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    _common.quiet_logs()
    logging.getLogger("http.access").setLevel(logging.WARNING)
    machine = _common.machine()

    with EmbeddedPostgres() as pg:
        with psycopg.connect(pg.uri, autocommit=True) as admin:
            admin.execute("CREATE DATABASE page_bench")
        uri = pg.uri.rpartition("/")[0] + "/page_bench"
        started = time.monotonic()
        with psycopg.connect(uri) as conn:
            warehouse.apply_migrations(conn)
            for statement in GENERATE.split(";\n"):
                if statement.strip():
                    conn.execute(statement, {"customers": args.customers, "days": args.days})
            conn.commit()
            runs, usage, events = conn.execute(
                "SELECT (SELECT count(*) FROM zuora.sync_runs), (SELECT count(*) FROM zuora.task_usage), "
                "(SELECT count(*) FROM zuora.workflow_events)"
            ).fetchone()
        generated = time.monotonic() - started
        print(f"generated {runs:,} sync runs in {generated:.0f} s")

        os.environ["AIRFLOW_CONN_ZUORA_WAREHOUSE"] = uri
        os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "viewer1:viewer"
        os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = secrets.token_urlsafe(48)
        airflow = Path(sys.executable).with_name("airflow")
        subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from fastapi.testclient import TestClient

        app = create_app()
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer1", role="viewer"))
        middle = f"cust-{args.customers // 2:04d}"
        requests = [
            ("fleet page (first 100 rows, 3 charts)", "/zuora-sync/"),
            ("fleet JSON (100 rows + 30 days)", "/zuora-sync/api/fleet"),
            (
                f"fleet JSON, all {args.customers} customers",
                f"/zuora-sync/api/fleet?page_size={args.customers}",
            ),
            ("fleet page, search", f"/zuora-sync/?q={middle}"),
            ("fleet page, failing filter", "/zuora-sync/?health=failing"),
            ("fleet page, last page", f"/zuora-sync/?page={max(1, args.customers // 100)}"),
            ("customer page", f"/zuora-sync/customers/{middle}"),
            ("customer JSON", f"/zuora-sync/api/customers/{middle}"),
        ]
        rows = []
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            for label, path in requests:
                rows.append((label, path, *timed(client, path, args.repeat)))
            with psycopg.connect(uri, autocommit=True) as conn:
                conn.execute("DROP INDEX zuora.sync_runs_started_idx, zuora.sync_runs_success_idx")
            without = [
                (label + " (without 0006's indexes)", path, *timed(client, path, args.repeat))
                for label, path in requests[:3]
            ]

    width = max(len(r[0]) for r in rows + without)
    for label, _, median, slowest, size, status in rows + without:
        print(
            f"{label:<{width}}  {status}  median {median * 1000:6.0f} ms  max {slowest * 1000:6.0f} ms  {size:,} B"
        )
    worst_median = max(r[2] for r in rows)
    worst = max(r[3] for r in rows)
    table = "\n".join(
        f"| {label} | `{path}` | {median * 1000:.0f} | {slowest * 1000:.0f} | {size:,} |"
        for label, path, median, slowest, size, _ in rows + without
    )
    body = f"""
{_common.utc_date()}; `{_common.command("health_page.py")}`; {machine}.

Data: {args.customers:,} customers ({args.customers // 2:,} paired in tenant groups), {runs:,} `sync_runs`
({args.days} days, one run a day each, ~3% failed), 20 workflows each with definitions and 3
versions, ~10% of customers with open dead letters, {args.days * 6:,} alerts, 2,000 restores,
{usage:,} days of `task_usage` (95% of the customers, an allowance for half),
{events:,} `workflow_events` (generated in {
        generated:.0f} s). Each answer through the api-server's app (`create_app()`,
`TestClient`, a viewer's JWT: authentication, permission, warehouse connection, queries,
rendering), {args.repeat} times after one warm-up; target {TARGET_SECONDS} s.

| request | path | median ms | max ms | bytes |
|---|---|---|---|---|
{table}

With the indexes, the slowest median is {worst_median * 1000:.0f} ms ({
        "under" if worst_median < TARGET_SECONDS else "OVER"
    } the
{TARGET_SECONDS} s target) and the slowest single answer {worst * 1000:.0f} ms{
        ""
        if worst < TARGET_SECONDS
        else " (over the target: single answers on this shared machine, whose load is in the machine line)"
    }. Load average at the end: {", ".join(f"{x:.2f}" for x in os.getloadavg())}.
"""
    _common.write_section("Zuora sync page", body)
    return 0 if worst_median < TARGET_SECONDS else 1


def timed(client, path: str, repeat: int) -> tuple[float, float, int, int]:
    answer = client.get(path)  # warm-up
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200
    return statistics.median(times), max(times), len(answer.content), answer.status_code


if __name__ == "__main__":
    sys.exit(main())
