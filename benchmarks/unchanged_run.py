"""An unchanged daily run under the local Celery cluster: zuora_workflow_sync in its default
shape ($ZUORA_SYNC_CUSTOMERS_PER_TASK=auto) and in each forced one (1: a group per customer,
where a customer with nothing new is synced by its list task alone; 25: batches of 25), against
its floor, the same run with one no-op task per customer (benchmarks/noop_one_task_dag.py),
for the same customers in the same cluster, alternating. Also how long each task's workload
held its worker slot (the Celery worker's "Workload finished" line), to show Airflow's wait
after a task process exits.

Run: .venv/bin/python benchmarks/unchanged_run.py [--customers 50] [--workflows 3] [--rounds 2]
     [--shapes auto,1,25] [--setting AIRFLOW__SECTION__KEY=VALUE ...]
     (cluster settings; the section's title says them)
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
from _cluster import component_cpu, running_cluster, shape_dags, shape_ran, unpause

from devstack.airflow_api import Api
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
        "shape": "one no-op task per customer" if dag_id == FLOOR else shape_ran(tis),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--workflows", type=int, default=3, help="per customer")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of runs measured")
    parser.add_argument(
        "--shapes", default="auto,1,25", help="$ZUORA_SYNC_CUSTOMERS_PER_TASK of each DAG run: auto or N"
    )
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.setting)
    shapes = args.shapes.split(",")
    files, dag_ids = shape_dags(shapes)
    results: dict[str, list[dict]] = {FLOOR: [], **{dag_ids[s]: [] for s in shapes}}
    with running_cluster(
        {**files, "noop_one_task_dag.py": _common.ROOT / "benchmarks" / "noop_one_task_dag.py"}, settings
    ) as (info, api):
        unpause(api, *dag_ids.values(), FLOOR, scheduled=tuple(dag_ids.values()))
        sim = AdminClient(info["simulator_url"])
        names = [f"c{n}" for n in range(args.customers)]
        for name in names:
            add_customer(api, sim, info["warehouse_uri"], name, workflows=args.workflows)
        first = api.trigger({"customer_ids": names}, dag_id=dag_ids[shapes[0]])  # stores everything
        assert api.wait(first, timeout=1800, dag_id=dag_ids[shapes[0]]) == "success"
        for _ in range(args.rounds):
            for dag_id in results:
                results[dag_id].append(measured_run(api, info, dag_id, names, sim))
                print(dag_id, results[dag_id][-1], flush=True)
    write(results, args, settings, {dag_ids[s]: s for s in shapes})


def write(results: dict[str, list[dict]], args, settings: dict[str, str], shapes: dict[str, str]) -> None:
    def median(dag_id: str, key: str) -> float:
        return statistics.median(r[key] for r in results[dag_id])

    def label(dag_id: str) -> str:
        if dag_id == FLOOR:
            return "floor: one no-op task per customer"
        ran = " / ".join(sorted({r["shape"] for r in results[dag_id]}))
        shape = shapes[dag_id]
        setting = "the default, `auto`" if shape == "auto" else f"`ZUORA_SYNC_CUSTOMERS_PER_TASK={shape}`"
        return f"zuora_workflow_sync, {setting}: ran {ran}"

    lines = [
        "| DAG | task instances | task processes started | Airflow CPU-s | of it: scheduler / "
        "api-server / workers / dag-processor + triggerer | wall s | Zuora calls | worker slot-s "
        "(median per task) | tasks holding their slot > 4 s | ours / floor: Airflow CPU, wall | states |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dag_id in results:
        ratio = (
            ""
            if dag_id == FLOOR
            else f"**{median(dag_id, 'cpu') / median(FLOOR, 'cpu'):.2f}x**, "
            f"{median(dag_id, 'wall') / median(FLOOR, 'wall'):.2f}x"
        )
        lines.append(
            f"| {label(dag_id)} | {median(dag_id, 'instances'):.0f} | {median(dag_id, 'started'):.0f} | "
            f"{median(dag_id, 'cpu'):.1f} | {median(dag_id, 'cpu_scheduler'):.1f} / "
            f"{median(dag_id, 'cpu_api-server'):.1f} / {median(dag_id, 'cpu_workers'):.1f} / "
            f"{median(dag_id, 'cpu_dag-processor') + median(dag_id, 'cpu_triggerer'):.1f} | "
            f"{median(dag_id, 'wall'):.0f} | "
            f"{median(dag_id, 'zuora_calls'):.0f} | {median(dag_id, 'slot_s'):.0f} "
            f"({median(dag_id, 'slot_median'):.2f}) | {median(dag_id, 'slot_over_4s'):.0%} | {ratio} | "
            f"{', '.join(sorted({r['state'] for r in results[dag_id]}))} |"
        )
    default = next((d for d, s in shapes.items() if s == "auto"), None)
    given = ", ".join(f"`{k}={v}`" for k, v in settings.items()) or "the cluster's own"
    aim = (
        f"The default (`auto`) / floor: Airflow CPU **{median(default, 'cpu') / median(FLOOR, 'cpu'):.2f}x** "
        "(aim: at most 0.5x). "
        if default
        else ""
    )
    body = "\n".join(
        [
            f"Machine: {_common.machine()}. Date: {_common.utc_date()}.",
            f"Command: `{_common.command('unchanged_run.py')}`; the local Celery cluster (api-server, "
            "scheduler, dag-processor, triggerer, 2 workers x 4 slots, Postgres, Redis) started by the "
            f"benchmark, settings: {given}; {args.customers} customers of {args.workflows} "
            "workflows, synced once, then "
            f"{args.rounds} round{'s' if args.rounds > 1 else ''} of an unchanged run of each DAG, one "
            "after the other (medians shown): the floor, and zuora_workflow_sync with $ZUORA_SYNC_CUSTOMERS_PER_TASK "
            f"{', '.join(shapes.values())} (a number: the same DAG file under its own dag_id, "
            "`shape_dag.py`); each row says the shape its runs took.",
            "",
            *lines,
            "",
            f"{aim}Airflow CPU-s: user + system CPU of every Airflow process "
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
