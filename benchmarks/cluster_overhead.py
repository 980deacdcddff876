"""Airflow cost per customer under the local Celery cluster (`make cluster`): wall time of a
zuora_workflow_sync run and CPU-seconds of every Airflow process (api-server, scheduler,
dag-processor, triggerer, both workers and the task processes they start), for 1, 10 and 50
small customers, beside the same DAG shape with no-op tasks (benchmarks/noop_shape_dag.py:
the floor Airflow itself imposes) run for the same customers in the same cluster.

Run: .venv/bin/python benchmarks/cluster_overhead.py [--sizes 1,10,50] [--workflows 3]
Starts its own cluster (python -m devstack.cluster --no-demo) with a DAG folder holding our
two DAG files and the no-op one, and writes the "Cluster overhead" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime

import _common  # noqa: F401  (paths)
from _cluster import airflow_cpu_seconds, running_cluster, unpause

from devstack.airflow_api import SYNC_DAG, Api
from devstack.cluster import add_customer
from zuora_simulator.client import AdminClient

NOOP_DAG = "zuora_noop_shape"


def parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def measured_run(api: Api, info: dict, dag_id: str, customers: list[str]) -> dict:
    cpu = airflow_cpu_seconds(info)
    run_id = api.trigger({"customer_ids": customers}, dag_id=dag_id)
    state = api.wait(run_id, timeout=1800, dag_id=dag_id)
    run = api.run(run_id, dag_id)
    wall = (parse(run["end_date"]) - parse(run["queued_at"])).total_seconds()
    time.sleep(3)  # let the last task processes be reaped and counted
    tis = api.task_instances(run_id, dag_id)
    phases = [
        task_phases(api, dag_id, run_id, ti)
        for ti in tis
        if ti["map_index"] >= 0 and ti["state"] == "success"
    ]
    if len(phases) != 4 * len(customers):  # the floor is only a floor if all its tasks ran
        raise SystemExit(
            f"{dag_id} run {run_id} ended {state}, not every stage task succeeded: "
            f"{[(ti['task_id'], ti['map_index'], ti['state']) for ti in tis]}"
        )
    return {
        "state": state,
        "wall": wall,
        "cpu": airflow_cpu_seconds(info) - cpu,
        "tasks": len(tis),
        "phases": {phase: statistics.median(p[phase] for p in phases) for phase in PHASES},
    }


# Where a stage task's time goes, from its queued, start and end times and what its body
# reported (when it started, how long it ran). The start time is set right after the worker
# forks the task process, so start -> code is the task process getting ready: the Task SDK's
# start-up, parsing the DAG file, and our stage's lazy imports.
PHASES = ("queued -> start", "start -> code", "code", "code -> end")


def task_phases(api: Api, dag_id: str, run_id: str, ti: dict) -> dict[str, float]:
    report = api.call(
        "GET",
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/xcomEntries/return_value",
        params={"map_index": ti["map_index"], "deserialize": True},
    )["value"]
    queued, start, end = (parse(ti[k]).timestamp() for k in ("queued_when", "start_date", "end_date"))
    code_end = report["started_at"] + report["duration_s"]
    return dict(
        zip(
            PHASES,
            (start - queued, report["started_at"] - start, report["duration_s"], end - code_end),
            strict=True,
        )
    )


IMPORTS = """
import sys, time
started = time.perf_counter(); import airflow.sdk; sdk = time.perf_counter() - started
started = time.perf_counter(); import zuora.sync; stages = time.perf_counter() - started
print(sdk, stages)
"""


def import_costs(samples: int = 5) -> tuple[float, float]:
    """Median seconds to import airflow.sdk, then zuora.sync (every stage), in fresh
    interpreters."""
    runs = [
        tuple(
            map(
                float,
                subprocess.run(
                    [sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True
                ).stdout.split()[-2:],
            )
        )
        for _ in range(samples)
    ]
    return tuple(statistics.median(r[i] for r in runs) for i in range(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50", help="customers per run, comma separated")
    parser.add_argument("--workflows", type=int, default=3, help="per customer")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    dags = _common.ROOT / "dags"
    rows = []
    with running_cluster(
        {
            "zuora_workflow_sync.py": dags / "zuora_workflow_sync.py",
            "zuora_sync_monitor.py": dags / "zuora_sync_monitor.py",
            "noop_shape_dag.py": _common.ROOT / "benchmarks" / "noop_shape_dag.py",
        }
    ) as (info, api):
        unpause(api, SYNC_DAG, NOOP_DAG)
        sim = AdminClient(info["simulator_url"])
        add_customer(api, sim, info["warehouse_uri"], "warmup", workflows=args.workflows)
        for dag_id in (NOOP_DAG, SYNC_DAG):  # pool processes and caches warm, not measured
            measured_run(api, info, dag_id, ["warmup"])
        for size in sizes:
            names = [f"s{size}c{n}" for n in range(size)]
            for name in names:
                add_customer(api, sim, info["warehouse_uri"], name, workflows=args.workflows)
            noop = measured_run(api, info, NOOP_DAG, names)
            ours = measured_run(api, info, SYNC_DAG, names)
            rows.append((size, ours, noop))
            print(size, ours, noop, flush=True)
    write(rows, args, import_costs())


def write(rows: list, args, imports: tuple[float, float]) -> None:
    lines = [
        "| customers | task instances | our run: wall s | Airflow CPU-s | no-op shape: wall s | "
        "Airflow CPU-s | ratio wall | ratio CPU | our run's state |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, ours, noop in rows:
        lines.append(
            f"| {size} | {ours['tasks']} | {ours['wall']:.0f} | {ours['cpu']:.0f} | "
            f"{noop['wall']:.0f} | {noop['cpu']:.0f} | **{ours['wall'] / noop['wall']:.2f}x** | "
            f"**{ours['cpu'] / noop['cpu']:.2f}x** | {ours['state']} |"
        )
    per_customer = [(o["cpu"] - n["cpu"]) / s for s, o, n in rows if s > 1]
    body = "\n".join(
        [
            f"Machine: {_common.machine()}. Date: {_common.utc_date()}.",
            f"Command: `{_common.command('cluster_overhead.py')}`; the local Celery cluster "
            "(api-server, scheduler, dag-processor, triggerer, 2 workers x 4 slots, Postgres, Redis) "
            f"started by the benchmark; {args.workflows} workflows per customer; each size runs the "
            "no-op shape first, then zuora_workflow_sync, for the same new customers (a first sync).",
            "",
            *lines,
            "",
            "Airflow CPU-s: user + system CPU of every Airflow process (components, their workers' "
            "pool processes, and every task process they started), measured around each run. "
            "The no-op shape is the same DAG with tasks that return at once: what Airflow costs "
            "for 4 task processes per customer whatever they do."
            + (
                f" Our code adds about {sum(per_customer) / len(per_customer):.1f} CPU-s per "
                "customer over the floor."
                if per_customer
                else ""
            ),
            "",
            "Where a stage task's time goes, median seconds over the mapped tasks of each run "
            "(start is set when the worker has forked the task process; start -> code is the task "
            "process getting ready: the Task SDK's start-up, parsing the DAG file, and for ours the "
            "stage's lazy imports; code -> end is returning the result and reporting success):",
            "",
            "| customers | "
            + " | ".join(f"ours: {p}" for p in PHASES)
            + " | "
            + " | ".join(f"no-op: {p}" for p in PHASES)
            + " |",
            "|---" * (1 + 2 * len(PHASES)) + "|",
            *(
                f"| {size} | "
                + " | ".join(f"{o['phases'][p]:.2f}" for p in PHASES)
                + " | "
                + " | ".join(f"{n['phases'][p]:.2f}" for p in PHASES)
                + " |"
                for size, o, n in rows
            ),
            "",
            f"Queued -> start includes waiting for a free worker slot or pool slot. Imports in a "
            f"fresh interpreter (median of 5): `airflow.sdk` {imports[0]:.2f} s (already loaded in "
            f"the worker the task process is forked from), then `zuora.sync` (every stage) "
            f'{imports[1]:.2f} s; the DAG file itself: see "DAG file import time".',
        ]
    )
    _common.write_section("Cluster overhead", body)
    print(body)


if __name__ == "__main__":
    main()
