"""The local Celery cluster (`python -m devstack.cluster`) for the benchmarks that measure
Airflow itself: started with a DAG folder of chosen files, its DAGs unpaused, and the CPU used
by every Airflow process it runs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import _common
import psutil

from devstack.airflow_api import SYNC_DAG, Api


@contextlib.contextmanager
def running_cluster(
    dag_files: dict[str, Path], settings: dict[str, str] | None = None
) -> Iterator[tuple[dict, Api]]:
    """A cluster whose DAG folder holds ``dag_files`` (name -> file), with ``settings`` (env
    variables, e.g. AIRFLOW__SECTION__KEY) over the cluster's own; yields its cluster.json and a
    REST API client, and stops it at the end."""
    home = Path(tempfile.mkdtemp(prefix="zws-bench-cluster-"))
    dags = home / "dags"
    dags.mkdir()
    for name, path in dag_files.items():
        (dags / name).symlink_to(path)
    log = open(home / "cluster.out", "wb")
    cluster = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.cluster",
            "--home",
            str(home),
            "--no-demo",
            "--dags-folder",
            str(dags),
        ],
        cwd=_common.ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        # not _common's Airflow settings: the cluster's own, its DAG folder
        env={**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}, **(settings or {})},
    )
    try:
        while not (home / "cluster.json").exists():
            if cluster.poll() is not None:
                raise SystemExit((home / "cluster.out").read_text()[-3000:])
            time.sleep(1)
        info = json.loads((home / "cluster.json").read_text())
        yield info, Api(info)
    finally:
        cluster.send_signal(signal.SIGTERM)
        cluster.wait(timeout=120)
        log.close()


def unpause(api: Api, *dag_ids: str, scheduled: tuple[str, ...] = (SYNC_DAG,)) -> None:
    """Unpause each DAG once the dag-processor has parsed it; wait for the first run of each
    ``scheduled`` one (unpausing a scheduled DAG starts a run; no customers yet)."""
    for dag_id in dag_ids:
        deadline = time.monotonic() + 180
        while True:
            try:
                api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
    for dag_id in (d for d in dag_ids if d in scheduled):
        deadline = time.monotonic() + 120
        while not (runs := api.call("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]):
            if time.monotonic() > deadline:
                raise SystemExit(f"the scheduler created no run of {dag_id} after unpausing it")
            time.sleep(1)
        for run in runs:
            api.wait(run["dag_run_id"], dag_id=dag_id)


def shape_dags(shapes: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """The DAG files that run zuora_workflow_sync in each of ``shapes`` in one cluster, and
    the dag_id of each: "auto" (the default) is the real DAG; a number N is the same file with
    $ZUORA_SYNC_CUSTOMERS_PER_TASK=N under its own dag_id (benchmarks/shape_dag.py)."""
    files, dag_ids = {}, {}
    for shape in shapes:
        if shape == "auto":
            files["zuora_workflow_sync.py"] = _common.ROOT / "dags" / "zuora_workflow_sync.py"
            dag_ids[shape] = SYNC_DAG
        else:
            dag_ids[shape] = f"{SYNC_DAG}_per_task_{int(shape)}"
            files[f"{dag_ids[shape]}.py"] = _common.ROOT / "benchmarks" / "shape_dag.py"
    return files, dag_ids


def shape_ran(tis: list[dict]) -> str:
    """Which shape a run of zuora_workflow_sync took, from its task instances: one group per
    customer, or its batch tasks with their sizes (from their grid labels)."""
    batches = [ti for ti in tis if ti["task_id"] == "sync_customers" and ti["map_index"] >= 0]
    if not batches:
        groups = sum(
            1 for ti in tis if ti["task_id"] == "customer_sync.list_workflows" and ti["map_index"] >= 0
        )
        return f"a group per customer ({groups})"
    sizes = sorted(
        (int(m.group(1)) if (m := re.search(r"\((\d+)\)$", ti["rendered_map_index"] or "")) else 1)
        for ti in batches
    )
    described = ", ".join(str(s) for s in reversed(sizes))
    return f"{len(batches)} batch{'es' if len(batches) > 1 else ''} ({described})"


def airflow_cpu_seconds(info: dict) -> float:
    """CPU used so far by every Airflow process of the cluster (``component_cpu``, summed)."""
    return sum(component_cpu(info["components"]).values())


def component_cpu(components: dict[str, int]) -> dict[str, float]:
    """CPU used so far by each Airflow component of cluster.json (api-server, scheduler,
    dag-processor, triggerer, the Celery workers summed as "workers") with its live
    descendants and the children they reaped, so every task process is counted. By pid, not
    by command line: a Celery worker renames itself ``[celeryd: ...]``."""
    out: dict[str, float] = {}
    for name, pid in components.items():
        group = "workers" if name.startswith("worker") else name
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in processes:
            try:
                t = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            out[group] = out.get(group, 0.0) + t.user + t.system + t.children_user + t.children_system
    return out
