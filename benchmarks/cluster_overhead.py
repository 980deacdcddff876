"""Airflow cost per customer under the local Celery cluster (`make cluster`): wall time of a
zuora_workflow_sync run and CPU-seconds of every Airflow process (api-server, scheduler,
dag-processor, triggerer, both workers and the task processes they start), for a first sync of
1, 10 and 50 small customers, in its default shape ($ZUORA_SYNC_CUSTOMERS_PER_TASK=auto) and
in each forced one (1: a group per customer; 25: batches of 25), beside its floor: one mapped
group of four no-op tasks per customer (benchmarks/noop_shape_dag.py: what Airflow itself
costs for the group shape), run for the same number of customers in the same cluster.

Run: .venv/bin/python benchmarks/cluster_overhead.py [--sizes 1,10,50] [--workflows 3]
     [--shapes auto,1,25]
Starts its own cluster (python -m devstack.cluster --no-demo) with a DAG folder holding our
DAG files (each forced shape: the sync DAG under its own dag_id, benchmarks/shape_dag.py) and
the no-op one, and writes the "Cluster overhead" section of RESULTS.md. Each shape's run is a
first sync of customers of its own.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime

import _common  # noqa: F401  (paths)
from _cluster import airflow_cpu_seconds, running_cluster, shape_dags, shape_ran, unpause

from devstack.airflow_api import Api
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
    # the stage tasks of one group per customer (none in batches: a batch task's report is counts)
    stages = [
        ti
        for ti in tis
        if ti["map_index"] >= 0 and ti["state"] == "success" and ti["task_id"] != "sync_customers"
    ]
    if dag_id == NOOP_DAG and len(stages) != 4 * len(customers):  # only a floor if all its tasks ran
        raise SystemExit(
            f"{dag_id} run {run_id} ended {state}, not every stage task succeeded: "
            f"{[(ti['task_id'], ti['map_index'], ti['state']) for ti in tis]}"
        )
    phases = [task_phases(api, dag_id, run_id, ti) for ti in stages]
    return {
        "state": state,
        "wall": wall,
        "cpu": airflow_cpu_seconds(info) - cpu,
        "tasks": len(tis),
        "processes": sum(1 for ti in tis if ti["hostname"]),
        "shape": "a group of four no-op tasks per customer" if dag_id == NOOP_DAG else shape_ran(tis),
        "phases": {phase: statistics.median(p[phase] for p in phases) for phase in PHASES}
        if phases
        else None,
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
    parser.add_argument(
        "--shapes", default="auto,1,25", help="$ZUORA_SYNC_CUSTOMERS_PER_TASK of each DAG run: auto or N"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    shapes = args.shapes.split(",")
    files, dag_ids = shape_dags(shapes)
    dags = _common.ROOT / "dags"
    rows = []
    with running_cluster(
        {
            **files,
            "zuora_sync_monitor.py": dags / "zuora_sync_monitor.py",
            "noop_shape_dag.py": _common.ROOT / "benchmarks" / "noop_shape_dag.py",
        }
    ) as (info, api):
        unpause(api, *dag_ids.values(), NOOP_DAG, scheduled=tuple(dag_ids.values()))
        sim = AdminClient(info["simulator_url"])
        add_customer(api, sim, info["warehouse_uri"], "warmup", workflows=args.workflows)
        for dag_id in (NOOP_DAG, *dag_ids.values()):  # pool processes and caches warm, not measured
            measured_run(api, info, dag_id, ["warmup"])
        for size in sizes:
            noop_names = [f"s{size}noop{n}" for n in range(size)]  # the floor syncs nothing
            noop = measured_run(api, info, NOOP_DAG, noop_names)
            for shape in shapes:
                names = [f"s{size}x{shape}c{n}" for n in range(size)]
                for name in names:
                    add_customer(api, sim, info["warehouse_uri"], name, workflows=args.workflows)
                ours = measured_run(api, info, dag_ids[shape], names)
                rows.append((size, shape, ours, noop))
                print(size, shape, ours, noop, flush=True)
    write(rows, args, import_costs())


def write(rows: list, args, imports: tuple[float, float]) -> None:
    def setting(shape: str) -> str:
        return "`auto` (the default)" if shape == "auto" else f"`{shape}`"

    lines = [
        "| customers | `ZUORA_SYNC_CUSTOMERS_PER_TASK` | shape that ran | task instances | task processes "
        "| our run: wall s | Airflow CPU-s | no-op floor: wall s | Airflow CPU-s | ratio wall | ratio CPU "
        "| our run's state |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, shape, ours, noop in rows:
        lines.append(
            f"| {size} | {setting(shape)} | {ours['shape']} | {ours['tasks']} | {ours['processes']} | "
            f"{ours['wall']:.0f} | {ours['cpu']:.0f} | {noop['wall']:.0f} | {noop['cpu']:.0f} | "
            f"**{ours['wall'] / noop['wall']:.2f}x** | **{ours['cpu'] / noop['cpu']:.2f}x** | {ours['state']} |"
        )
    per_customer = {
        shape: [(o["cpu"] - n["cpu"]) / s for s, sh, o, n in rows if s > 1 and sh == shape]
        for shape in dict.fromkeys(sh for _, sh, _, _ in rows)
    }
    added = "; ".join(
        f"{setting(shape)} {sum(v) / len(v):+.1f} CPU-s" for shape, v in per_customer.items() if v
    )
    grouped = [(size, shape, o, n) for size, shape, o, n in rows if o["phases"]]
    body = "\n".join(
        [
            f"Machine: {_common.machine()}. Date: {_common.utc_date()}.",
            f"Command: `{_common.command('cluster_overhead.py')}`; the local Celery cluster "
            "(api-server, scheduler, dag-processor, triggerer, 2 workers x 4 slots, Postgres, Redis) "
            f"started by the benchmark; {args.workflows} workflows per customer; each size runs the "
            "no-op floor first, then zuora_workflow_sync in each shape for new customers of its own (a "
            "first sync); a forced shape is the same DAG file under its own dag_id (`shape_dag.py`). "
            "Aim at 50 customers: the default at or below 1.0x the floor's wall and CPU.",
            "",
            *lines,
            "",
            "Airflow CPU-s: user + system CPU of every Airflow process (components, their workers' "
            "pool processes, and every task process they started), measured around each run. "
            "The no-op floor is the group shape with tasks that return at once: what Airflow costs "
            "for 4 task processes per customer whatever they do."
            + (
                f" Each customer adds over the floor, on average over the sizes above 1: {added}."
                if added
                else ""
            ),
            "",
            "Where a stage task's time goes in the runs of one group per customer, median seconds over "
            "the mapped tasks of each run (start is set when the worker has forked the task process; "
            "start -> code is the task process getting ready: the Task SDK's start-up, parsing the DAG "
            "file, and for ours the stage's lazy imports; code -> end is returning the result and "
            "reporting success):",
            "",
            "| customers | `ZUORA_SYNC_CUSTOMERS_PER_TASK` | "
            + " | ".join(f"ours: {p}" for p in PHASES)
            + " | "
            + " | ".join(f"no-op: {p}" for p in PHASES)
            + " |",
            "|---" * (2 + 2 * len(PHASES)) + "|",
            *(
                f"| {size} | {setting(shape)} | "
                + " | ".join(f"{o['phases'][p]:.2f}" for p in PHASES)
                + " | "
                + " | ".join(f"{n['phases'][p]:.2f}" for p in PHASES)
                + " |"
                for size, shape, o, n in grouped
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
