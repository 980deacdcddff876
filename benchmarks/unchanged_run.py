"""An unchanged daily run under the local Celery cluster: zuora_workflow_sync, where a customer
with nothing new is synced by its list task alone, against its floor, the same run with one
no-op task per customer (benchmarks/noop_one_task_dag.py), for the same customers in the same
cluster, alternating. Also how long each task's workload held its worker slot (the Celery
worker's "Workload finished" line), to show Airflow's wait after a task process exits.

Run: .venv/bin/python benchmarks/unchanged_run.py [--customers 50] [--workflows 3] [--rounds 2]
     [--setting AIRFLOW__SECTION__KEY=VALUE ...]   (cluster settings; the section's title says them)
Writes the "Unchanged run" section of RESULTS.md (with settings: its own section).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from datetime import datetime
from pathlib import Path

import _common  # noqa: F401  (paths)
from _cluster import component_cpu, running_cluster, unpause

from devstack.airflow_api import SYNC_DAG, Api
from devstack.cluster import add_customer
from zuora_simulator.client import AdminClient

FLOOR = "zuora_noop_one_task"
WORKLOAD = re.compile(r"Workload finished.*duration=([0-9.]+).*workload_id=([0-9a-f-]+)")


def parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def workload_seconds(info: dict) -> dict[str, float]:
    """TI id -> how long its workload held a worker slot (the workers' own log lines)."""
    found = {}
    for log in Path(info["logs"]).glob("worker*.log"):
        for match in WORKLOAD.finditer(log.read_text(errors="replace")):
            found[match.group(2)] = float(match.group(1))
    return found


def measured_run(api: Api, info: dict, dag_id: str, customers: list[str], sim: AdminClient) -> dict:
    requests = sum(sum(sim.stats(c)["requests"].values()) for c in customers)
    cpu = component_cpu(info["components"])
    run_id = api.trigger({"customer_ids": customers}, dag_id=dag_id)
    state = api.wait(run_id, timeout=1800, dag_id=dag_id)
    run = api.run(run_id, dag_id)
    time.sleep(8)  # let the last task processes be reaped and counted, their workloads logged
    tis = api.task_instances(run_id, dag_id)
    held = workload_seconds(info)
    slots = [held[ti["id"]] for ti in tis if ti["id"] in held]
    by_component = {k: v - cpu.get(k, 0.0) for k, v in component_cpu(info["components"]).items()}
    return {
        "state": state,
        "cpu": sum(by_component.values()),
        **{f"cpu_{k}": v for k, v in by_component.items()},
        "wall": (parse(run["end_date"]) - parse(run["queued_at"])).total_seconds(),
        # a task a worker ran has its hostname; one the scheduler skipped has none
        "started": sum(1 for ti in tis if ti["hostname"]),
        "instances": len(tis),
        "zuora_calls": sum(sum(sim.stats(c)["requests"].values()) for c in customers) - requests,
        "slot_s": sum(slots),
        "slot_median": statistics.median(slots) if slots else 0.0,
        "slot_over_4s": sum(1 for s in slots if s > 4) / max(len(slots), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--workflows", type=int, default=3, help="per customer")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs measured")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.setting)
    dags = _common.ROOT / "dags"
    results: dict[str, list[dict]] = {FLOOR: [], SYNC_DAG: []}
    with running_cluster(
        {
            "zuora_workflow_sync.py": dags / "zuora_workflow_sync.py",
            "noop_one_task_dag.py": _common.ROOT / "benchmarks" / "noop_one_task_dag.py",
        },
        settings,
    ) as (info, api):
        unpause(api, SYNC_DAG, FLOOR)
        sim = AdminClient(info["simulator_url"])
        names = [f"c{n}" for n in range(args.customers)]
        for name in names:
            add_customer(api, sim, info["warehouse_uri"], name, workflows=args.workflows)
        first = api.trigger({"customer_ids": names})  # the first sync stores everything
        assert api.wait(first, timeout=1800) == "success"
        for _ in range(args.rounds):
            for dag_id in (FLOOR, SYNC_DAG):
                results[dag_id].append(measured_run(api, info, dag_id, names, sim))
                print(dag_id, results[dag_id][-1], flush=True)
    write(results, args, settings)


def write(results: dict[str, list[dict]], args, settings: dict[str, str]) -> None:
    def median(dag_id: str, key: str) -> float:
        return statistics.median(r[key] for r in results[dag_id])

    lines = [
        "| DAG | task instances | task processes started | Airflow CPU-s | of it: scheduler / "
        "api-server / workers / dag-processor + triggerer | wall s | Zuora calls | worker slot-s "
        "(median per task) | tasks holding their slot > 4 s | states |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dag_id, label in (
        (FLOOR, "floor: one no-op task per customer"),
        (SYNC_DAG, "zuora_workflow_sync (unchanged customer = one task)"),
    ):
        lines.append(
            f"| {label} | {median(dag_id, 'instances'):.0f} | {median(dag_id, 'started'):.0f} | "
            f"{median(dag_id, 'cpu'):.0f} | {median(dag_id, 'cpu_scheduler'):.1f} / "
            f"{median(dag_id, 'cpu_api-server'):.1f} / {median(dag_id, 'cpu_workers'):.1f} / "
            f"{median(dag_id, 'cpu_dag-processor') + median(dag_id, 'cpu_triggerer'):.1f} | "
            f"{median(dag_id, 'wall'):.0f} | "
            f"{median(dag_id, 'zuora_calls'):.0f} | {median(dag_id, 'slot_s'):.0f} "
            f"({median(dag_id, 'slot_median'):.2f}) | {median(dag_id, 'slot_over_4s'):.0%} | "
            f"{', '.join(sorted({r['state'] for r in results[dag_id]}))} |"
        )
    ratio = {key: median(SYNC_DAG, key) / median(FLOOR, key) for key in ("cpu", "wall")}
    given = ", ".join(f"`{k}={v}`" for k, v in settings.items()) or "the cluster's own"
    body = "\n".join(
        [
            f"Machine: {_common.machine()}. Date: {_common.utc_date()}.",
            f"Command: `{_common.command('unchanged_run.py')}`; the local Celery cluster (api-server, "
            "scheduler, dag-processor, triggerer, 2 workers x 4 slots, Postgres, Redis) started by the "
            f"benchmark, settings: {given}; {args.customers} customers of {args.workflows} "
            f"workflows, synced once, then {args.rounds} rounds of an unchanged run of each DAG, "
            "alternating (medians shown).",
            "",
            *lines,
            "",
            f"Ours / floor: Airflow CPU **{ratio['cpu']:.2f}x**, wall **{ratio['wall']:.2f}x** (aim: "
            "at most 1.3x each). Airflow CPU-s: user + system CPU of every Airflow process "
            "(components, worker pool processes and the task processes they started) during the "
            "run. Worker slot-s: the sum over the run's tasks of the time each workload held its "
            'slot, from the workers\' "Workload finished" lines.',
        ]
    )
    title = "Unchanged run" + (f" ({', '.join(f'{k}={v}' for k, v in settings.items())})" if settings else "")
    _common.write_section(title, body)
    print(body)


if __name__ == "__main__":
    main()
