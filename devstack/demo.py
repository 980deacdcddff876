"""`make demo`: the whole product on one machine, with nothing but Python.

Starts the embedded Postgres (data kept in .demo/ so a second run is incremental; for root
in a private folder see `postgres.data_folder`) and the Zuora simulator with three demo
customers plus Umbrella, a company with a sandbox and a production customer (tenant group
`umbrella`) whose sandbox differs in two workflows, prepares an Airflow home with SQLite
metadata under .demo/airflow, registers the customers, runs the DAG once with `airflow dags
test`, prints a per-customer summary from the warehouse, Umbrella's drift report and the
dry run of promoting its differing workflow to production, and stops what it started.

`python -m devstack.demo --standalone` does the same setup and then runs
`airflow standalone` so you can open the UI (http://localhost:8080), trigger with params,
backfill and look at the batch tasks (or, for a few customers, the mapped groups per customer);
Ctrl-C (or SIGTERM) stops everything. Its metadata database is the embedded Postgres's
`airflow`, not SQLite: on SQLite, Airflow 3.3.2 can half-create a backfill while a run is going
("Database is locked") and its scheduler then dies on the runs it had started
(apache/airflow#68699).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet

from devstack import postgres
from devstack.postgres import EmbeddedPostgres
from zuora_simulator import demo as sim_demo
from zuora_simulator.client import running_simulator
from zuora_simulator.demo import add_umbrella_tenants, demo_tenants

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
AIRFLOW_HOME = DEMO / "airflow"
DAG_ID = "zuora_workflow_sync"
CUSTOMERS = sim_demo.CUSTOMER_NAMES
# Umbrella's two environments, one tenant group: customer id (= simulator tenant id) ->
# (name, environment)
UMBRELLA_GROUP = sim_demo.UMBRELLA_GROUP
UMBRELLA = sim_demo.UMBRELLA_CUSTOMERS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standalone", action="store_true", help="run the Airflow UI instead")
    parser.add_argument("--reset", action="store_true", help="forget earlier demo runs first")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop)  # as Ctrl-C: stop what was started
    if args.reset:
        subprocess.run(["rm", "-rf", str(DEMO)], check=True)
    DEMO.mkdir(exist_ok=True)
    sys.path.insert(0, str(ROOT / "plugins"))
    postgres_data = postgres.data_folder(DEMO)
    if postgres_data != DEMO / "postgres":
        say(
            f"Postgres data kept in {postgres_data}: under root Postgres runs as `nobody`, who "
            f"cannot enter {DEMO}. `rm -rf .demo` (or --reset) starts over there too"
        )

    with EmbeddedPostgres(data_dir=postgres_data) as pg, running_simulator(demo=True) as sim:
        add_umbrella_tenants(sim.admin)
        env = airflow_env(pg.uri, sim.base_url, umbrella=True)
        if args.standalone:
            metadata = pg.database("airflow").replace("postgresql://", "postgresql+psycopg://", 1)
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata
            # the LocalExecutor's processes (it starts one per slot): docker-compose's two
            # workers of 4, not Airflow's default 32
            env["AIRFLOW__CORE__PARALLELISM"] = "8"
        say(f"Postgres on {pg.uri}, Zuora simulator on {sim.base_url}")
        register_customers(pg.uri, umbrella=True)
        prepare_airflow(env)
        if args.standalone:
            return run_standalone(env)
        say(f"Running the DAG once (airflow dags test {DAG_ID}); log in .demo/last-run.log")
        started = time.monotonic()
        with open(DEMO / "last-run.log", "w") as log:
            result = subprocess.run(
                [airflow(), "dags", "test", DAG_ID], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        say(
            f"DAG run finished in {time.monotonic() - started:.0f} s "
            f"({'success' if result.returncode == 0 else 'failed: see .demo/last-run.log'})"
        )
        print_summary(pg.uri)
        show_drift_and_restore(env, pg.uri)
    return 0


def stop(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def airflow_env(warehouse_uri: str, simulator_url: str, umbrella: bool = False) -> dict[str, str]:
    """Environment for every airflow command: home, folders, connections, variables."""
    key_file = DEMO / "export-encryption.key"
    if not key_file.exists():
        key_file.write_bytes(Fernet.generate_key())
        key_file.chmod(0o600)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        # `airflow standalone` starts its components as `airflow ...` from PATH
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "AIRFLOW_CONN_ZUORA_WAREHOUSE": warehouse_uri,
        "AIRFLOW_VAR_ZUORA_EXPORT_ENCRYPTION_KEY": key_file.read_text(),
    }
    return {**env, **demo_connections(simulator_url, umbrella)}


def demo_connections(simulator_url: str, umbrella: bool = False) -> dict[str, str]:
    """``AIRFLOW_CONN_ZUORA_DEMO_*`` for the simulator's demo tenants (and Umbrella's)."""
    from zuora.api.credentials import airflow_connection

    tenants = [(tenant, "sandbox") for tenant in demo_tenants()]
    if umbrella:
        tenants += [(tenant, UMBRELLA[tenant["tenant_id"]][1]) for tenant in sim_demo.umbrella_tenants()]
    return {
        f"AIRFLOW_CONN_ZUORA_DEMO_{tenant['tenant_id'].upper()}": json.dumps(
            airflow_connection(
                simulator_url,
                tenant["client_id"],
                tenant["client_secret"],
                allow_insecure_http=True,
                environment=environment,
            )
        )
        for tenant, environment in tenants
    }


def register_customers(warehouse_uri: str, umbrella: bool = False) -> None:
    from zuora import warehouse

    customers = [(customer_id, name, "sandbox", None) for customer_id, name in CUSTOMERS.items()]
    if umbrella:
        customers += [
            (customer_id, name, environment, UMBRELLA_GROUP)
            for customer_id, (name, environment) in UMBRELLA.items()
        ]
    with psycopg.connect(warehouse_uri) as conn:
        warehouse.apply_migrations(conn)
        for customer_id, name, environment, tenant_group in customers:
            warehouse.upsert_customer(
                conn,
                customer_id=customer_id,
                name=name,
                zuora_conn_id=f"zuora_demo_{customer_id}",
                environment=environment,
                tenant_group=tenant_group,
            )
        conn.commit()


def prepare_airflow(env: dict[str, str]) -> None:
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    run_quietly([airflow(), "db", "migrate"], env)
    from zuora import settings

    run_quietly([airflow(), "pools", "set", settings.POOL, str(settings.POOL_SLOTS), "Zuora API calls"], env)


def run_standalone(env: dict[str, str]) -> int:
    say(
        "Starting `airflow standalone`: open http://localhost:8080 (the admin password is "
        "printed below and stored in .demo/airflow); Ctrl-C stops everything"
    )
    process = subprocess.Popen([airflow(), "standalone"], env=env, start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        # standalone orphans its scheduler and workers on SIGTERM: stop the whole group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def print_summary(warehouse_uri: str) -> None:
    with psycopg.connect(warehouse_uri) as conn:
        rows = conn.execute("""
            SELECT r.customer_id, r.status, r.listed, r.exported, r.inserted, r.updated, r.deleted,
                   (SELECT count(*) FROM zuora.dead_letters d
                     WHERE d.customer_id = r.customer_id AND d.resolved_at IS NULL),
                   r.api_requests, r.rate_limited, round(r.duration_seconds::numeric, 1)
              FROM zuora.sync_runs r
             WHERE r.run_id = (SELECT run_id FROM zuora.sync_runs ORDER BY started_at DESC LIMIT 1)
             ORDER BY r.customer_id""").fetchall()
        open_dead_letters = conn.execute(
            "SELECT count(*) FROM zuora.dead_letters WHERE resolved_at IS NULL"
        ).fetchone()[0]
        customers, batch_tasks = conn.execute("""
            SELECT count(*), count(DISTINCT map_index) FILTER (WHERE task_id IS NOT NULL)
              FROM zuora.sync_runs
             WHERE run_id = (SELECT run_id FROM zuora.sync_runs ORDER BY started_at DESC LIMIT 1)
        """).fetchone()
    header = (
        "customer",
        "status",
        "listed",
        "exported",
        "inserted",
        "updated",
        "deleted",
        "dead letters",
        "API calls",
        "429s",
        "seconds",
    )
    table = [header] + [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print()
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(f"\nShape: {shape(customers, batch_tasks)}")
    print(f"Open dead letters: {open_dead_letters} (SELECT * FROM zuora.open_dead_letters)")
    print("Run `make demo` again to see an incremental run: unchanged workflows are not exported.")


def shape(customers: int, batch_tasks: int) -> str:
    """What $ZUORA_SYNC_CUSTOMERS_PER_TASK (auto by default) made of the run, and why."""
    from zuora import settings

    forced = settings.customers_per_task()
    if forced is not None:
        why = f"$ZUORA_SYNC_CUSTOMERS_PER_TASK={forced}"
    else:
        why = f"auto, {settings.max_concurrent_exports()} export slots"
    if batch_tasks:
        return (
            f"{customers} customers in {batch_tasks} batch tasks, sync_customers ({why}); a run for "
            "a few customer_ids has one task group (four tasks) per customer"
        )
    return f"{customers} customers, one task group (customer_sync, four tasks) each ({why})"


def show_drift_and_restore(env: dict[str, str], warehouse_uri: str) -> None:
    """Umbrella's drift report, and the dry run of promoting its differing sandbox workflow
    to production: the CLI, as a user runs it."""
    with psycopg.connect(warehouse_uri) as conn:
        different = conn.execute(
            "SELECT sandbox_customer_id, sandbox_zuora_id, sandbox_version, production_customer_id "
            "FROM zuora.environment_drift WHERE tenant_group = %s AND state = 'different' "
            "ORDER BY workflow_name LIMIT 1",
            (UMBRELLA_GROUP,),
        ).fetchone()
    commands = [["drift", UMBRELLA_GROUP]]
    if different:
        sandbox, zuora_id, version, production = different
        commands.append(["restore", sandbox, str(zuora_id), "--version", version, "--to", production])
    for arguments in commands:
        print()
        say(f"python -m zuora.cli {' '.join(arguments)}")
        result = subprocess.run(
            [sys.executable, "-m", "zuora.cli", *arguments], env=env, capture_output=True, text=True
        )
        print((result.stdout or result.stderr).rstrip())


def airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def run_quietly(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:])} failed:\n{result.stdout}\n{result.stderr}")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
