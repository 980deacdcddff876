"""What reading task usage (issue 31) adds to a customer's unchanged daily run: Zuora calls and
the CPU of the list task that reads it.

Run: .venv/bin/python benchmarks/task_usage_cost.py [--customers 20] [--workflows 3] [--rounds 3]
Starts its own simulator and embedded Postgres and stops them after. Each customer is synced
once (its first read: this month and last), then in each round every customer's unchanged
run goes through ``zuora.sync.list_stage`` as the DAG's list task runs it (finishing the
unchanged customer there): once on the same UTC day (no usage call) and once a day later
(the usage reader's clock moved a day on: one call, three days), alternating. Counts the
calls with the simulator's own stats, and the process CPU (user + system) of the list task
per customer. Writes the "Task usage reading" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
from datetime import UTC, datetime, timedelta

import _common  # noqa: F401  (paths and Airflow environment first)
import psycopg
from cryptography.fernet import Fernet

from devstack.postgres import EmbeddedPostgres
from zuora import sync, usage, warehouse
from zuora_simulator.client import running_simulator

# benchmarks/RESULTS.md "Unchanged run" (2026-12-07): the default shape (auto, batches) spent
# 7.7 Airflow CPU-s on an unchanged run of 50 customers; a group per customer spent 32.8
UNCHANGED_RUN_CPU_S = 7.7 / 50  # Airflow CPU-s per unchanged customer, the cheaper shape


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def unchanged_runs(sim, customers: list[dict], run_id: str) -> tuple[float, dict[str, int]]:
    """Every customer's unchanged run by its list task: CPU-s per customer, calls by endpoint."""
    for customer in customers:
        sim.admin.reset_stats(customer["customer_id"])
    started = cpu()
    for customer in customers:
        listed = sync.list_stage(customer, run_id, finish_unchanged=True)
        assert listed.finished is not None, "the customer was not unchanged"
    spent = (cpu() - started) / len(customers)
    calls: dict[str, int] = {}
    for customer in customers:
        for endpoint, n in sim.admin.stats(customer["customer_id"])["requests"].items():
            calls[endpoint] = calls.get(endpoint, 0) + n
    return spent, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--workflows", type=int, default=3, help="per customer")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _common.quiet_logs()
    started_at, machine = _common.utc_date(), _common.machine()
    n = args.customers
    os.environ["ZUORA_EXPORT_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    os.environ["ZUORA_SYNC_HISTORY_CALLS"] = "0"
    ids = [f"usage{i:02d}" for i in range(n)]
    tenants = [{"tenant_id": t, "workflows": args.workflows, "seed": i + 1} for i, t in enumerate(ids)]
    same_day: list[float] = []
    next_day: list[float] = []
    calls = {}
    with EmbeddedPostgres() as pg, running_simulator(tenants=tenants) as sim:
        os.environ["AIRFLOW_CONN_ZUORA_WAREHOUSE"] = pg.uri
        with psycopg.connect(pg.uri) as conn:
            warehouse.apply_migrations(conn)
            customers = [_common.register_customer(conn, t, sim.admin.get_tenant(t)) for t in ids]
        for customer in customers:
            sync.run_customer(customer, "first")
        day = datetime.now(UTC)
        for round_number in range(args.rounds):
            usage.utcnow = lambda: day  # noqa: B023  (read during this round only)
            spent, calls["same day"] = unchanged_runs(sim, customers, f"same-{round_number}")
            same_day.append(spent)
            day += timedelta(days=1)
            spent, calls["next day"] = unchanged_runs(sim, customers, f"next-{round_number}")
            next_day.append(spent)
        with psycopg.connect(pg.uri) as conn:
            outcomes = dict(
                conn.execute(
                    "SELECT task_usage, count(*) FROM zuora.sync_runs WHERE run_id LIKE 'next-%' GROUP BY 1"
                ).fetchall()
            )
    assert outcomes == {"read": n * args.rounds}, outcomes
    same, following = statistics.median(same_day), statistics.median(next_day)
    added = following - same

    def row(label: str, counted: dict[str, int], seconds: float) -> str:
        per = {endpoint: counted.get(endpoint, 0) / n for endpoint in ("token", "list", "export", "metrics")}
        total = sum(counted.values()) / n
        return (
            f"| {label} | {per['token']:g} | {per['list']:g} | {per['export']:g} | {per['metrics']:g} | "
            f"**{total:g}** | {seconds * 1000:.1f} |"
        )

    body = f"""\
`{_common.command("task_usage_cost.py")}` ({n} customers x {args.workflows} workflows, default
simulator tenants, {args.rounds} rounds). Each customer's unchanged run goes through
`zuora.sync.list_stage(..., finish_unchanged=True)`, as the DAG's list task syncs a customer
with nothing new; the same UTC day (no usage call) and a day later (the usage reader's clock
moved a day on), alternating. Calls counted by the simulator's per-tenant stats (last round);
CPU is this process's user + system CPU over the list tasks (the hook, psycopg, the stages),
median of the rounds, per customer. Machine: {machine}. Date: {started_at}.

| unchanged run | token | list pages | exports | task usage | calls per customer | list task CPU ms per customer |
|---|---|---|---|---|---|---|
{row("same UTC day (usage read already)", calls["same day"], same)}
{row("the next day (usage due: 3 days)", calls["next day"], following)}

Reading usage adds **{calls["next day"].get("metrics", 0) / n:g} call** per customer per day and
{added * 1000:.1f} ms of CPU per customer ({added / UNCHANGED_RUN_CPU_S:.1%} of the
{UNCHANGED_RUN_CPU_S:.2f} Airflow CPU-s an unchanged customer costs in the cluster in the
default shape, "Unchanged run" above; aim: at most one call and 5 %). The same-day row includes what decides that no
call is due (one query, one update of the run's row). Before issue 31 (`benchmarks/api_efficiency.py` at
commit 4d39316, 5 x 200 workflows, 2026-12-06) an unchanged run cost 4 calls per customer (its
list pages; 5 with no cached token), whatever the day; with it, the same, plus the one usage
call on the first run of each UTC day ("API efficiency", row "next day, nothing changed").
"""
    print(body)
    _common.write_section("Task usage reading", body)


if __name__ == "__main__":
    main()
