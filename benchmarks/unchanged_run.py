"""An unchanged daily run under the local Celery cluster: zuora_workflow_sync, where a customer
with nothing new is synced by its list task alone, against the same DAG as it was before (four
stage tasks per customer whatever the listing found: benchmarks/four_task_dag.py), for the
same customers in the same cluster, alternating.

Run: .venv/bin/python benchmarks/unchanged_run.py [--customers 50] [--workflows 3] [--rounds 2]
Writes the "Unchanged run" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime

import _common  # noqa: F401  (paths)
from _cluster import airflow_cpu_seconds, running_cluster, unpause

from devstack.airflow_api import SYNC_DAG, Api
from devstack.cluster import add_customer
from zuora_simulator.client import AdminClient

BEFORE = "zuora_sync_four_tasks"


def parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def measured_run(api: Api, info: dict, dag_id: str, customers: list[str], sim: AdminClient) -> dict:
    requests = sum(sum(sim.stats(c)["requests"].values()) for c in customers)
    cpu = airflow_cpu_seconds(info)
    run_id = api.trigger({"customer_ids": customers}, dag_id=dag_id)
    state = api.wait(run_id, timeout=1800, dag_id=dag_id)
    run = api.run(run_id, dag_id)
    time.sleep(3)  # let the last task processes be reaped and counted
    tis = api.task_instances(run_id, dag_id)
    return {
        "state": state,
        "cpu": airflow_cpu_seconds(info) - cpu,
        "wall": (parse(run["end_date"]) - parse(run["queued_at"])).total_seconds(),
        # a task a worker ran has its hostname; one the scheduler skipped has none
        "started": sum(1 for ti in tis if ti["hostname"]),
        "instances": len(tis),
        "zuora_calls": sum(sum(sim.stats(c)["requests"].values()) for c in customers) - requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--workflows", type=int, default=3, help="per customer")
    parser.add_argument("--rounds", type=int, default=2, help="before/after pairs measured")
    args = parser.parse_args()
    dags = _common.ROOT / "dags"
    results: dict[str, list[dict]] = {BEFORE: [], SYNC_DAG: []}
    with running_cluster(
        {
            "zuora_workflow_sync.py": dags / "zuora_workflow_sync.py",
            "four_task_dag.py": _common.ROOT / "benchmarks" / "four_task_dag.py",
        }
    ) as (info, api):
        unpause(api, SYNC_DAG, BEFORE)
        sim = AdminClient(info["simulator_url"])
        names = [f"c{n}" for n in range(args.customers)]
        for name in names:
            add_customer(api, sim, info["warehouse_uri"], name, workflows=args.workflows)
        first = api.trigger({"customer_ids": names})  # the first sync stores everything
        assert api.wait(first, timeout=1800) == "success"
        for _ in range(args.rounds):
            for dag_id in (BEFORE, SYNC_DAG):
                results[dag_id].append(measured_run(api, info, dag_id, names, sim))
                print(dag_id, results[dag_id][-1], flush=True)
    write(results, args)


def write(results: dict[str, list[dict]], args) -> None:
    def median(dag_id: str, key: str) -> float:
        return statistics.median(r[key] for r in results[dag_id])

    lines = [
        "| DAG | task instances | task processes started | Airflow CPU-s | wall s | Zuora calls | states |",
        "|---|---|---|---|---|---|---|",
    ]
    for dag_id, label in (
        (BEFORE, "before: four tasks per customer"),
        (SYNC_DAG, "after: unchanged customer = one task"),
    ):
        lines.append(
            f"| {label} | {median(dag_id, 'instances'):.0f} | {median(dag_id, 'started'):.0f} | "
            f"{median(dag_id, 'cpu'):.0f} | {median(dag_id, 'wall'):.0f} | "
            f"{median(dag_id, 'zuora_calls'):.0f} | "
            f"{', '.join(sorted({r['state'] for r in results[dag_id]}))} |"
        )
    ratio = {key: median(SYNC_DAG, key) / median(BEFORE, key) for key in ("started", "cpu", "wall")}
    body = "\n".join(
        [
            f"Machine: {_common.machine()}. Date: {_common.utc_date()}.",
            f"Command: `{_common.command('unchanged_run.py')}`; the local Celery cluster (api-server, "
            "scheduler, dag-processor, triggerer, 2 workers x 4 slots, Postgres, Redis) started by the "
            f"benchmark; {args.customers} customers of {args.workflows} workflows, synced once, then "
            f"{args.rounds} rounds of an unchanged run of each DAG, alternating (medians shown).",
            "",
            *lines,
            "",
            f"After / before: task processes **{ratio['started']:.2f}x**, Airflow CPU "
            f"**{ratio['cpu']:.2f}x**, wall **{ratio['wall']:.2f}x** (aim: processes and CPU at most "
            "a third). Airflow CPU-s: user + system CPU of every Airflow process (components, worker "
            "pool processes and the task processes they started) during the run.",
        ]
    )
    _common.write_section("Unchanged run", body)
    print(body)


if __name__ == "__main__":
    main()
