"""The daily unchanged run of a large fleet under the local Celery cluster, one group per customer
(the DAG as it is, before batching) against batches (after), in one cluster: issue 22's proof.

Run: .venv/bin/python benchmarks/fleet_run.py [--customers 1000] [--workflows 3] [--batch 50]
     [--timeout-min 15] [--order after-secrets,after,after,before] [--setup-processes 3]
     [--keep-tokens --token-ttl 120] [--setting NAME=VALUE ...]
Writes the "Fleet run" section of RESULTS.md (another --customers or --order: in its title).
Measured 2026-12-06 with ``--keep-tokens --token-ttl 120`` (each run reads back the customers'
expired token Variables and replaces them, as a daily run does).

What it does:
* starts the cluster (api-server, scheduler, dag-processor, triggerer, 2 Celery workers x 4
  slots, Postgres, Redis, the simulator) with the concurrency settings docs/operating.md gives
  for large fleets (``SETTINGS``) and Airflow's StatsD metrics sent to a UDP receiver here;
  its DAG folder holds the real DAG (``zuora_workflow_sync``, one mapped group of four tasks
  per customer) and the same file in batches of ``--batch`` under the dag_id
  ``zuora_workflow_sync_batched`` (benchmarks/fleet_batched_dag.py);
* registers N simulator tenants of ``--workflows`` workflows, their Airflow connections with one
  ``airflow connections import`` (in the metadata database, where the workers' task processes
  read them; one bulk REST call, ``PATCH /api/v2/connections``, did not answer within a minute
  for 1,000) and their ``zuora.customers`` rows;
* brings the warehouse to "already synced" without Airflow: ``sync.run_customer`` for each
  customer, in ``--setup-processes`` processes;
* then, for each run of ``--order``, the daily run through the REST API (no ``customer_ids``:
  every enabled customer; without ``--keep-tokens`` the OAuth token Variables deleted first; for an
  ``after-secrets`` run the connections in the file of the workers' secrets backend,
  fleet_secrets.py, else that file empty): wall (queued -> end), Airflow CPU-s (``_cluster.airflow_cpu_seconds``) and per
  component, Postgres and simulator CPU, task instances and processes started, worker slot
  time, Zuora calls, metadata commits, every customer's ``zuora.sync_runs`` row of the run
  (asserted present and 'success'), and the scheduler's own timers from StatsD:
  ``scheduler.scheduler_loop_duration`` (one scheduler loop) and ``dagrun.dependency-check``
  tagged with the run's dag_id (its decision pass over the run). A run not finished within
  ``--timeout-min`` is recorded as such (how many customers it synced by then), then marked
  failed through the REST API so the next one starts on an idle cluster.
* the prediction of ``scale_model.predict`` for each shape beside the measurement.

Raw results are kept in $TMPDIR/zws-fleet-run.json; ``--rewrite`` writes the section again
from them (after a change of the model or of the text) without running anything.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import socket
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import _common
import psycopg
from _cluster import airflow_cpu_seconds, component_cpu, running_cluster, unpause
from scale_model import BATCHED, group_run_progress, predict, tree_cpu, units
from unchanged_run import workload_seconds

from devstack.airflow_api import SYNC_DAG, Api
from tests.metrics.receivers import StatsdReceiver
from zuora.api.token_cache import KEY_PREFIX
from zuora.cli import save_airflow_connections
from zuora_simulator.client import AdminClient

# the workers' secrets backend on a fresh API server; then the connections through the API
# server, its first day and the next; then one group per customer on the warm API server
ORDER = "after-secrets,after,after,before"
CACHE = Path(tempfile.gettempdir()) / "zws-fleet-run.json"
PARTIAL = CACHE.with_suffix(".runs.json")  # the runs so far, while it lasts
WORKER_SLOTS = 8  # 2 Celery workers x AIRFLOW__CELERY__WORKER_CONCURRENCY 4 (airflow.env)
# docs/operating.md, "Large fleets: batches" and SCALE.md: no cap on the TIs a scheduler loop
# queues, Airflow's concurrency at the worker slots (parallelism never above them, or queued
# TIs wait in the broker and hit task_queued_timeout), the export limit (batch tasks at once
# per run) at the pool's size; the pool zuora_api keeps the cluster's 8 slots (POOL_SLOTS).
SETTINGS = {
    "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "0",
    "AIRFLOW__CORE__PARALLELISM": str(WORKER_SLOTS),
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(WORKER_SLOTS),
    "ZUORA_SYNC_MAX_CONCURRENT_EXPORTS": str(WORKER_SLOTS),
    # the real DAG as "before" (one group per customer); its default, auto, would batch them
    "ZUORA_SYNC_CUSTOMERS_PER_TASK": "1",
}
LOOP = "scheduler.scheduler_loop_duration"
DECISION = "dagrun.dependency-check"
CRITICAL = "scheduler.critical_section_duration"


class TimedStatsd(StatsdReceiver):
    """The tests' StatsD receiver, each line kept with when it arrived (monotonic seconds)."""

    def __init__(self) -> None:
        self.arrived: list[float] = []
        super().__init__()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 2**20)

    def _keep(self, lines: list[str]) -> None:
        self.lines += lines
        self.arrived += [time.monotonic()] * len(lines)


class FreezeWatch(threading.Thread):
    """Notices this process being stopped (SIGSTOP, as the machine's other user may stop the
    benchmark's process tree while it runs): a 0.5 s sleep that took over 5 s. Keeps the
    gaps, (start, end) in monotonic seconds."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.gaps: list[tuple[float, float]] = []

    def run(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            if now - last > 5:
                self.gaps.append((last, now))
                print(
                    f"{datetime.now():%H:%M:%S} this process was stopped for {now - last:.0f} s", flush=True
                )
            last = now

    def frozen(self, start: float, end: float) -> float:
        """Seconds of [start, end] spent stopped."""
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in self.gaps)


def parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def timers(lines: list[str], prefix: str = "airflow.") -> list[tuple[str, dict, float]]:
    """The StatsD timers (``name[,k=v...]:ms|ms``) among ``lines``: (name, tags, ms)."""
    out = []
    for line in lines:
        stat, _, rest = line.partition(":")
        value, _, kind = rest.partition("|")
        if kind != "ms":
            continue
        name, *tags = stat.split(",")
        try:
            out.append((name.removeprefix(prefix), dict(t.split("=", 1) for t in tags), float(value)))
        except ValueError:
            continue
    return out


def timer_stats(values_ms: list[float]) -> dict:
    seconds = [v / 1000 for v in values_ms]
    return {
        "count": len(seconds),
        "sum_s": sum(seconds),
        "mean_s": statistics.fmean(seconds) if seconds else 0.0,
        "p50_s": percentile(seconds, 0.50),
        "p95_s": percentile(seconds, 0.95),
        "max_s": max(seconds, default=0.0),
        "over_2s": sum(1 for s in seconds if s > 2),
    }


# --- setup --------------------------------------------------------------------------------------


def register(
    info: dict, api: Api, sim: AdminClient, names: list[str], workflows: int, token_ttl: int | None = None
) -> dict:
    """Simulator tenants, their connections (one ``airflow connections import``), their customer
    rows; returns the connection definitions by customer (for the in-process first sync and the
    workers' secrets file)."""
    from zuora import warehouse
    from zuora.api.credentials import airflow_connection

    definitions = {}
    for n, name in enumerate(names):
        tenant = sim.add_tenant(
            name, workflows=workflows, seed=n, **({"token_ttl": token_ttl} if token_ttl else {})
        )
        definitions[name] = airflow_connection(
            tenant["base_url"],
            tenant["client_id"],
            tenant["client_secret"],
            allow_insecure_http=True,
            environment="sandbox",
        )
    store_connections({f"zuora_{name}": d for name, d in definitions.items()}, info)
    stored = api.call("GET", "/connections", params={"limit": 1})["total_entries"]
    if stored < len(names):
        raise SystemExit(f"the REST API shows {stored} connections, not the {len(names)} imported")
    with psycopg.connect(info["warehouse_uri"]) as conn:
        for name in names:
            warehouse.upsert_customer(
                conn, customer_id=name, name=name, zuora_conn_id=f"zuora_{name}", environment="sandbox"
            )
    return definitions


def store_connections(definitions: dict[str, dict], info: dict) -> None:
    """The connections in the cluster's metadata database, where the task processes read them
    (through the Execution API), with one ``airflow connections import`` run as the cluster's
    components are (its database and Fernet key), as ``zuora.cli add-customers`` stores them.
    (One bulk REST call, ``PATCH /api/v2/connections``, did not answer within 60 s for 1,000.)"""

    home = Path(info["airflow_home"]).parent
    keys = json.loads((home / "keys.json").read_text())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": info["airflow_home"],
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://"
        + info["warehouse_uri"].split("://", 1)[1].rsplit("/", 1)[0]
        + "/airflow",
        "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    save_airflow_connections(definitions, env)


def _first_sync(chunk: list[str]) -> list[str]:
    """In a forked process: each customer's first sync; returns the failures."""
    from zuora import sync

    _common.quiet_logs()
    failed = []
    for name in chunk:
        try:
            sync.run_customer(
                {"customer_id": name, "zuora_conn_id": f"zuora_{name}", "environment": "sandbox"}, "setup"
            )
        except Exception as error:  # noqa: BLE001  (reported by the parent)
            failed.append(f"{name}: {type(error).__name__}: {error}")
    return failed


def first_sync(names: list[str], definitions: dict, info: dict, processes: int) -> float:
    """Every customer synced once in-process (the connections as AIRFLOW_CONN_* here, the
    cluster's export key, so its runs find nothing to do); returns the seconds it took."""
    home = Path(info["airflow_home"]).parent
    os.environ["ZUORA_EXPORT_ENCRYPTION_KEY"] = json.loads((home / "keys.json").read_text())["export_key"]
    os.environ["AIRFLOW_CONN_ZUORA_WAREHOUSE"] = info["warehouse_uri"]
    for name, definition in definitions.items():
        os.environ[f"AIRFLOW_CONN_ZUORA_{name.upper()}"] = json.dumps(definition)
    clock = time.monotonic()
    chunks = [names[i::processes] for i in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        failed = [f for part in pool.map(_first_sync, chunks) for f in part]
    if failed:
        raise SystemExit(f"{len(failed)} first syncs failed, e.g. {failed[:3]}")
    with psycopg.connect(info["warehouse_uri"]) as conn:
        done = conn.execute(
            "SELECT count(*) FROM zuora.sync_runs WHERE run_id = 'setup' AND status = 'success'"
        ).fetchone()[0]
    if done != len(names):
        raise SystemExit(f"{done} of {len(names)} customers synced by the setup")
    return time.monotonic() - clock


# --- one measured run ---------------------------------------------------------------------------


class Meters:
    """CPU of the Airflow components, Postgres and the simulator; Zuora calls; metadata commits."""

    def __init__(self, info: dict, sim: AdminClient):
        self.info, self.sim = info, sim
        self.meta_uri = info["warehouse_uri"].rsplit("/", 1)[0] + "/airflow"
        import psutil

        with psycopg.connect(info["warehouse_uri"]) as conn:  # its backend's parent, while it lives
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            self.postmaster = psutil.Process(backend).parent().pid
        self.simulator = next(
            p.pid
            for p in psutil.Process(info["pid"]).children()
            if "zuora_simulator" in " ".join(p.cmdline())
        )

    def read(self) -> dict:
        with psycopg.connect(self.meta_uri, autocommit=True) as conn:
            commits, rows = conn.execute(
                "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
                "WHERE datname = current_database()"
            ).fetchone()
        return {
            "airflow": airflow_cpu_seconds(self.info),
            "components": component_cpu(self.info["components"]),
            "postgres": tree_cpu(self.postmaster),
            "simulator": tree_cpu(self.simulator),
            "zuora_calls": sum(self.sim.stats()["total"]["requests"].values()),
            "commits": commits,
            "rows_written": rows,
        }

    @staticmethod
    def delta(after: dict, before: dict) -> dict:
        out = {k: after[k] - before[k] for k in after if k != "components"}
        out["components"] = {k: v - before["components"].get(k, 0.0) for k, v in after["components"].items()}
        return out


def forget_tokens(meta_uri: str) -> int:
    """Delete the cached OAuth tokens (Airflow Variables): a daily run finds them expired."""
    with psycopg.connect(meta_uri, autocommit=True) as conn:
        return conn.execute("DELETE FROM variable WHERE key LIKE %s", (KEY_PREFIX + "%",)).rowcount


def sync_rows(warehouse_uri: str, run_id: str) -> list[tuple]:
    with psycopg.connect(warehouse_uri) as conn:
        return conn.execute(
            "SELECT customer_id, status, task_id, map_index FROM zuora.sync_runs WHERE run_id = %s "
            "ORDER BY customer_id",
            (run_id,),
        ).fetchall()


def run_state(meta_uri: str, dag_id: str, run_id: str) -> str:
    """The run's state from the metadata database: the REST API's GET of a run loads every task
    instance of it (its ``dag_versions``), 0.5-0.8 s of the API server's time for a run of 4,003
    TIs, which polling every 3 s would add to what is measured."""
    with psycopg.connect(meta_uri, autocommit=True) as conn:
        return conn.execute(
            "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, run_id)
        ).fetchone()[0]


def stop_run(api: Api, dag_id: str, run_id: str) -> None:
    """Mark a run failed (what the UI's "mark failed" does) and wait until no task of it runs.
    The PATCH can fail while the scheduler's pass over the run holds its row (a 500 after a lock
    wait, seen at 4,003 TIs): tried again for a few minutes, then left running."""
    for _attempt in range(6):
        try:
            api.call("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})
            break
        except RuntimeError as error:
            print(f"{datetime.now():%H:%M:%S} marking it failed: {str(error)[:120]}", flush=True)
            time.sleep(30)
    else:
        return
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        busy = [
            ti
            for ti in api.task_instances(run_id, dag_id)
            if ti["state"] in ("running", "queued", "scheduled")
        ]
        if not busy:
            return
        time.sleep(5)


def measured_run(
    api: Api,
    info: dict,
    meters: Meters,
    receiver: TimedStatsd,
    watch: FreezeWatch,
    dag_id: str,
    names: list[str],
    per_task: int,
    timeout_s: float,
    keep_tokens: bool = False,
) -> dict:
    forgotten = 0 if keep_tokens else forget_tokens(meters.meta_uri)
    time.sleep(2)
    before, since = meters.read(), len(receiver.lines)
    clock = time.monotonic()
    run_id = api.trigger({}, dag_id=dag_id)  # the daily run: every enabled customer
    print(f"{datetime.now():%H:%M:%S} {dag_id}: run {run_id} triggered", flush=True)
    progress: list[tuple[float, int]] = []
    state = "running"
    while time.monotonic() - clock - watch.frozen(clock, time.monotonic()) < timeout_s:
        state = run_state(meters.meta_uri, dag_id, run_id)
        if state in ("success", "failed"):
            break
        if not progress or time.monotonic() - clock - progress[-1][0] >= 60:
            done = sum(1 for row in sync_rows(info["warehouse_uri"], run_id) if row[1] == "success")
            progress.append((time.monotonic() - clock, done))
            print(f"{datetime.now():%H:%M:%S}   {progress[-1][0]:.0f} s: {done} customers synced", flush=True)
        time.sleep(3)
    finished = state in ("success", "failed")
    run = api.run(run_id, dag_id)
    ended = time.monotonic()
    frozen = watch.frozen(clock, ended)  # the cluster was stopped with this process: not run time
    if finished:
        wall = (parse(run["end_date"]) - parse(run["queued_at"])).total_seconds() - frozen
    else:
        wall = ended - clock - frozen
    until = len(receiver.lines)
    time.sleep(8)  # the last task processes reaped and counted, their workloads logged
    after = meters.read()
    rows = sync_rows(info["warehouse_uri"], run_id)
    if not finished:
        print(
            f"{datetime.now():%H:%M:%S} {dag_id}: not finished in {timeout_s / 60:.0f} min; marking it failed"
        )
        stop_run(api, dag_id, run_id)
    tis = api.task_instances(run_id, dag_id)
    with psycopg.connect(meters.meta_uri) as conn:
        xcom_rows = conn.execute(
            "SELECT count(*) FROM xcom WHERE dag_id = %s AND run_id = %s", (dag_id, run_id)
        ).fetchone()[0]
    held = workload_seconds(info)
    slots = [held[ti["id"]] for ti in tis if ti["id"] in held]
    # a timer that ended at t after d ms spanned [t - d, t]: one that spanned a stop is left out
    samples: list[tuple[str, dict, float, float]] = []
    for line, at in zip(receiver.lines[since:until], receiver.arrived[since:until], strict=True):
        for name, tags, value in timers([line]):
            samples.append((name, tags, value, at))
    relevant = [s_ for s_ in samples if s_[0] in (LOOP, DECISION, CRITICAL)]
    spanned = [s_ for s_ in relevant if watch.frozen(s_[3] - s_[2] / 1000 - 1, s_[3]) > 0]
    kept = [s_ for s_ in relevant if watch.frozen(s_[3] - s_[2] / 1000 - 1, s_[3]) == 0]
    loops = [value for name, tags, value, at in kept if name == LOOP]
    decisions = [value for name, tags, value, at in kept if name == DECISION and tags.get("dag_id") == dag_id]
    critical = [value for name, tags, value, at in kept if name == CRITICAL]
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row[1]] = by_status.get(row[1], 0) + 1
    order = {name: i for i, name in enumerate(sorted(names))}
    # the shape the task processes ran: a group per customer leaves task_id empty; a batch task
    # records sync_customers and its map index, customer i of the sorted fleet in batch i // N
    shape_ok = all(
        (row[2] is None)
        if per_task == 1
        else (row[2] == "sync_customers" and row[3] == order[row[0]] // per_task)
        for row in rows
    )
    measured = Meters.delta(after, before)
    result = {
        "dag_id": dag_id,
        "customers_per_task": per_task,
        "run_id": run_id,
        "state": state if finished else f"not finished in {timeout_s / 60:.0f} min",
        "finished": finished,
        "wall_s": wall,
        "tokens_forgotten": forgotten,
        "airflow_cpu_s": measured["airflow"],
        "cpu_by_component_s": measured["components"],
        "postgres_cpu_s": measured["postgres"],
        "simulator_cpu_s": measured["simulator"],
        "zuora_calls": measured["zuora_calls"],
        "metadata_commits": measured["commits"],
        "metadata_rows_written": measured["rows_written"],
        "xcom_rows": xcom_rows,
        "task_instances": len(tis),
        "ti_states": {s: sum(1 for ti in tis if ti["state"] == s) for s in {ti["state"] for ti in tis}},
        # a task a worker ran has its hostname; one the scheduler skipped has none
        "task_processes": sum(1 for ti in tis if ti["hostname"]),
        "slot_s": sum(slots),
        "sync_rows": len(rows),
        "sync_rows_by_status": by_status,
        "every_customer_success": by_status.get("success", 0) == len(names) and len(rows) == len(names),
        "shape_as_parsed": shape_ok,
        "progress": progress,
        "frozen_s": frozen,
        "timers_left_out": len(spanned),
        "loop_ms": loops,
        "decision_ms": decisions,
        "loops": timer_stats(loops),
        "decision_pass": timer_stats(decisions),
        "critical_section": timer_stats(critical),
    }
    print(
        json.dumps({k: v for k, v in result.items() if k not in ("progress", "loop_ms", "decision_ms")}),
        flush=True,
    )
    return result


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--workflows", type=int, default=3, help="per customer")
    parser.add_argument("--batch", type=int, default=50, help="customers per task after batching")
    parser.add_argument("--timeout-min", type=float, default=15, help="per run")
    parser.add_argument(
        "--order",
        default=ORDER,
        help="the runs, in order: before (a group per customer), after (batches), after-secrets "
        "(batches, the connections from the workers' secrets backend)",
    )
    parser.add_argument("--setup-processes", type=int, default=3)
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--keep-tokens",
        action="store_true",
        help="keep the cached token Variables between runs (with --token-ttl: a daily run finds "
        "them expired, reads and replaces them, as in production)",
    )
    parser.add_argument(
        "--token-ttl", type=int, help="seconds the simulator's tokens live (its default 3599)"
    )
    parser.add_argument("--rewrite", action="store_true", help=f"write the section again from {CACHE}")
    args = parser.parse_args()
    if args.rewrite:
        write(json.loads(CACHE.read_text()))
        return
    settings = {**SETTINGS, **dict(item.split("=", 1) for item in args.setting)}
    secrets_file = Path(tempfile.mkdtemp(prefix="zws-fleet-secrets-")) / "connections.json"
    worker_secrets = {
        "AIRFLOW__WORKERS__SECRETS_BACKEND": "benchmarks.fleet_secrets.JsonFileConnections",
        "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": json.dumps({"path": str(secrets_file)}),
    }
    shapes = {
        "before": (SYNC_DAG, 1, False),
        "after": (BATCHED, args.batch, False),
        "after-secrets": (BATCHED, args.batch, True),
    }
    order = [shapes[s.strip()] for s in args.order.split(",")]
    receiver, watch = TimedStatsd(), FreezeWatch()
    watch.start()
    metrics = {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(receiver.port),
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",  # the decision pass's dag_id tag
    }
    os.environ["ZWS_BENCH_CUSTOMERS_PER_TASK"] = str(args.batch)  # fleet_batched_dag.py, every component
    machine, date = _common.machine(), _common.utc_date()
    names = [f"f{n:05d}" for n in range(args.customers)]
    dags = _common.ROOT / "dags"
    started = time.monotonic()
    with running_cluster(
        {
            "zuora_workflow_sync.py": dags / "zuora_workflow_sync.py",
            "fleet_batched_dag.py": _common.ROOT / "benchmarks" / "fleet_batched_dag.py",
        },
        {**settings, **metrics, **worker_secrets},
    ) as (info, api):
        print(f"{datetime.now():%H:%M:%S} cluster up after {time.monotonic() - started:.0f} s", flush=True)
        unpause(api, SYNC_DAG, BATCHED, scheduled=(SYNC_DAG, BATCHED))
        sim = AdminClient(info["simulator_url"])
        clock = time.monotonic()
        definitions = register(info, api, sim, names, args.workflows, args.token_ttl)
        connections = {f"zuora_{name}": d for name, d in definitions.items()}
        register_s = time.monotonic() - clock
        print(
            f"{datetime.now():%H:%M:%S} {len(names)} customers registered in {register_s:.0f} s", flush=True
        )
        setup_s = first_sync(names, definitions, info, args.setup_processes)
        print(f"{datetime.now():%H:%M:%S} first synced in-process in {setup_s:.0f} s", flush=True)
        meters = Meters(info, sim)
        before = meters.read()
        time.sleep(30)
        idle = Meters.delta(meters.read(), before)
        runs = []
        for dag_id, per_task, from_secrets in order:
            # the task processes read the file once, at their first lookup; empty: the Execution API
            secrets_file.write_text(json.dumps(connections if from_secrets else {}))
            run = measured_run(
                api,
                info,
                meters,
                receiver,
                watch,
                dag_id,
                names,
                per_task,
                args.timeout_min * 60,
                keep_tokens=args.keep_tokens,
            )
            runs.append({**run, "worker_secrets": from_secrets})
            PARTIAL.write_text(json.dumps(runs, indent=1))  # a later failure keeps these
    data = {
        "date": date,
        "machine": machine,
        "command": _common.command("fleet_run.py"),
        "customers": args.customers,
        "workflows": args.workflows,
        "batch": args.batch,
        "timeout_min": args.timeout_min,
        "order": args.order,
        "keep_tokens": args.keep_tokens,
        "token_ttl": args.token_ttl,
        "settings": settings,
        "register_s": register_s,
        "setup_s": setup_s,
        "setup_processes": args.setup_processes,
        "idle_30s": idle,
        "total_s": time.monotonic() - started,
        "runs": runs,
    }
    CACHE.write_text(json.dumps(data, indent=1))
    print(f"kept in {CACHE}")
    write(data)
    if not all(r["shape_as_parsed"] for r in runs):
        raise SystemExit("a run's sync_runs rows do not show the shape its DAG was parsed with")
    if not all(r["every_customer_success"] for r in runs if r["finished"]):
        raise SystemExit("a finished run left customers without a successful sync_runs row")


def prediction(data: dict, run: dict) -> dict:
    """``scale_model.predict`` for this run: its shape, this cluster's slots and settings, no
    Zuora latency (the simulator answers at once), everything on this machine's cores, and the
    API server's masker as the run found it (``api_server_state``)."""
    s = data["settings"]
    return predict(
        data["customers"],
        data["workflows"],
        0.0,
        units(),
        changed_customer_share=0.0,
        customers_per_task=run["customers_per_task"],
        latency_s=0.0,
        slots=WORKER_SLOTS,
        machine_cores=os.cpu_count(),
        max_tis_per_query=int(s["AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY"]),
        parallelism=int(s["AIRFLOW__CORE__PARALLELISM"]),
        max_active_tasks=int(s["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"]),
        export_tis=int(s["ZUORA_SYNC_MAX_CONCURRENT_EXPORTS"]),
        pool_slots=8,
        **api_server_state(data, run),
    )


def api_server_state(data: dict, run: dict) -> dict:
    """What the API server's masker held and added in this run: every customer's password
    (2 patterns) in the first run that read the connections through the Execution API, nothing
    new later; nothing in a run whose workers read them from their secrets backend."""
    earlier = [r for r in data["runs"][: data["runs"].index(run)] if not r.get("worker_secrets")]
    held = 2 * data["customers"] if earlier else 0
    new = 0 if run.get("worker_secrets") or earlier else 2
    return {"api_password_patterns_held": held, "api_new_password_patterns_per_customer": new}


def synced(run: dict) -> int:
    """Customers synced (success rows) when the run ended or was stopped."""
    return run["sync_rows_by_status"].get("success", 0)


def write(data: dict) -> None:
    def label(run: dict) -> str:
        n = data["runs"].index(run) + 1
        if run["customers_per_task"] == 1:
            return f"{n}. before: one group of four tasks per customer (`zuora_workflow_sync`)"
        secrets = ", connections from the workers' secrets backend" if run.get("worker_secrets") else ""
        return f"{n}. after: batches of {run['customers_per_task']} (`{run['dag_id']}`){secrets}"

    def seconds(value: float | None) -> str:
        return "not kept" if value is None else f"{value:.2f}"

    lines = [
        "| shape | state | wall s (queued -> end) | Airflow CPU-s (scheduler / api-server / workers) | "
        "Postgres CPU-s | task instances | task processes started | worker slot-s | Zuora calls | "
        "metadata commits | XCom rows | sync_runs rows: success / all | scheduler loops: count, mean, p95, max s "
        "(over 2 s) | decision pass of the run: count, mean, p95, max s |",
        "|---" * 14 + "|",
    ]
    for r in data["runs"]:
        c, lo, dp = r["cpu_by_component_s"], r["loops"], r["decision_pass"]
        lines.append(
            f"| {label(r)} | {r['state']} | {r['wall_s']:,.0f} | {r['airflow_cpu_s']:,.0f} "
            f"({c.get('scheduler', 0):,.0f} / {c.get('api-server', 0):,.0f} / {c.get('workers', 0):,.0f}) | "
            f"{r['postgres_cpu_s']:,.0f} | {r['task_instances']:,} | {r['task_processes']:,} | "
            f"{r['slot_s']:,.0f} | {r['zuora_calls']:,} | {r['metadata_commits']:,} | {r.get('xcom_rows', '')} | "
            f"{r['sync_rows_by_status'].get('success', 0):,} / {r['sync_rows']:,} | "
            f"{lo['count']:,}, {lo['mean_s']:.2f}, {lo['p95_s']:.2f}, {seconds(lo['max_s'])} ({lo['over_2s']}) | "
            f"{dp['count']:,}, {dp['mean_s']:.2f}, {dp['p95_s']:.2f}, {seconds(dp['max_s'])} |"
        )
    model = [
        "| run | | wall s | customers synced | Airflow CPU-s | API server CPU-s | workers CPU-s | "
        "scheduler CPU-s | task processes | scheduler loops | mean decision pass s | limit (predicted) |",
        "|---" * 12 + "|",
    ]
    for r in data["runs"]:
        p = prediction(data, r)
        sch, c = p["scheduler"], p["cpu_by_component_s"]
        m = r["cpu_by_component_s"]
        name = label(r).split(":")[0]
        if r["finished"]:
            model += [
                f"| {name} | predicted | {p['wall_s']:,.0f} | {data['customers']:,} | {p['airflow_cpu_s']:,.0f} | "
                f"{c['api-server']:,.0f} | {c['workers']:,.0f} | {c['scheduler']:,.0f} | "
                f"{p['task_processes']:,.0f} | {sch['loops']:,} (at least) | {sch['mean_pass_s']:.2f} | "
                f"{p['limiting'].split(' (')[0]} |",
                f"| | measured | {r['wall_s']:,.0f} | {synced(r):,} | {r['airflow_cpu_s']:,.0f} | "
                f"{m.get('api-server', 0):,.0f} | {m.get('workers', 0):,.0f} | {m.get('scheduler', 0):,.0f} | "
                f"{r['task_processes']:,} | {r['loops']['count']:,} | {r['decision_pass']['mean_s']:.2f} | |",
                f"| | predicted / measured | **{p['wall_s'] / r['wall_s']:.2f}** | | "
                f"{p['airflow_cpu_s'] / max(r['airflow_cpu_s'], 1e-9):.2f} | "
                f"{c['api-server'] / max(m.get('api-server', 0), 1e-9):.2f} | "
                f"{c['workers'] / max(m.get('workers', 0), 1e-9):.2f} | "
                f"{c['scheduler'] / max(m.get('scheduler', 0), 1e-9):.2f} | "
                f"{p['task_processes'] / max(r['task_processes'], 1):.2f} | | "
                f"{sch['mean_pass_s'] / max(r['decision_pass']['mean_s'], 1e-9):.2f} | |",
            ]
        else:
            # how far the scheduler's loops get in the time the run had (a group per customer)
            done = [
                n for t, n in group_run_progress(units(), data["customers"], sch["per_loop"], r["wall_s"])
            ]
            loops_by_then = len(done)
            model += [
                f"| {name} | predicted | {p['wall_s']:,.0f} for all | {(done or [0])[-1]:,.0f} in {r['wall_s']:,.0f} s "
                f"| | | | | | {loops_by_then:,} in {r['wall_s']:,.0f} s ({sch['loops']:,} for all) | "
                f"{sch['mean_pass_s']:.2f} (whole run) | {p['limiting'].split(' (')[0]} |",
                f"| | measured | over {r['wall_s']:,.0f} | {synced(r):,} in {r['wall_s']:,.0f} s | "
                f"{r['airflow_cpu_s']:,.0f} | {m.get('api-server', 0):,.0f} | {m.get('workers', 0):,.0f} | "
                f"{m.get('scheduler', 0):,.0f} | {r['task_processes']:,} | {r['loops']['count']:,} | "
                f"{r['decision_pass']['mean_s']:.2f} | |",
                f"| | predicted / measured | | **{(done or [0])[-1] / max(synced(r), 1):.2f}** | | | | | | "
                f"{loops_by_then / max(r['loops']['count'], 1):.2f} | | |",
            ]
    progress = []
    for r in data["runs"]:
        if r["progress"]:
            points = ", ".join(
                f"{t / 60:.0f} min {n:,}" for t, n in r["progress"][:: max(1, len(r["progress"]) // 8)]
            )
            progress.append(f"- {label(r)}: customers synced (success rows) by minute: {points}.")
    settings = ", ".join(f"`{k}={v}`" for k, v in data["settings"].items())
    idle = data["idle_30s"]
    body = "\n".join(
        [
            f"Machine: {data['machine']}. Date: {data['date']}.",
            f"Command: `{data['command']}` ({data['total_s'] / 60:.0f} min in all). The local Celery "
            "cluster (api-server, scheduler, dag-processor, triggerer, 2 workers x 4 slots, Postgres, "
            "Redis, the simulator) started by the benchmark, Airflow's StatsD metrics on (to a UDP "
            "receiver of the benchmark, InfluxDB-style tags). Settings for every run: "
            f"{settings}; pool `zuora_api` 8 slots (the cluster's); everything else the cluster's own "
            "(airflow.env, the product's defaults: run deadline 30 min, retries). "
            f"{data['customers']:,} simulator tenants of {data['workflows']} workflows, their "
            "connections stored with one `airflow connections import` and their customer rows in "
            f"{data['register_s']:.0f} s. The workers have a secrets backend (`[workers] "
            "secrets_backend`: benchmarks/fleet_secrets.py, one JSON file looked up by id, standing "
            "in for Vault or a cloud secrets manager): it holds the customers' connections for the "
            "runs so marked and nothing for the others, whose task processes read them through the "
            "API server's Execution API, from the metadata database. The customers were "
            "first synced in-process (`sync.run_customer`, "
            f"{data['setup_processes']} processes) in {data['setup_s']:.0f} s. Then the daily run of "
            "each shape through the REST API (every enabled customer), in the order shown, "
            + (
                f"the tokens kept between runs (they live {data.get('token_ttl') or 3599} s: "
                "a later run finds them expired, reads them back and replaces them, as a daily run does); "
                if data.get("keep_tokens")
                else "its cached OAuth tokens deleted first (a daily run finds them expired); "
            )
            + "its state polled every 3 s in the metadata database; a run is given "
            f"{data['timeout_min']:.0f} min. Idle cluster before the runs: "
            f"{idle['airflow'] / 30:.2f} Airflow CPU-s per s.",
            "",
            *lines,
            "",
            "Wall: the run's queued -> end (for a run not finished: trigger -> timeout). Airflow "
            "CPU-s: every process of the cluster's components, the Celery workers and the task "
            "processes they started (`_cluster.airflow_cpu_seconds`), during the run. Task processes: "
            "TIs a worker ran (with a hostname). Worker slot-s: each workload's time in its slot "
            '(the workers\' "Workload finished" lines). Scheduler loops: StatsD '
            f"`{LOOP}` timers while the run lasted (every loop of the scheduler, the run's decision "
            f"pass included); decision pass: `{DECISION}` timers tagged with the run's dag_id "
            "(`DagRun.update_state`: every TI of the run loaded, each waiting one's dependencies "
            "checked). Every sync_runs row of a run was checked against the shape its DAG was parsed "
            "with (task processes parse the DAG file again): a group per customer records no task_id, "
            "a batch task `sync_customers` and its map index."
            + (" All matched." if all(r["shape_as_parsed"] for r in data["runs"]) else " **Some did not.**"),
            *([""] + progress if progress else []),
            *[
                f"- {label(r)}: the benchmark and the cluster were stopped (SIGSTOP, by the machine's "
                f"other user) for {r['frozen_s']:,.0f} s during this run: left out of its wall, "
                f"{r.get('timers_left_out', 0)} scheduler timers spanning the stop left out."
                for r in data["runs"]
                if r.get("frozen_s")
            ],
            "",
            f"**The model** (`scale_model.predict` with {units()['source']}; the batch shape as built: "
            "one task per batch running each customer's stages in-process; this cluster's 8 slots and "
            "settings, no Zuora latency, all on this machine's cores; the API server as each run "
            "found it. For a run that did not finish: how many customers the scheduler's loops let "
            "through in the time it had, `scale_model.group_run_progress`):",
            "",
            *model,
        ]
    )
    variant = [] if data["customers"] == 1000 else [f"{data['customers']} customers"]
    if data["order"] != ORDER:
        variant.append(data["order"].replace(",", ", "))
    variant += [f"{k}={v}" for k, v in data["settings"].items() if SETTINGS.get(k) != v]
    title = "Fleet run" + (f" ({'; '.join(variant)})" if variant else "")
    _common.write_section(title, body)
    print(body)


if __name__ == "__main__":
    main()
