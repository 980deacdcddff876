"""Airflow overhead: end-to-end ``dag.test()`` time of ``zuora_workflow_sync`` for 1, 10 and
50 customers with small data (5 workflows each), the per-customer cost (slope) of the mapped
task group, against the same library stages called directly (no Airflow) in the same run.

Run: .venv/bin/python benchmarks/airflow_overhead.py [--sizes 1,10,50] [--workflows 5]
         [--budget 180]
Prepares a throwaway Airflow home (SQLite, ``airflow db migrate``), starts its own simulator
and embedded Postgres, and writes the "Airflow overhead" section of RESULTS.md. A size whose
projected time (from the slope so far) would overrun ``--budget`` seconds is skipped, and the
section says so.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Airflow reads its configuration at import time: a fresh home before anything imports it.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="zws-bench-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "plugins")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
# the group shape, whose per-customer slope this measures (auto batches runs of 5 or more)
os.environ.setdefault("ZUORA_SYNC_CUSTOMERS_PER_TASK", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import _common  # noqa: E402  (paths)


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of seconds against customers."""
    if len(points) == 1:
        return points[0][1], 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope


def library_run(customers: list[dict], run_id: str) -> None:
    from zuora import sync

    sync.migrate()
    to_sync = sync.customers_to_sync([c["customer_id"] for c in customers])
    for customer in to_sync:
        sync.run_customer(customer, run_id)
    sync.summarize_run(run_id, to_sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50", help="customers per run, comma separated")
    parser.add_argument("--workflows", type=int, default=5, help="per customer")
    parser.add_argument(
        "--budget",
        type=float,
        default=180.0,
        help="seconds for the dag.test() runs; a size that would overrun is skipped",
    )
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    started_at, machine = _common.utc_date(), _common.machine()

    clock = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ,
    )
    migrate_seconds = time.perf_counter() - clock

    import psycopg
    from cryptography.fernet import Fernet

    from devstack.postgres import EmbeddedPostgres
    from zuora import warehouse
    from zuora_simulator.client import running_simulator

    os.environ["ZUORA_EXPORT_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    library_sizes = [s for s in sizes if s <= 10]
    groups = {("dag", size): [f"d{size}_{i:02d}" for i in range(size)] for size in sizes}
    groups.update({("lib", size): [f"l{size}_{i:02d}" for i in range(size)] for size in library_sizes})
    all_ids = [t for ids in groups.values() for t in ids]
    tenants = [{"tenant_id": t, "workflows": args.workflows, "seed": i + 1} for i, t in enumerate(all_ids)]

    with EmbeddedPostgres() as pg, running_simulator(tenants=tenants) as sim:
        os.environ["AIRFLOW_CONN_ZUORA_WAREHOUSE"] = pg.uri
        customers = {}
        with psycopg.connect(pg.uri) as conn:
            warehouse.apply_migrations(conn)
            for t in all_ids:
                customers[t] = _common.register_customer(
                    conn, t, sim.admin.get_tenant(t), max_attempts=3, max_retry_wait=2
                )

        from airflow.dag_processing.dagbag import DagBag

        clock = time.perf_counter()
        dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["zuora_workflow_sync"]
        parse_seconds = time.perf_counter() - clock
        dag.deadline = None  # dag.test() crashes at the end of a run with a deadline (3.3.2)
        logging.getLogger("airflow").setLevel(logging.WARNING)

        library = []
        for size in library_sizes:
            ids = groups[("lib", size)]
            clock = time.perf_counter()
            library_run([customers[t] for t in ids], f"lib-{size}")
            library.append((size, time.perf_counter() - clock))
            print(f"library stages, {size} customers: {library[-1][1]:.1f} s", flush=True)

        points, skipped, spent = [], [], 0.0
        for size in sizes:
            if len(points) >= 2:  # the first two sizes always run: they give the slope
                intercept, slope = fit(points)
                projected = intercept + slope * size
                if spent + projected > args.budget:
                    skipped.append((size, projected))
                    print(f"skipping {size} customers: projected {projected:.0f} s", flush=True)
                    continue
            ids = groups[("dag", size)]
            clock = time.perf_counter()
            run = dag.test(run_conf={"customer_ids": ids, "full_refresh": False})
            seconds = time.perf_counter() - clock
            spent += seconds
            assert run.state == "success", (size, run.state)
            with psycopg.connect(pg.uri) as conn:
                stored = conn.execute(
                    "SELECT count(*) FROM zuora.workflows WHERE customer_id = ANY(%s)", (ids,)
                ).fetchone()[0]
            assert stored == size * args.workflows, (size, stored)
            points.append((size, seconds))
            print(f"dag.test(), {size} customers: {seconds:.1f} s", flush=True)

    intercept, slope = fit(points)
    lib_intercept, lib_slope = fit(library)
    rows = "\n".join(
        f"| {size} | {4 * size + 3} | {seconds:.1f} s | {seconds / size:.2f} s |" for size, seconds in points
    )
    lib_rows = "\n".join(
        f"| {size} (library stages, no Airflow) | {4 * size} calls | {seconds:.1f} s | "
        f"{seconds / size:.2f} s |"
        for size, seconds in library
    )
    skipped_text = "".join(
        f" **{size} customers skipped**: projected {projected:.0f} s from the slope so far, over "
        f"the {args.budget:.0f} s budget (run with `--budget {projected * 1.3 + spent:.0f}` to include it)."
        for size, projected in skipped
    )
    body = f"""\
`{_common.command("airflow_overhead.py")}`: `zuora_workflow_sync` end to end with
`dag.test()` (customers chosen with the `customer_ids` param, each a first sync of
{args.workflows} workflows from its own simulator tenant, no latency), against the same library
stages called directly in this process (no Airflow). Fresh Airflow home with SQLite metadata
(`airflow db migrate`: {migrate_seconds:.0f} s, not counted; DagBag parse {parse_seconds:.1f} s, not counted),
embedded Postgres 16, `dag.deadline = None` (Airflow 3.3.2 bug). Machine: {machine}.
Date: {started_at}.{skipped_text}

| customers | task instances | dag.test() | per customer |
|---|---|---|---|
{rows}
{lib_rows}

Fit: dag.test() = **{intercept:.1f} s + {slope:.2f} s per customer**; library stages alone =
{lib_intercept:.1f} s + {lib_slope:.2f} s per customer. So the mapped task group costs about
**{slope - lib_slope:.2f} s per customer** on top of the sync work itself ({slope / lib_slope if lib_slope else float("nan"):.0f}x the work at this
tiny data size), i.e. about {(slope - lib_slope) / 4:.2f} s per task instance.

Reading: with small data the run time is Airflow's own per-task cost, linear in customers:
four task instances per customer (list, export, validate, upsert), each scheduled, run
and recorded with its XCom in the metadata DB, while the actual sync of 5 workflows takes a
fraction of that. `dag.test()` runs task instances one at a time in one process, so this is a
cost per task, not a wall time for a real deployment, where the pool's slots and the workers run
customers in parallel (then the figure divides by the parallelism, and each task also pays a
process start-up, which `dag.test()` does not). It shows the fixed price of one mapped group per
customer: cheap next to a real customer's exports (seconds to minutes each), dominant only
for tiny customers. The first size also carries one-off costs (first DAG serialisation and run
set-up), hence the intercept; per customer the cost {"grows slightly with the run's size (" + ", ".join(f"{s / c:.2f}" for c, s in points[1:]) + " s), probably because each scheduling pass of `dag.test()` looks at more task instances" if len(points) > 2 and points[-1][1] / points[-1][0] > points[-2][1] / points[-2][0] else "stays flat"}.
"""
    print(body)
    _common.write_section("Airflow overhead", body)


if __name__ == "__main__":
    main()
