"""Scale model: what a daily zuora_workflow_sync run costs for 1,000 and 10,000 customers, from
unit costs measured on this machine, checked against runs of the local Celery cluster.

Run: .venv/bin/python benchmarks/scale_model.py [--part units|scheduler|cluster|all|write|batches|auto]
         [--sizes 1,10,50,200] [--workflows 4] [--scheduler-sizes 100,300,1000] [--no-wait]

``--part batches`` measures nothing: it writes the "Scale model: batches" section (the batch
shape as built, ``$ZUORA_SYNC_CUSTOMERS_PER_TASK`` > 1, for the 8 scenarios) from ``units()``:
a new measurement when all three parts are in the cache, else those kept in
benchmarks/scale_units.json. Its check against a real 1,000-customer run is
benchmarks/fleet_run.py's. ``--part auto`` measures and writes nothing either: it prints the
numbers ``$ZUORA_SYNC_CUSTOMERS_PER_TASK=auto`` picks from (``zuora.settings``' AUTO_*), derived
from the same units (``auto_numbers``).

Three measurements, then the model (``predict``, ``plan``), then the "Scale model" section of
RESULTS.md (see benchmarks/SCALE.md for how to read it):

* ``units`` (in-process, ~2 minutes): the four library stages of ``zuora.sync`` for one
  customer of 50 and one of 500 workflows (the simulator's default export mix, no latency),
  against an embedded Postgres 16 and the simulator over HTTP, as ``sync_throughput.py`` runs
  them: an onboarding first sync, unchanged runs, 1 % and 100 % of workflows changed. CPU of
  this process (our code), of the Postgres server (every backend) and of the simulator, per
  stage, and Zuora calls per endpoint counted by the simulator. Fitted: CPU = fixed + per
  listed workflow x W + per changed workflow x k.
* ``scheduler`` (in-process, ~4 minutes): Airflow 3.3's decision pass over a running run
  (``DagRun.task_instance_scheduling_decisions`` + ``schedule_tis``, what the scheduler does
  on every loop) for runs of 100, 300 and 1,000 mapped customers, in a child process against
  its own migrated metadata database with this DAG serialized.
* ``cluster`` (the local Celery cluster of ``_cluster.running_cluster``: api-server,
  scheduler, dag-processor, triggerer, 2 workers x 4 slots, Postgres for metadata and
  warehouse, Redis, the simulator; ~24 minutes): customers of ``--workflows`` workflows synced
  once in-process (the first sync is not what is measured), then triggered runs: one customer
  repeatedly (task durations without contention), a calibration at 5 and 20 customers
  (unchanged, then every customer with one changed workflow) from which the cluster's unit
  costs are fitted, two runs of 40 unchanged customers in batches of 20 (the API server's
  cost per customer of a batch; benchmarks/fleet_batched_dag.py), and the validation at ``--sizes`` (unchanged, then a quarter of the
  customers with one changed workflow): wall, CPU per Airflow component, task processes,
  Zuora calls, the metadata database's commits and rows, worker memory. Waits for
  /tmp/zws-bench-free (another benchmark owns the machine until then) unless --no-wait.

Measurements are kept in $TMPDIR/zws-scale-model.json, so each part can be rerun alone; the
section is written (``--part write`` rewrites it) when all three are there, and the
measurements are then kept in benchmarks/scale_units.json, the units SCALE.md is derived from.
The masker's units come from benchmarks/secrets_masker.py (kept in the same cache).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import _common  # noqa: F401  (paths and Airflow environment first)
import psutil

FLAG = Path("/tmp/zws-bench-free")
CACHE = Path(tempfile.gettempdir()) / "zws-scale-model.json"
PAGE_LENGTH = 50

# --- the model ----------------------------------------------------------------------------

# What predict() assumes about a deployment unless told otherwise. The Airflow values are this
# product's and Airflow 3.3's defaults; the Zuora answer time is an assumption (the simulator
# answers at once; the reference gives no figure), see SCALE.md.
DEPLOYMENT = {
    "latency_s": 0.5,  # ASSUMED: Zuora's answer time per call (token, page, export, versions)
    "max_concurrency": 4,  # hook: calls in flight per export task (connection extra)
    "pool_slots": 8,  # pool zuora_api: list + export tasks running at once
    "export_tis": 4,  # $ZUORA_SYNC_MAX_CONCURRENT_EXPORTS: export tasks per run at once
    "max_active_tasks": 16,  # [core] max_active_tasks_per_dag: tasks of the DAG running at once
    "max_tis_per_query": 16,  # [scheduler] max_tis_per_query: TIs queued per scheduler loop (0 = no cap)
    "parallelism": 32,  # [core] parallelism: TIs running or queued per scheduler
    "slots": 8,  # Celery worker slots (2 workers x 4 here)
    "slots_per_worker": 16,  # for sizing production workers
    "customers_per_task": 1,  # $ZUORA_SYNC_CUSTOMERS_PER_TASK: 1 = a group per customer; B > 1 = batches
    "tokens_per_customer": 1,  # a daily run mints one token per customer (TTL 1 h)
    "lookback_due_fraction": 0.0,  # share of workflows re-exported because their definition is >= 7 days old
    "legacy_share": 1 / 12,  # changed workflows whose export has no version: one more export call
    "machine_cores": None,  # local check: everything on one machine of this many cores
    "hour_s": 3600.0,
    # The API server's secrets masker (Airflow 3.3.2): each API server process masks every
    # connection password it loads (as stored and URL-quoted: 2 patterns), recompiling one regex
    # of all it holds for each new one, and redacts every log line with it: 2 new patterns per
    # customer on a process's first day, none later. (The token Variables are not masked: their
    # name holds no sensitive word since 2026-12-06, zuora.api.token_cache.)
    "api_servers": 1,  # API server processes serving the Execution API (one core each, at most)
    "api_password_patterns_held": 0,  # when the run starts, per API server process
    "api_new_password_patterns_per_customer": 2,
}

# Zuora's per-tenant limits (shared/reference/zuora-api.md §5.1, §5.3): API calls, not tokens.
ZUORA_LIMITS = {
    "production / central sandbox": {"minute": 50_000, "hour": 2_250_000, "day": 27_000_000},
    "developer sandbox": {"minute": 12_500, "hour": 25_000, "day": 50_000},
    "API sandbox": {"minute": 2_500, "hour": 5_000, "day": 10_000},
}
ZUORA_CONCURRENCY = 40  # default concurrency limit per tenant (§5.3)
MEASURED_WORKER_SLOTS = 4  # AIRFLOW__CELERY__WORKER_CONCURRENCY of airflow.env, the cluster's workers
CHAIN = 6  # list_customers (migrations first) -> list -> export -> validate -> upsert -> summarize
BATCH_CHAIN = 4  # list_customers -> list_batches -> sync_customers -> summarize


def predict(
    customers: int,
    workflows: int,
    changed_fraction: float,
    units: dict,
    changed_customer_share: float | None = None,
    **deployment,
) -> dict:
    """The cost of one run of ``customers`` customers of ``workflows`` workflows each, with
    ``changed_fraction`` of all workflows changed since the last run.

    Changes are spread uniformly and independently over workflows unless
    ``changed_customer_share`` (share of customers with any change) says otherwise. Two shapes,
    by ``customers_per_task`` (B, ``$ZUORA_SYNC_CUSTOMERS_PER_TASK``):

    * B = 1, the DAG's default: a mapped group of four tasks per customer; a customer with no
      change is synced by its list task alone (1 task process), one with a change runs its 4
      stage tasks;
    * B > 1, the batches as built: one ``sync_customers`` task per batch of B customers, which
      runs each customer's stages in its own process one after the other (an unchanged
      customer finished by its list stage). Every batch task runs (1 task process each);
      Airflow's per-task overhead is paid once per batch, a customer costs only its library
      work (our code, the warehouse, its Zuora calls) inside the task. The batch task holds a
      ``zuora_api`` pool slot and counts against ``$ZUORA_SYNC_MAX_CONCURRENT_EXPORTS``
      (``export_tis``) for all of it.

    ``units`` are the measured unit costs (``units()``, ``fit_units``); ``deployment``
    overrides ``DEPLOYMENT``. Returns plain numbers (seconds, counts, MB); SCALE.md says what
    each means.
    """
    d = {**DEPLOYMENT, **deployment}
    lib, cl = units["library"], units["cluster"]
    C, W, p, B = customers, workflows, changed_fraction, d["customers_per_task"]
    batched = B > 1
    touched = min(1.0, p + d["lookback_due_fraction"])  # workflows exported this run
    q = (1 - (1 - touched) ** W) if changed_customer_share is None else changed_customer_share
    c_changed, c_unchanged = C * q, C - C * q
    k = touched * W / q if q else 0.0  # exports per changed customer
    versions = p * W / q if q else 0.0  # version lists per changed customer
    # mapped units: a group of four tasks per customer, or a batch task per B customers
    groups = math.ceil(C / B)
    g_changed = 0.0 if batched else groups * q  # groups running all four stage tasks
    g_unchanged = groups - g_changed  # groups (or batches) of one task process

    # Zuora calls per tenant: token + list pages (+ exports + version lists when changed)
    L, M = d["latency_s"], d["max_concurrency"]
    pages, tokens = math.ceil(W / PAGE_LENGTH), d["tokens_per_customer"]
    version_exports = versions * d["legacy_share"]
    calls_unchanged = tokens + pages
    calls_changed = tokens + pages + k + versions + version_exports
    calls = c_unchanged * calls_unchanged + c_changed * calls_changed

    # list_customers (the warehouse's migrations first), list_batches and summarize run in both
    # shapes (until 2026-12-07: migrate, list_customers, summarize); the shape not picked is
    # mapped over no customer: one skipped TI per task (the group's 4, or the batch task)
    processes = 3 + g_unchanged + 4 * g_changed
    tis = 3 + (groups + 4 if batched else 4 * groups + 1)

    # our code's CPU (and the warehouse's, which a task waits for) for one customer, by stage
    def code(stage: str, w: float, changed: float) -> float:
        f = lib["stage"][stage]
        return max(f["fixed"], 0.0) + f["listed"] * w + f["changed"] * changed

    def code_unchanged(w: float, key: str = "both") -> float:
        lib_part = lib["cpu_fixed_s"] + lib["cpu_per_listed_s"] * w
        pg_part = lib["pg_fixed_s"] + lib["pg_per_listed_s"] * w
        return {"lib": lib_part, "pg": pg_part, "both": lib_part + pg_part}[key]

    def lib_changed(w: float, changed: float) -> float:
        return lib["cpu_fixed_s"] + lib["cpu_per_listed_s"] * w + lib["cpu_per_changed_s"] * changed

    # Airflow CPU: measured per group at cl["workflows"] workflows and 1 changed (an unchanged
    # group: one task process); our code's share of it (workers) is replaced by our code's CPU
    # for W workflows and k changes. A batch task costs what one unchanged group's task did.
    w0 = cl["workflows"]

    def per_group(table: dict) -> float:
        return table["run"] + g_unchanged * table["unchanged"] + g_changed * table["changed"]

    code_delta = (
        c_unchanged * code_unchanged(W, "lib")
        + c_changed * lib_changed(W, k)
        - g_unchanged * code_unchanged(w0, "lib")
        - g_changed * lib_changed(w0, 1)
    )
    # (the scheduler's CPU is not linear in groups: from its decision pass, below)
    cpu = {name: per_group(table) for name, table in cl["cpu_by_component"].items() if name != "scheduler"}
    cpu["workers"] += code_delta
    # the API server: the Execution API calls of the customers (a batch task makes them for each
    # of its customers: its connection, its token Variable read and written; measured under the
    # cluster, ``api_server``), and its masker: adding pattern i costs i x the recompile time
    # per pattern held (benchmarks/secrets_masker.py)
    api = cl.get("api_server", {})
    if batched:
        cpu["api-server"] += (C - groups) * api.get("per_customer_in_batch_s", 0.0)
    masker_s, patterns_after = api_masker(api, C, d)
    cpu["api-server"] += masker_s

    # Postgres: the warehouse's CPU from the library units; the cluster's Postgres (metadata and
    # warehouse in one server) measured per group, plus the warehouse's marginal CPU
    def pg_customer(w: float, changed: float) -> float:
        return lib["pg_fixed_s"] + lib["pg_per_listed_s"] * w + lib["pg_per_changed_s"] * changed

    warehouse_pg = c_unchanged * pg_customer(W, 0) + c_changed * pg_customer(W, k)
    cluster_pg = (
        per_group(cl["postgres_cpu_s"])
        + warehouse_pg
        - g_unchanged * pg_customer(w0, 0)
        - g_changed * pg_customer(w0, 1)
    )
    if batched:  # the simulator answers per customer, whatever the shape
        sim = lib.get("sim", {"fixed_s": 0.0, "per_listed_s": 0.0, "per_changed_s": 0.0})

        def sim_customer(w: float, changed: float) -> float:
            return sim["fixed_s"] + sim["per_listed_s"] * w + sim["per_changed_s"] * changed

        simulator_cpu = (
            cl["simulator_cpu_s"]["run"] + c_unchanged * sim_customer(W, 0) + c_changed * sim_customer(W, k)
        )
    else:
        simulator_cpu = per_group(cl["simulator_cpu_s"])

    # Worker slot-seconds: a task's duration without contention (measured at w0 workflows)
    # is Airflow's own overhead per task process plus our code; our code then scales with
    # W, k and B, and each task also waits for its chain of Zuora calls (latency each)
    slot = cl["slot_s"]
    over = {
        "unchanged": max(slot["unchanged"] - code_unchanged(w0), 0.0),
        **{
            t: max(slot[t] - code(s, w0, 1), 0.0)
            for t, s in (
                ("list_workflows", "list"),
                ("export_workflows", "export"),
                ("validate", "validate"),
                ("upsert", "upsert"),
            )
        },
    }
    work_unchanged = code_unchanged(W) + (tokens + pages) * L
    work = {
        "list": code("list", W, k) + (tokens + pages) * L,
        "export": code("export", W, k)
        + (math.ceil(k / M) + math.ceil(versions / M) + math.ceil(version_exports / M)) * L,
        "validate": code("validate", W, k),
        "upsert": code("upsert", W, k),
    }
    customers_work = c_unchanged * work_unchanged + c_changed * sum(work.values())
    b = min(B, C)
    if batched:
        # one task process per batch (Airflow's overhead of one task: an unchanged group's,
        # less its library work), then its customers one after the other
        batch_s = over["unchanged"] + customers_work / groups
        slot_s = slot["fixed"] + groups * over["unchanged"] + customers_work
        pooled_s = export_s = slot_s - slot["fixed"]  # the batch task is in the pool, export-limited
        task_s = {"sync_customers (a batch)": batch_s}
        timeouts = {"sync_customers (a batch)": 3600.0 + 120.0 * b}
        chain = batch_s + cl["schedule_latency_s"]
    else:
        per_changed_group = sum(over[t] for t in ("list_workflows", "export_workflows", "validate", "upsert"))
        slot_s = (
            slot["fixed"] + g_unchanged * over["unchanged"] + g_changed * per_changed_group + customers_work
        )
        pooled_s = (
            g_unchanged * over["unchanged"]
            + g_changed * (over["list_workflows"] + over["export_workflows"])
            + c_unchanged * work_unchanged
            + c_changed * (work["list"] + work["export"])
        )
        export_s = g_changed * over["export_workflows"] + c_changed * work["export"]
        # a changed customer's four tasks, an unchanged one's list task; each task must end
        # within its execution_timeout (the DAG's: 30 min, the export task 60 min)
        task_s = {
            "list": over["list_workflows"] + work["list"],
            "export": over["export_workflows"] + work["export"],
            "validate": over["validate"] + work["validate"],
            "upsert": over["upsert"] + work["upsert"],
            "list (unchanged customer)": over["unchanged"] + work_unchanged,
        }
        timeouts = {"export": 3600.0}
        chain = (
            sum(task_s[t] for t in ("list", "export", "validate", "upsert")) + 4 * cl["schedule_latency_s"]
        )
    over_timeout = [t for t, v in task_s.items() if v > timeouts.get(t, 1800.0)]

    # The scheduler: each loop, one decision pass over the running run (every TI loaded, the
    # dependencies of every waiting one checked), then at most max_tis_per_query TIs queued,
    # and no more than there are free slots. Between loops it idles at its measured rate.
    waiting0, _ = waiting_and_finished(groups, B)
    pass_wall = mean_pass(units["scheduler"], groups, per_task=B)
    pass_cpu = mean_pass(units["scheduler"], groups, "cpu", per_task=B)
    loop_s = pass_wall + cl["loop_gap_s"]
    idle_scheduler = cl.get("idle", {}).get("components", {}).get("scheduler", 0.0)
    scheduler_cores = max(pass_cpu / loop_s, idle_scheduler)  # while the run lasts
    running = min(d["max_active_tasks"], d["slots"], d["parallelism"])
    # A loop queues at most max_tis_per_query TIs, within max_active_tasks (TIs of the run
    # queued or running, by their state: a finished task frees its place at once) and
    # [core] parallelism (the executor's slots: a task frees its slot only when the executor's
    # heartbeat, after the loop's queueing, learns it finished). When a loop outlasts a task,
    # the executor slots the previous loop filled still count as taken: parallelism refills
    # every other loop (measured: 3.8 customers a loop with parallelism 8 at 1,000 customers,
    # RESULTS.md "Fleet run").
    executor_free = d["parallelism"] / 2 if loop_s > min(task_s.values()) else d["parallelism"]
    per_loop = max(min(d["max_tis_per_query"] or processes, d["max_active_tasks"], executor_free), 1)
    loops = max(BATCH_CHAIN if batched else CHAIN, math.ceil(processes / per_loop))
    scheduler_s = loops * loop_s

    # how long the run takes under the deployment's limits: each limit alone is a lower bound
    bounds = {
        "task slots (min of max_active_tasks, parallelism, worker slots)": slot_s / running,
        "pool zuora_api": pooled_s / d["pool_slots"],
        "export tasks at once (max_active_tis_per_dagrun)": export_s / d["export_tis"],
        # list_customers, one group's tasks (or list_batches, one batch), summarize: one after the other
        "one group's chain of tasks": slot["fixed"] + 3 * cl["schedule_latency_s"] + chain,
        "scheduler loops (decision pass x loops)": scheduler_s,
        # every task's Execution API calls go through the API server processes, one core each
        "API server (Execution API, one core per process)": cpu["api-server"] / d["api_servers"],
    }
    if d["machine_cores"]:
        # the local check: everything on one machine; wall = fixed + CPU / (cores x utilisation),
        # both fitted on the calibration runs; the scheduler's share of the CPU grows with the wall
        usable = d["machine_cores"] * cl["cpu_utilisation"]
        machine = sum(cpu.values()) + cluster_pg + simulator_cpu
        bounds["CPU of this machine"] = (cl["run_wall_s"] + machine / usable) / max(
            1 - scheduler_cores / usable, 0.05
        )
    limiting = max(bounds, key=bounds.get)
    wall = bounds[limiting]
    cpu["scheduler"] = scheduler_cores * wall
    airflow_cpu = sum(cpu.values())

    # what one hour needs: concurrency for each limit, workers, their memory and cores
    hour = d["hour_s"]
    needed_slots = math.ceil(slot_s / hour)
    workers = math.ceil(needed_slots / d["slots_per_worker"])
    # a worker: its main process plus, per slot, what the measured 4-slot workers held at
    # their peak (pool process, task process, log server, shared) beyond their main process
    memory = cl["memory"]
    per_slot_mb = (memory["peak_worker_mb"] - memory["worker_main_mb"]) / MEASURED_WORKER_SLOTS
    worker_mb = memory["worker_main_mb"] + d["slots_per_worker"] * per_slot_mb
    meta = cl["metadata"]
    return {
        "customers": C,
        "workflows": W,
        "changed_fraction": p,
        "customers_per_task": B,
        "customers_changed": c_changed,
        "customers_unchanged": c_unchanged,
        "exports_per_changed_customer": k,
        "groups": groups,
        "groups_changed": g_changed,
        "task_instances": tis,
        "task_processes": processes,
        "tis_skipped": 0 if batched else 3 * g_unchanged,
        "zuora_calls": calls,
        "calls_per_unchanged_tenant": calls_unchanged,
        "calls_per_changed_tenant": calls_changed,
        "calls_per_tenant_minute_peak": M * 60 / L if L else float("inf"),
        "airflow_cpu_s": airflow_cpu,
        "cpu_by_component_s": cpu,
        "warehouse_pg_cpu_s": warehouse_pg,
        "cluster_pg_cpu_s": cluster_pg,
        "simulator_cpu_s": simulator_cpu,
        "api_masker_cpu_s": masker_s,
        "api_patterns_after": patterns_after,
        "slot_s": slot_s,
        "pooled_slot_s": pooled_s,
        "export_slot_s": export_s,
        "work_s": {
            "unchanged customer": work_unchanged,
            **{f"changed customer: {k_}": v for k_, v in work.items()},
        },
        "overhead_s": over,
        "customer_chain_s": chain,
        "task_s": task_s,
        "over_timeout": over_timeout,
        "scheduler": {
            "loops": loops,
            "mean_pass_s": pass_wall,
            "mean_pass_cpu_s": pass_cpu,
            "loop_s": loop_s,
            "first_pass_s": scheduler_pass(units, waiting0, 2),
            "busy_s": scheduler_s,
            "cores": scheduler_cores,
            "per_loop": per_loop,
        },
        "bounds_s": bounds,
        "limiting": limiting,
        "wall_s": wall,
        "metadata": {
            "commits": per_group(meta["commits"]),
            "rows_written": per_group(meta["rows_written"]),
            "bytes": per_group(meta["bytes"]),
        },
        "for_one_hour": {
            "task_slots": needed_slots,
            "pool_slots": math.ceil(pooled_s / hour),
            "export_tis": math.ceil(export_s / hour),
            "workers": workers,
            "worker_ram_mb": worker_mb,
            "per_slot_mb": per_slot_mb,
            "worker_cores": cpu["workers"] / hour / max(workers, 1),
            "api_server_cores": cpu.get("api-server", 0.0) / hour,
            "warehouse_cores": warehouse_pg / hour,
            "metadata_commits_per_s": per_group(meta["commits"]) / hour,
        },
    }


def api_masker(api: dict, customers: float, d: dict) -> tuple[float, float]:
    """CPU-seconds the API server processes spend in their secrets maskers during a run, and
    the patterns each holds after it. Every process serves about as many customers as the others
    but, over the days, sees every customer's connection. Adding a pattern recompiles all held:
    cost = seconds per character held x characters held (benchmarks/secrets_masker.py). Every
    log line is redacted with them: lines per customer x seconds per pattern and line x patterns."""
    k = d["api_servers"]
    per_char, chars = api.get("mask_add_s_per_char", 0.0), api.get("password_pattern_chars", 45.0)
    held = d["api_password_patterns_held"]
    new = customers * d["api_new_password_patterns_per_customer"] / k
    # per process: the new patterns arrive through the run; characters held grow linearly
    compile_s = per_char * new * chars * (held + new / 2)
    lines = (
        customers
        / k
        * api.get("log_lines_per_customer", 0.0)
        * api.get("redact_s_per_password_pattern_line", 0.0)
        * (held + new / 2)
    )
    return k * (compile_s + lines), held + new


# What $ZUORA_SYNC_CUSTOMERS_PER_TASK=auto picks from (zuora.settings' AUTO_* numbers)
AUTO_DAILY = (50, 0.01)  # a daily run's customer: 50 workflows, 1 % of them changed
AUTO_BUSIEST = (50, 1.0)  # its busiest day: a first sync, every workflow new
AUTO_DEADLINE_S = 1800.0  # the product's default run deadline ($ZUORA_SYNC_DEADLINE_MINUTES 30)
PLANNED_BATCHES = (1, 5, 10, 25, 50, 100)  # the batch sizes plan() tries


def auto_numbers(units: dict) -> dict:
    """``auto``'s numbers (``zuora.settings``: AUTO_GROUPS_AT_MOST, AUTO_CUSTOMER_SECONDS,
    AUTO_BATCH_AT_MOST), derived from the units with the model's Zuora answer time:

    * groups for at most the customers whose run's first scheduler decision pass (its waiting
      task instances, 3 a group) takes no longer than the rest of a scheduler loop: the groups
      at most double the scheduler's loop;
    * a daily run's customer's time in a batch (its library work and Zuora calls, one after the
      other), to the tenth of a second;
    * the largest batch ``plan`` tries whose busiest day (first syncs) fits the default deadline.
    """
    loop_rest = units["cluster"]["loop_gap_s"]
    groups = 1
    while scheduler_pass(units, waiting_and_finished(groups + 1)[0], 2) <= loop_rest:
        groups += 1

    def customer_s(workflows: int, changed: float) -> float:
        batch = 50
        run = predict(1000, workflows, changed, units, customers_per_task=batch)
        return (run["task_s"]["sync_customers (a batch)"] - run["overhead_s"]["unchanged"]) / batch

    daily, busiest = customer_s(*AUTO_DAILY), customer_s(*AUTO_BUSIEST)
    largest = max(b for b in PLANNED_BATCHES if b * busiest <= AUTO_DEADLINE_S)
    return {
        "groups_at_most": groups,
        "first_pass_s": scheduler_pass(units, waiting_and_finished(groups)[0], 2),
        "loop_rest_s": loop_rest,
        "customer_seconds": round(daily, 1),
        "busiest_customer_s": busiest,
        "batch_at_most": largest,
    }


def auto_section(units: dict) -> str:
    n = auto_numbers(units)
    return "\n".join(
        [
            f"From {units['source']}, Zuora answering in {DEPLOYMENT['latency_s']} s a call (assumed):",
            f"- groups for at most {n['groups_at_most']} customers: the first decision pass over "
            f"their {3 * n['groups_at_most'] + 1} waiting task instances takes {n['first_pass_s']:.2f} s, "
            f"the rest of a scheduler loop {n['loop_rest_s']:.2f} s;",
            f"- a daily run's customer ({AUTO_DAILY[0]} workflows, {AUTO_DAILY[1]:.0%} changed) takes "
            f"{n['customer_seconds']} s in a batch;",
            f"- batches of at most {n['batch_at_most']}: its busiest day (first syncs of "
            f"{AUTO_BUSIEST[0]} workflows, {n['busiest_customer_s']:.1f} s a customer) takes "
            f"{n['batch_at_most'] * n['busiest_customer_s'] / 60:.1f} min, within the default "
            f"{AUTO_DEADLINE_S / 60:.0f}-minute deadline.",
        ]
    )


UNLIMITED = 10**9


def plan(
    customers: int,
    workflows: int,
    changed_fraction: float,
    units: dict,
    target_s: float = 2700.0,
    **deployment,
) -> tuple[dict, dict]:
    """What to change for a run within ``target_s`` (45 min: a quarter of the hour kept for
    retries and noise): for each batch size (customers per mapped task) and per-tenant
    concurrency (the hook's max_concurrency, within Zuora's 40 per tenant), set every
    Airflow and product concurrency limit to what the work needs in that time (API server
    processes included), and keep the configuration that fits with the fewest worker slots.
    Returns (settings, prediction)."""
    best = None
    for batch in PLANNED_BATCHES:
        for concurrency in (4, 8, 16):
            settings = {
                **deployment,
                "customers_per_task": batch,
                "max_concurrency": concurrency,
                "max_tis_per_query": 256,
            }
            free = predict(
                customers,
                workflows,
                changed_fraction,
                units,
                **settings,
                slots=UNLIMITED,
                max_active_tasks=UNLIMITED,
                parallelism=UNLIMITED,
                pool_slots=UNLIMITED,
                export_tis=UNLIMITED,
            )
            slots = max(1, math.ceil(free["slot_s"] / target_s))
            settings.update(
                slots=slots,
                max_active_tasks=slots,
                parallelism=slots,
                pool_slots=max(1, math.ceil(free["pooled_slot_s"] / target_s)),
                export_tis=max(1, math.ceil(free["export_slot_s"] / target_s)),
            )
            result = predict(customers, workflows, changed_fraction, units, **settings)
            # API server processes until their CPU fits (the masker's cost per process shrinks
            # with more of them, each masking the secrets of the tasks it serves)
            while (
                result["bounds_s"]["API server (Execution API, one core per process)"] > target_s
                and settings.get("api_servers", 1) < 64
            ):
                settings["api_servers"] = settings.get("api_servers", 1) + 1
                result = predict(customers, workflows, changed_fraction, units, **settings)
            fits = result["wall_s"] <= target_s and not result["over_timeout"]
            key = (not fits, slots if fits else result["wall_s"], result["task_processes"])
            if best is None or key < best[0]:
                best = (key, settings, result)
    return best[1], best[2]


# --- fitting ------------------------------------------------------------------------------


def lstsq(rows: list[list[float]], ys: list[float]) -> list[float]:
    import numpy

    solution, *_ = numpy.linalg.lstsq(
        numpy.array(rows, dtype=float), numpy.array(ys, dtype=float), rcond=None
    )
    return [float(x) for x in solution]


def fit_library(lib: dict) -> dict:
    """CPU = fixed + per listed workflow x W + per changed workflow x k, over the in-process
    runs after onboarding (the median of the repeated unchanged runs), for our code and for
    Postgres; and per stage (our code + Postgres: a task waits for both) from the runs with
    changes, where the stages run one after the other as the DAG's tasks do."""
    runs = [r for r in lib["runs"] if r["case"] != "first sync"]
    rows = [[1, r["workflows"], r["changed"]] for r in runs]
    out: dict = {}
    for name, key in (("cpu", "lib"), ("pg", "pg")):
        fixed, listed, changed = lstsq(rows, [r["cpu"][key] for r in runs])
        out.update(
            {f"{name}_fixed_s": fixed, f"{name}_per_listed_s": listed, f"{name}_per_changed_s": changed}
        )
    staged = [r for r in runs if r["changed"]]
    srows = [[1, r["workflows"], r["changed"]] for r in staged]
    out["stage"] = {}
    for stage in ("list", "export", "validate", "upsert"):
        fixed, listed, changed = lstsq(
            srows, [r["stages"][stage]["lib"] + r["stages"][stage]["pg"] for r in staged]
        )
        # a slope within noise of zero can come out slightly negative: no stage gets cheaper
        out["stage"][stage] = {"fixed": fixed, "listed": max(listed, 0.0), "changed": max(changed, 0.0)}
    return out


def airflow_cpu(run: dict) -> float:
    """CPU of every Airflow process in a run: the sum over the components of cluster.json,
    Celery workers and their task processes included. (``_cluster.airflow_cpu_seconds`` picks
    processes by "airflow" in their command line, and a Celery worker's is "[celeryd: ...]",
    so it leaves out the workers and every task process; its figure is kept as
    ``airflow_cpu_helper``.)"""
    return sum(run["cpu_by_component"].values())


def waiting_and_finished(groups: float, per_task: int = 1) -> tuple[float, float]:
    """TIs waiting (state None) at the start of a run and finished at its end. A group per
    customer: its list task is scheduled at once, its other three wait; plus summarize. Batches:
    every batch task is scheduled by the first pass after the expansion; summarize waits."""
    if per_task > 1:
        return groups + 1, groups + 2
    return 3 * groups + 1, 4 * groups + 2


def mean_pass(scheduler: dict, groups: float, key: str = "wall", per_task: int = 1) -> float:
    """The scheduler's decision pass averaged over a run of ``groups`` mapped groups (or
    batches of ``per_task``). A group per customer: waiting TIs go from 3 per group to 0 while
    finished ones go from 2 to all, so the mean is a x W0 / 2 + c x W0 x F / 6. Batches: after
    the first pass only summarize waits, while the finished go from 2 to all: a + c x F / 2."""
    f = scheduler[key]
    waiting0, finished_end = waiting_and_finished(groups, per_task)
    if per_task > 1:
        return f["per_waiting_s"] + f["per_waiting_finished_s"] * finished_end / 2
    return f["per_waiting_s"] * waiting0 / 2 + f["per_waiting_finished_s"] * waiting0 * finished_end / 6


def fit_cluster(cluster: dict, scheduler: dict, masker: dict | None = None) -> dict:
    """Per-run and per-customer costs (unchanged, changed) from the calibration runs, by
    least squares: value = run + unchanged x C_u + changed x C_c."""
    cal = [r for r in cluster["runs"] if r["phase"] == "calibration"]
    rows = [[1, r["customers_unchanged"], r["customers_changed"]] for r in cal]

    def fit(values: list[float]) -> dict:
        run, unchanged, changed = lstsq(rows, values)
        return {"run": run, "unchanged": unchanged, "changed": changed}

    components = sorted({name for r in cal for name in r["cpu_by_component"]})
    probe = [r for r in cluster["runs"] if r["phase"] == "probe"]
    durations: dict[str, list[float]] = {}
    latencies: list[float] = []
    for r in probe:
        for task, seconds in r["task_seconds"].items():
            key = "unchanged" if task == "list_workflows" and not r["customers_changed"] else task
            durations.setdefault(key, []).extend(seconds)
        latencies += r["queued_to_start"]
    fixed = statistics.median(
        sum(
            statistics.median(r["task_seconds"].get(t, [0.0]))
            for t in ("migrate", "list_customers", "summarize")
        )
        for r in probe
    )
    slot = {key: statistics.median(values) for key, values in durations.items()}
    slot["fixed"] = fixed
    # wall on this machine: the run's fixed part + machine CPU / (cores x utilisation)
    cores = cluster["cores"]
    machine = [airflow_cpu(r) + r["postgres_cpu"] + r["simulator_cpu"] for r in cal]
    intercept, slope = lstsq([[1, m / cores] for m in machine], [r["wall"] for r in cal])
    # the scheduler loops back to back during a run: its CPU = wall x pass CPU / (pass wall +
    # the rest of a loop); that rest ("gap") from the calibration runs' scheduler CPU
    gaps = []
    for r in cal:
        busy = r["cpu_by_component"].get("scheduler", 0.0) / r["wall"]
        if busy > 0:
            gaps.append(
                mean_pass(scheduler, r["customers"], "cpu") / busy - mean_pass(scheduler, r["customers"])
            )
    api_server = fit_api_server(
        cluster, fit([r["cpu_by_component"].get("api-server", 0.0) for r in cal]), masker
    )
    return {
        "api_server": api_server,
        "workflows": cluster["workflows"],
        "loop_gap_s": max(statistics.median(gaps), 0.0) if gaps else 1.0,
        "airflow_cpu_s": fit([airflow_cpu(r) for r in cal]),
        "cpu_by_component": {c: fit([r["cpu_by_component"].get(c, 0.0) for r in cal]) for c in components},
        "postgres_cpu_s": fit([r["postgres_cpu"] for r in cal]),
        "simulator_cpu_s": fit([r["simulator_cpu"] for r in cal]),
        "metadata": {
            "commits": fit([r["meta"]["commits"] for r in cal]),
            "rows_written": fit([r["meta"]["rows_written"] for r in cal]),
            "bytes": fit([r["meta"]["bytes"] for r in cal]),
        },
        "slot_s": slot,
        "schedule_latency_s": statistics.median(latencies) if latencies else 0.0,
        "run_wall_s": intercept,
        "cpu_utilisation": 1 / slope if slope > 0 else 1.0,
        "memory": cluster["memory"],
        "idle": cluster["idle"],
    }


def fit_api_server(cluster: dict, per_group: dict, masker: dict | None) -> dict:
    """The API server's units. From the batched runs (unchanged customers, batch tasks of
    ``BATCH_CALIBRATION``): each batch task costs what an unchanged group's task does (which
    includes its one customer's calls), each other customer its own calls (its connection, its
    token Variable read and written): CPU = run + batches x unchanged + (C - batches) x per
    customer. Its log lines per customer. From ``secrets_masker.py`` (the "masker" part): the
    masker's recompile per character held and its redaction per pattern held and log line."""
    out: dict = {}
    batched = [r for r in cluster["runs"] if r["phase"] == "batched"]
    if batched:
        per_customer = []
        for r in batched:
            tasks = math.ceil(r["customers"] / BATCH_CALIBRATION)
            rest = (
                r["cpu_by_component"].get("api-server", 0.0)
                - per_group["run"]
                - tasks * per_group["unchanged"]
            )
            per_customer.append(rest / (r["customers"] - tasks))
        out["per_customer_in_batch_s"] = max(statistics.median(per_customer), 0.0)
        out["log_lines_per_customer"] = statistics.median(
            r["api_log_lines"] / r["customers"] for r in batched
        )
    if masker:
        passwords = [r for r in masker["rows"] if r["kind"] == "password"]
        out["mask_add_s_per_char"] = statistics.median(r["add_s"] / r["pattern_chars"] for r in passwords)
        out["redact_s_per_password_pattern_line"] = statistics.median(
            r["line_s"] / r["patterns"] for r in passwords
        )
        out["password_pattern_chars"] = statistics.median(
            r["pattern_chars"] / r["patterns"] for r in passwords
        )
    return out


UNITS_FILE = Path(__file__).with_name("scale_units.json")
BATCHED = "zuora_workflow_sync_batched"  # fleet_batched_dag.py
BATCH_CALIBRATION = 20  # customers per batch task in the cluster part's batched runs


def units() -> dict:
    """The units the model uses, fitted on this machine's measurements: a new measurement's
    cache when it holds every part ($TMPDIR/zws-scale-model.json), else the measurements kept in
    scale_units.json (``--part write`` keeps them there)."""
    data = load()
    source = CACHE
    if not {"library", "scheduler", "cluster"} <= set(data):
        data, source = json.loads(UNITS_FILE.read_text()), UNITS_FILE.name
    return {**fit_units(data), "source": f"{source} (measured {data['cluster']['date']})"}


def fit_units(measured: dict) -> dict:
    scheduler = fit_scheduler(measured["scheduler"])
    return {
        "library": fit_library(measured["library"]),
        "scheduler": scheduler,
        "cluster": fit_cluster(measured["cluster"], scheduler, measured.get("masker")),
    }


# --- in-process unit costs -----------------------------------------------------------------


def measure_library(sizes=(50, 500), repeats: int = 5) -> dict:
    """Our code's and Postgres's CPU per stage for customers of ``sizes`` workflows."""
    import psycopg
    from cryptography.fernet import Fernet

    from devstack.postgres import EmbeddedPostgres
    from zuora import sync, warehouse
    from zuora_simulator.client import running_simulator

    _common.quiet_logs()
    started_at, machine = _common.utc_date(), _common.machine()
    key = Fernet.generate_key()
    os.environ["ZUORA_EXPORT_ENCRYPTION_KEY"] = key.decode()
    tenants = [{"tenant_id": f"lib{w}", "seed": 11 + i, "workflows": w} for i, w in enumerate(sizes)]
    runs = []
    with EmbeddedPostgres() as pg, running_simulator(tenants=tenants) as sim:
        os.environ["AIRFLOW_CONN_ZUORA_WAREHOUSE"] = pg.uri
        with psycopg.connect(pg.uri) as conn:
            warehouse.apply_migrations(conn)
            customers = {
                t["workflows"]: _common.register_customer(
                    conn, t["tenant_id"], sim.admin.get_tenant(t["tenant_id"])
                )
                for t in tenants
            }
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])

        me = psutil.Process()

        def cpu_now() -> dict:
            # this process alone (its threads included), not the simulator it started
            own = me.cpu_times()
            return {
                "lib": own.user + own.system,
                "pg": tree_cpu(postmaster),
                "sim": tree_cpu(sim.process.pid),
            }

        def measured(stage_fn) -> tuple[dict, dict]:
            before, clock = cpu_now(), time.perf_counter()
            report = stage_fn()
            wall = time.perf_counter() - clock
            # the stage's Postgres backend exits when its connection closes; its CPU is counted
            # (in the postmaster's children) only once the postmaster has reaped it
            time.sleep(0.5)
            after = cpu_now()
            return report, {**{k: after[k] - before[k] for k in after}, "wall": wall}

        def run(w: int, case: str, changed: int, run_id: str) -> dict:
            customer = customers[w]
            tenant = customer["customer_id"]
            ids = sim.admin.workflow_ids(tenant)
            for wid in ids[:changed]:
                sim.admin.update_workflow(tenant, wid)
            time.sleep(1.1)  # updatedAt of seconds-formatted items moves
            sim.admin.reset_stats(tenant)
            stages = {}
            listed, stages["list"] = measured(
                lambda: sync.list_stage(customer, run_id, finish_unchanged=True)
            )
            finished = listed.finished is not None
            reports = {"list": listed.report}
            if not finished:
                for name, fn in (
                    ("export", sync.export_stage),
                    ("validate", sync.validate_stage),
                    ("upsert", sync.upsert_stage),
                ):
                    reports[name], stages[name] = measured(lambda fn=fn: fn(customer, run_id))
            stats = sim.admin.stats(tenant)
            total = {k: sum(s[k] for s in stages.values()) for k in ("lib", "pg", "sim", "wall")}
            exported = (listed.finished or reports)["export"]["exported"]
            result = {
                "workflows": w,
                "case": case,
                "changed": changed,
                "finished_in_list": finished,
                "exported": exported,
                "cpu": total,
                "stages": stages,
                "calls": dict(stats["requests"]),
                "tokens_minted": stats["tokens_minted"],
                "pages": listed.report["pages"],
            }
            print(json.dumps({k: v for k, v in result.items() if k != "stages"}), flush=True)
            return result

        # onboarding: a first sync with its whole version history in one run (the budget
        # raised for this run only), so later runs are steady-state daily runs
        os.environ["ZUORA_SYNC_HISTORY_CALLS"] = "1000000"
        for w in sizes:
            runs.append(run(w, "first sync", 0, f"first-{w}"))
        del os.environ["ZUORA_SYNC_HISTORY_CALLS"]
        for w in sizes:
            for n in range(repeats):
                runs.append(run(w, "unchanged", 0, f"unchanged-{w}-{n}"))
            runs.append(run(w, "1% changed", max(1, w // 100), f"one-percent-{w}"))
            runs.append(run(w, "100% changed", w, f"all-{w}"))
            runs.append(run(w, "unchanged", 0, f"unchanged-{w}-after"))
    # unchanged runs: the median of the repeats, so one noisy run does not move the fit
    merged = []
    for w in sizes:
        same = [r for r in runs if r["workflows"] == w and r["case"] == "unchanged"]
        middle = sorted(same, key=lambda r: r["cpu"]["lib"])[len(same) // 2]
        merged += [r for r in runs if r["workflows"] == w and r["case"] != "unchanged"] + [middle]
    return {
        "date": started_at,
        "machine": machine,
        "runs": merged,
        "unchanged_repeats": {
            w: [r["cpu"] for r in runs if r["workflows"] == w and r["case"] == "unchanged"] for w in sizes
        },
    }


# --- the scheduler's decision pass -----------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """CPU of a process and its live children, plus the children it reaped."""
    root = psutil.Process(pid)
    t = root.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in root.children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure_scheduler(sizes=(100, 300, 1000)) -> dict:
    """What one scheduler loop costs for a running zuora_workflow_sync run of N customers.

    Every loop, Airflow 3.3's scheduler calls ``DagRun.update_state`` on each running run it
    examines, which loads every TI of the run and checks the dependencies of each one not yet
    scheduled (``task_instance_scheduling_decisions``). This times exactly that call, in a
    child process against its own Postgres 16 with Airflow's metadata migrated and the real
    DAG serialized, for a run of N mapped customers: after the expansion (every list task
    scheduled, 3N tasks waiting) and half way (half the customers' four tasks done).
    """
    import subprocess
    import sys

    import psycopg

    from devstack.postgres import EmbeddedPostgres

    results = []
    started_at, machine = _common.utc_date(), _common.machine()
    with EmbeddedPostgres() as pg:
        with psycopg.connect(pg.uri, autocommit=True) as conn:
            conn.execute("CREATE DATABASE airflow")
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        home = tempfile.mkdtemp(prefix="zws-scale-scheduler-")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": home,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/airflow",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(_common.ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(_common.ROOT / "plugins"),
            "AIRFLOW__CORE__MAX_MAP_LENGTH": str(10 * max(sizes)),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(_common.ROOT), str(_common.ROOT / "plugins")]),
        }
        airflow = Path(sys.executable).parent / "airflow"
        subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
        for n in sizes:
            out = subprocess.run(
                [sys.executable, __file__, "--scheduler-child", str(n), str(postmaster)],
                env=env,
                capture_output=True,
                text=True,
            )
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            passes = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
            print(*passes, sep="\n", flush=True)
            results += passes
    return {"date": started_at, "machine": machine, "passes": results}


def scheduler_child(n: int, postmaster: int) -> None:
    """The measurement of ``measure_scheduler`` for one N, in its own interpreter (Airflow
    configured for the throwaway metadata database by the environment)."""
    import pendulum
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskmap import TaskMap
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    dags = _common.ROOT / "dags"
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(DagBag(dag_folder=dags / "zuora_workflow_sync.py", bundle_path=dags), "dags-folder", None)
    with create_session() as session:
        dag = SerializedDagModel.get("zuora_workflow_sync", session=session).dag
    run_id = f"scale-{n}"
    with create_session() as session:
        run = dag.create_dagrun(
            run_id=run_id,
            run_after=pendulum.now("UTC"),
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.RUNNING,
            conf={},
            session=session,
        )
        session.flush()
        for ti in run.get_task_instances(session=session):
            if ti.task_id in ("migrate", "list_customers"):
                ti.state = TaskInstanceState.SUCCESS
        # what list_customers' return value leaves for the mapping: N customers
        session.merge(
            TaskMap(
                dag_id=dag.dag_id, task_id="list_customers", run_id=run_id, map_index=-1, length=n, keys=None
            )
        )

    def decide(state: str) -> dict:
        with create_session() as session:
            run = session.query(DagRun).filter_by(run_id=run_id).one()
            run.dag = dag
            pg_before, cpu, clock = tree_cpu(postmaster), time.process_time(), time.perf_counter()
            decision = run.task_instance_scheduling_decisions(session=session)
            run.schedule_tis(decision.schedulable_tis, session=session)
            wall, cpu = time.perf_counter() - clock, time.process_time() - cpu
        result = {
            "customers": n,
            "state": state,
            "task_instances": len(decision.tis),
            "waiting": sum(1 for ti in decision.unfinished_tis if ti.state is None),
            "finished": len(decision.finished_tis),
            "wall": wall,
            "cpu": cpu,
            "postgres_cpu": tree_cpu(postmaster) - pg_before,
        }
        print(json.dumps(result), flush=True)
        return result

    for attempt in range(5):  # the expansion takes a few passes
        result = decide(f"expansion {attempt + 1}")
        if result["task_instances"] == 4 * n + 3 and result["waiting"] >= 3 * n:
            break
    decide("start")
    with create_session() as session:
        for ti in session.query(TaskInstance).filter(
            TaskInstance.run_id == run_id, TaskInstance.map_index >= 0, TaskInstance.map_index < n // 2
        ):
            ti.state = TaskInstanceState.SUCCESS
    decide("half")


SCHEDULER_TERMS = ("per_waiting_s", "per_waiting_finished_s")


def fit_scheduler(scheduler: dict) -> dict:
    """Seconds of one decision pass = waiting x (per waiting TI + per waiting x finished TI x
    finished): every waiting TI's dependency check costs a few queries and scans the run's
    finished TIs. Fitted without intercept on the start and half-way passes (an intercept
    fitted on 100-1,000 customers overstates small runs), for the wall time, the process's CPU
    and Postgres's CPU; a term that comes out negative (noise) is dropped."""
    passes = [p for p in scheduler["passes"] if p["state"] in ("start", "half")]
    columns = {
        "per_waiting_s": lambda p: p["waiting"],
        "per_waiting_finished_s": lambda p: p["waiting"] * p["finished"],
    }
    out = {}
    for key in ("wall", "cpu", "postgres_cpu"):
        terms = list(SCHEDULER_TERMS)
        while True:
            coefficients = lstsq([[columns[t](p) for t in terms] for p in passes], [p[key] for p in passes])
            if min(coefficients) >= 0 or len(terms) == 1:
                break
            terms.pop(coefficients.index(min(coefficients)))
        out[key] = {t: 0.0 for t in SCHEDULER_TERMS} | dict(zip(terms, coefficients, strict=True))
    return out


def group_run_progress(
    units: dict, customers: int, per_loop: float, until_s: float
) -> list[tuple[float, float]]:
    """One group per customer, every customer unchanged (its list task runs, its other three
    are skipped): the scheduler's loops one after the other, each a decision pass over the
    run (its waiting and finished TIs as they are then) plus the rest of a loop, each
    letting ``per_loop`` customers' list tasks through. Returns (seconds, customers done)
    after each loop, up to ``until_s`` or the last customer: how far a run gets when the
    scheduler's loops are what limits it."""
    f = units["scheduler"]["wall"]
    gap = units["cluster"]["loop_gap_s"]
    t, done, out = 0.0, 0.0, []
    while done < customers and t < until_s:
        waiting = 3 * (customers - done) + 1
        finished = 4 * done + 2
        t += waiting * (f["per_waiting_s"] + f["per_waiting_finished_s"] * finished) + gap
        done = min(customers, done + per_loop)
        out.append((t, done))
    return out


def scheduler_pass(units: dict, waiting: float, finished: float, key: str = "wall") -> float:
    f = units["scheduler"][key]
    return waiting * (f["per_waiting_s"] + f["per_waiting_finished_s"] * finished)


# --- the cluster -----------------------------------------------------------------------------


def wait_for_flag(poll: float = 60) -> None:
    while not FLAG.exists():
        print(
            f"{datetime.now():%H:%M:%S} waiting for {FLAG} (another benchmark owns the machine)", flush=True
        )
        time.sleep(poll)


class MemorySampler(threading.Thread):
    """Every ``period`` s, each Celery worker's process tree: the worker's main process, its
    pool processes (one per slot, children of the main one) and the task processes they
    start (deeper). Keeps the idle figures (first sample), the peak of a worker's tree (PSS,
    so shared pages count once) and the largest task process (USS: what it adds; RSS)."""

    def __init__(self, workers: list[int], period: float = 2.0):
        super().__init__(daemon=True)
        self.workers, self.period = workers, period
        self.idle = self.sample()
        self.peak = {"worker_mb": 0.0, "task_uss_mb": 0.0, "task_rss_mb": 0.0}
        self.stopping = threading.Event()

    def sample(self) -> dict:
        out = {
            "worker_mb": 0.0,
            "main_mb": 0.0,
            "pool_mb": 0.0,
            "pool_processes": 0,
            "task_uss_mb": 0.0,
            "task_rss_mb": 0.0,
        }
        for pid in self.workers:
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            total = 0.0
            for process in tree:
                try:
                    info = process.memory_full_info()
                    parent = process.ppid()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                mb = info.pss / 2**20
                total += mb
                if process.pid == pid:
                    out["main_mb"] = max(out["main_mb"], mb)
                elif parent == pid:
                    out["pool_mb"] += mb
                    out["pool_processes"] += 1
                else:
                    out["task_uss_mb"] = max(out["task_uss_mb"], info.uss / 2**20)
                    out["task_rss_mb"] = max(out["task_rss_mb"], info.rss / 2**20)
            out["worker_mb"] = max(out["worker_mb"], total)
        return out

    def run(self) -> None:
        while not self.stopping.wait(self.period):
            now = self.sample()
            for key in self.peak:
                self.peak[key] = max(self.peak[key], now[key])

    def stop(self) -> None:
        self.stopping.set()
        self.join()

    def figures(self) -> dict:
        idle = self.idle
        return {
            "worker_main_mb": idle["main_mb"],
            "pool_process_mb": idle["pool_mb"] / max(idle["pool_processes"], 1),
            "idle_worker_mb": idle["worker_mb"],
            "peak_worker_mb": self.peak["worker_mb"],
            "task_mb": self.peak["task_uss_mb"],
            "task_rss_mb": self.peak["task_rss_mb"],
        }


def parse(timestamp: str | None) -> float | None:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() if timestamp else None


class Meters:
    """Everything measured around one run: CPU by component and of Postgres and the simulator,
    Zuora calls, the metadata database's commits, rows and size."""

    def __init__(self, info: dict, meta_uri: str, postmaster: int, simulator: int):
        self.info, self.meta_uri = info, meta_uri
        self.postmaster, self.simulator = postmaster, simulator

    def metadata(self) -> dict:
        import psycopg

        with psycopg.connect(self.meta_uri, autocommit=True) as conn:
            commits, ins, upd, dele = conn.execute(
                "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                "WHERE datname = current_database()"
            ).fetchone()
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        return {
            "commits": commits,
            "rows_written": ins + upd + dele,
            "inserted": ins,
            "updated": upd,
            "deleted": dele,
            "bytes": size,
        }

    def read(self) -> dict:
        from _cluster import airflow_cpu_seconds, component_cpu

        return {
            "airflow": airflow_cpu_seconds(self.info),
            "components": component_cpu(self.info["components"]),
            "postgres": tree_cpu(self.postmaster),
            "simulator": tree_cpu(self.simulator),
            "meta": self.metadata(),
            "clock": time.monotonic(),
        }


def delta(after: dict, before: dict) -> dict:
    return {
        "airflow_cpu_helper": after["airflow"] - before["airflow"],
        "cpu_by_component": {k: v - before["components"].get(k, 0.0) for k, v in after["components"].items()},
        "postgres_cpu": after["postgres"] - before["postgres"],
        "simulator_cpu": after["simulator"] - before["simulator"],
        "meta": {k: v - before["meta"][k] for k, v in after["meta"].items()},
        "seconds": after["clock"] - before["clock"],
    }


def measure_cluster(sizes: list[int], workflows: int, wait: bool) -> dict:
    import psycopg
    from _cluster import running_cluster, unpause

    from devstack.airflow_api import SYNC_DAG
    from devstack.cluster import add_customer
    from zuora import sync
    from zuora.api.credentials import airflow_connection
    from zuora_simulator.client import AdminClient

    if wait:
        wait_for_flag()
    started = time.monotonic()
    machine = _common.machine()
    dags = _common.ROOT / "dags"
    groups = {
        "probe": ["probe"],
        "cal5": [f"cal5c{n}" for n in range(5)],
        "cal20": [f"cal20c{n}" for n in range(20)],
        "batched": [f"b40c{n}" for n in range(40)],
        **{f"v{s}": [f"v{s}c{n}" for n in range(s)] for s in sizes},
    }
    runs: list[dict] = []
    # the batch shape beside the real one (fleet_batched_dag.py, as fleet_run.py): its API
    # server cost per customer, the unit the model has no other source for
    os.environ["ZWS_BENCH_CUSTOMERS_PER_TASK"] = str(BATCH_CALIBRATION)
    dag_files = {
        "zuora_workflow_sync.py": dags / "zuora_workflow_sync.py",
        "fleet_batched_dag.py": _common.ROOT / "benchmarks" / "fleet_batched_dag.py",
    }
    # the real DAG in the group shape the model's cluster units are for (its default, auto,
    # would batch runs of more than 4 customers)
    with running_cluster(dag_files, {"ZUORA_SYNC_CUSTOMERS_PER_TASK": "1"}) as (info, api):
        unpause(api, SYNC_DAG, BATCHED, scheduled=(SYNC_DAG, BATCHED))
        sim = AdminClient(info["simulator_url"])
        home = Path(info["airflow_home"]).parent
        os.environ["ZUORA_EXPORT_ENCRYPTION_KEY"] = json.loads((home / "keys.json").read_text())["export_key"]
        warehouse_uri = info["warehouse_uri"]
        os.environ["AIRFLOW_CONN_ZUORA_WAREHOUSE"] = warehouse_uri
        meta_uri = warehouse_uri.rsplit("/", 1)[0] + "/airflow"
        with psycopg.connect(warehouse_uri) as conn:
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        postmaster = psutil.Process(backend).parent().pid
        simulator = next(
            p.pid
            for p in psutil.Process(info["pid"]).children()
            if "zuora_simulator" in " ".join(p.cmdline())
        )
        meters = Meters(info, meta_uri, postmaster, simulator)

        # every customer synced once, in this process (a first sync is not what is measured)
        _common.quiet_logs()
        clock = time.monotonic()
        for names in groups.values():
            for name in names:
                tenant = add_customer(api, sim, warehouse_uri, name, workflows=workflows, seed=len(name))
                os.environ[f"AIRFLOW_CONN_ZUORA_{name.upper()}"] = json.dumps(
                    airflow_connection(
                        tenant["base_url"],
                        tenant["client_id"],
                        tenant["client_secret"],
                        allow_insecure_http=True,
                        environment="sandbox",
                    )
                )
                sync.run_customer(
                    {"customer_id": name, "zuora_conn_id": f"zuora_{name}", "environment": "sandbox"}, "setup"
                )
        setup_s = time.monotonic() - clock
        print(f"{sum(map(len, groups.values()))} customers set up in {setup_s:.0f} s", flush=True)

        memory = MemorySampler([pid for name, pid in info["components"].items() if name.startswith("worker")])
        before = meters.read()
        time.sleep(30)
        idle = delta(meters.read(), before)
        idle_rates = {
            "airflow_cpu": airflow_cpu(idle) / idle["seconds"],
            "components": {k: v / idle["seconds"] for k, v in idle["cpu_by_component"].items()},
            "postgres_cpu": idle["postgres_cpu"] / idle["seconds"],
            "commits_per_s": idle["meta"]["commits"] / idle["seconds"],
            "rows_per_s": idle["meta"]["rows_written"] / idle["seconds"],
        }
        print("idle", json.dumps(idle_rates), flush=True)
        memory.start()

        def measured_run(
            phase: str, group: str, changed: list[str], prediction: dict | None = None, dag_id: str = SYNC_DAG
        ) -> dict:
            names = groups[group]
            for name in changed:
                sim.update_workflow(name, sim.workflow_ids(name)[0])
            time.sleep(1.1)
            calls_before = {n: sim.stats(n) for n in names}
            api_log = Path(info["logs"]) / "api-server.log"
            log_lines_before = api_log.read_bytes().count(b"\n")
            before = meters.read()
            run_id = api.trigger({"customer_ids": names}, dag_id=dag_id)
            state = api.wait(run_id, timeout=1800, dag_id=dag_id)
            run = api.run(run_id, dag_id)
            time.sleep(3)  # the last task processes reaped and counted, statistics flushed
            after = meters.read()
            api_log_lines = api_log.read_bytes().count(b"\n") - log_lines_before
            tis = api.task_instances(run_id, dag_id)
            with psycopg.connect(meta_uri, autocommit=True) as conn:
                rows = {
                    table: conn.execute(
                        f"SELECT count(*) FROM {table} WHERE run_id = %s", (run_id,)
                    ).fetchone()[0]
                    for table in ("xcom", "rendered_task_instance_fields", "log")
                }
            calls: dict[str, int] = {}
            tokens = 0
            for n in names:
                now = sim.stats(n)
                for endpoint, count in now["requests"].items():
                    calls[endpoint] = (
                        calls.get(endpoint, 0) + count - calls_before[n]["requests"].get(endpoint, 0)
                    )
                tokens += now["tokens_minted"] - calls_before[n]["tokens_minted"]
            task_seconds: dict[str, list[float]] = {}
            queued: list[float] = []
            # a TI ran as a task process if it was sent to a worker; a TI the scheduler skips
            # gets a start_date too (TaskInstance.set_state), so that does not tell
            ran = [ti for ti in tis if ti["queued_when"] or ti["hostname"]]
            for ti in ran:
                start, end, when = parse(ti["start_date"]), parse(ti["end_date"]), parse(ti["queued_when"])
                if start and end:
                    task_seconds.setdefault(ti["task_id"].split(".")[-1], []).append(end - start)
                    if when and ti["map_index"] >= 0:
                        queued.append(start - when)
            result = {
                "phase": phase,
                "group": group,
                "customers": len(names),
                "customers_changed": len(changed),
                "customers_unchanged": len(names) - len(changed),
                "state": state,
                "wall": parse(run["end_date"]) - parse(run["queued_at"]),
                "task_instances": len(tis),
                "task_processes": len(ran),
                "with_start_date": sum(1 for ti in tis if ti["start_date"]),
                "states": {s: sum(1 for ti in tis if ti["state"] == s) for s in {ti["state"] for ti in tis}},
                "zuora_calls": sum(calls.values()),
                "calls": calls,
                "tokens_minted": tokens,
                "rows": rows,
                "task_seconds": task_seconds,
                "queued_to_start": queued,
                "slot_s": sum(sum(v) for v in task_seconds.values()),
                "dag_id": dag_id,
                "api_log_lines": api_log_lines,
                **delta(after, before),
            }
            if prediction is not None:
                result["predicted"] = prediction
            print(
                json.dumps({k: v for k, v in result.items() if k not in ("task_seconds", "queued_to_start")}),
                flush=True,
            )
            runs.append(result)
            return result

        # one customer, again and again: task durations without contention
        for _ in range(2):
            measured_run("probe", "probe", [])
            measured_run("probe", "probe", ["probe"])
        # calibration: unchanged, then every customer with one changed workflow
        for group in ("cal5", "cal20"):
            measured_run("calibration", group, [])
            measured_run("calibration", group, groups[group])
        for _ in range(2):  # unchanged, as a daily run finds most customers
            measured_run("batched", "batched", [], dag_id=BATCHED)
        units = fit_units(
            {
                **{part: load()[part] for part in ("library", "scheduler")},
                "cluster": {
                    "runs": runs,
                    "workflows": workflows,
                    "cores": os.cpu_count(),
                    "memory": memory.figures(),
                    "idle": idle_rates,
                },
            }
        )
        local = {"slots": 8, "machine_cores": os.cpu_count(), "latency_s": 0.0}
        for size in sizes:
            group = f"v{size}"
            changed = groups[group][: math.ceil(size / 4)]
            for tokens, which in ((1, []), (0, changed)):
                q = len(which) / size
                prediction = predict(
                    size,
                    workflows,
                    len(which) / (size * workflows),
                    units,
                    changed_customer_share=q,
                    tokens_per_customer=tokens,
                    **local,
                )
                measured_run("validation", group, which, prediction)
        memory.stop()
    return {
        "date": _common.utc_date(),
        "machine": machine,
        "workflows": workflows,
        "cores": os.cpu_count(),
        "runs": runs,
        "idle": idle_rates,
        "setup_s": setup_s,
        "total_s": time.monotonic() - started,
        "memory": memory.figures(),
    }


# --- results --------------------------------------------------------------------------------


def load() -> dict:
    return json.loads(CACHE.read_text()) if CACHE.exists() else {}


def save(part: str, value: dict) -> None:
    data = load()
    data[part] = value
    CACHE.write_text(json.dumps(data, indent=1))
    print(f"kept in {CACHE}")


SCENARIOS = [(c, w, p) for c in (1_000, 10_000) for w in (50, 500) for p in (0.01, 1.0)]


def fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


# the product's defaults with as many workers as asked for: Airflow's own limits bind
PRODUCTION = {"slots": 10**6}


def scenario_table(units: dict, scenarios=SCENARIOS, **deployment) -> list[str]:
    lines = [
        "| customers | workflows | changed | customers changed | task processes (TIs) | "
        "Zuora calls (per changed tenant) | worker slot-h | worker CPU core-h | warehouse PG "
        "core-h | metadata commits | scheduler: first pass s, loops | run at defaults (limit) "
        "| for 1 h: slots / pool / export TIs | workers x16 slots |",
        "|---" * 14 + "|",
    ]
    for c, w, p in scenarios:
        r = predict(c, w, p, units, **{**PRODUCTION, **deployment})
        h, sch = r["for_one_hour"], r["scheduler"]
        lines.append(
            f"| {c:,} | {w} | {p:.0%} | {fmt(r['customers_changed'])} | {fmt(r['task_processes'])} "
            f"({fmt(r['task_instances'])}) | {fmt(r['zuora_calls'])} ({fmt(r['calls_per_changed_tenant'])}) | "
            f"{r['slot_s'] / 3600:,.1f} | {r['cpu_by_component_s']['workers'] / 3600:,.2f} | "
            f"{r['warehouse_pg_cpu_s'] / 3600:,.2f} | {fmt(r['metadata']['commits'])} | "
            f"{fmt(sch['first_pass_s'])}, {fmt(sch['loops'])} | {r['wall_s'] / 3600:,.1f} h "
            f"({r['limiting'].split(' (')[0]}) | {h['task_slots']} / {h['pool_slots']} / "
            f"{h['export_tis']} | {h['workers']} |"
        )
    return lines


def plan_table(units: dict, scenarios=SCENARIOS, **deployment) -> list[str]:
    lines = [
        "| customers | workflows | changed | customers per mapped task | max_concurrency | slots = "
        "max_active_tasks = parallelism | pool zuora_api | export TIs | task processes (TIs) | "
        "worker slot-h | workers x16 slots (RAM each) | worker cores in all | scheduler mean pass s | "
        "predicted run (limit) |",
        "|---" * 14 + "|",
    ]
    for c, w, p in scenarios:
        st, r = plan(c, w, p, units, **deployment)
        lines.append(
            f"| {c:,} | {w} | {p:.0%} | {st['customers_per_task']} | {st['max_concurrency']} | {st['slots']} | "
            f"{st['pool_slots']} | {st['export_tis']} | {fmt(r['task_processes'])} ({fmt(r['task_instances'])}) | "
            f"{r['slot_s'] / 3600:,.1f} | {math.ceil(st['slots'] / 16)} ({r['for_one_hour']['worker_ram_mb'] / 1024:.1f} GB) | "
            f"{r['cpu_by_component_s']['workers'] / 2700:,.1f} | {r['scheduler']['mean_pass_s']:.1f} | "
            f"{r['wall_s'] / 60:.0f} min ({r['limiting'].split(' (')[0]}) |"
        )
    return lines


FLEET = (10_000, 50)  # the fixed deployment's batch: 10,000 customers in 200 batch tasks
FLEET_SLOTS = (16, 32, 64)  # workers of 16 slots: 1, 2, 4


def batches_section(u: dict) -> str:
    """RESULTS.md "Scale model: batches": the built batch shape for the 8 scenarios, the
    smallest deployment within 45 minutes (``plan``) and a fixed deployment over a day."""
    planned = [
        "| customers | workflows | changed | customers per task | max_concurrency | slots = pool = export "
        "limit = max_active_tasks = parallelism | workers x16 slots (RAM each) | task processes (TIs) | "
        "predicted run (limit) | worker slot-h | worker CPU core-h | scheduler: loops, mean decision "
        "pass s, cores | warehouse Postgres core-h (cores during the run) | warehouse connections "
        "(peak) | metadata commits | Zuora calls | API server CPU-h (processes) | first day after an "
        "API server restart, connections in the metadata DB: API server CPU-h (processes) |",
        "|---" * 18 + "|",
    ]
    for c, w, p in SCENARIOS:
        # a daily run: the API server's masker holds the passwords already, or never loads them
        # (the workers' secrets backend)
        st, r = plan(c, w, p, u, api_new_password_patterns_per_customer=0)
        first_st, first = plan(c, w, p, u)  # every password new to the API server
        sch = r["scheduler"]
        planned.append(
            f"| {c:,} | {w} | {p:.0%} | {st['customers_per_task']} | {st['max_concurrency']} | "
            f"{st['slots']} | {math.ceil(st['slots'] / 16)} ({r['for_one_hour']['worker_ram_mb'] / 1024:.1f} GB) | "
            f"{fmt(r['task_processes'])} ({fmt(r['task_instances'])}) | "
            f"{r['wall_s'] / 60:.0f} min ({r['limiting'].split(' (')[0]}) | "
            f"{r['slot_s'] / 3600:,.1f} | {r['cpu_by_component_s']['workers'] / 3600:,.2f} | "
            f"{fmt(sch['loops'])}, {sch['mean_pass_s']:.3f}, {sch['cores']:.2f} | "
            f"{r['warehouse_pg_cpu_s'] / 3600:,.2f} ({r['warehouse_pg_cpu_s'] / r['wall_s']:,.1f}) | "
            f"{st['slots']} | {fmt(r['metadata']['commits'])} | {fmt(r['zuora_calls'])} | "
            f"{r['cpu_by_component_s']['api-server'] / 3600:,.2f} ({st.get('api_servers', 1)}) | "
            f"{first['cpu_by_component_s']['api-server'] / 3600:,.2f} ({first_st.get('api_servers', 1)}) |"
        )
    customers, batch = FLEET
    fixed = [
        "| workflows | changed | "
        + " | ".join(f"{n} slots ({n // 16} worker{'s' * (n > 16)}): run, batch task" for n in FLEET_SLOTS)
        + " |",
        "|---" * (2 + len(FLEET_SLOTS)) + "|",
    ]
    for _, w, p in [sc for sc in SCENARIOS if sc[0] == customers]:
        cells = []
        for n in FLEET_SLOTS:
            r = predict(
                customers,
                w,
                p,
                u,
                customers_per_task=batch,
                slots=n,
                pool_slots=n,
                export_tis=n,
                max_active_tasks=n,
                parallelism=n,
                max_tis_per_query=0,
                api_new_password_patterns_per_customer=0,
            )
            over = " **over its timeout**" if r["over_timeout"] else ""
            cells.append(
                f"{r['wall_s'] / 3600:.1f} h, {r['task_s']['sync_customers (a batch)'] / 60:.0f} min{over}"
            )
        fixed.append(f"| {w} | {p:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(
        [
            f"Command: `{_common.command('scale_model.py', ['--part', 'batches'])}`; written "
            f"{_common.utc_date()}. Derived with `predict` and `plan` from measured units: "
            f"{u['source']}. The batch shape as built (`$ZUORA_SYNC_CUSTOMERS_PER_TASK` = B > 1): one "
            "`sync_customers` task per batch runs each customer's four stages in its process, one "
            "after the other; task processes = batches + 3, TIs = batches + 7 (the group's four tasks "
            "skipped); a customer costs its library work "
            "(our code, the warehouse, its Zuora calls at the assumed 0.5 s each) inside the task, "
            "Airflow's per-task overhead is paid once per batch; the batch task holds a pool slot and "
            "counts against the export limit. A daily run: the API server's secrets masker adds no "
            "pattern (it holds every password since its first day, or the workers read the "
            "connections from a secrets backend); the last column is the first day after an API "
            "server (re)start with the connections in the metadata database, every password new to "
            "it, with as many API server processes as `plan` needs for 45 minutes (one core each). "
            "How to read it: [SCALE.md](SCALE.md); the check against the 1,000-customer run: "
            '"Fleet run".',
            "",
            "**The smallest deployment within 45 minutes** (`plan`: B in 1, 5, 10, 25, 50, 100 and "
            "max_concurrency 4, 8, 16; every concurrency limit set to what the work needs; "
            "`max_tis_per_query` 256; the fewest worker slots that fit, each task within its "
            "`execution_timeout`):",
            "",
            *planned,
            "",
            f"**A fixed deployment over a day**: {customers:,} customers in batches of {batch} "
            f"({math.ceil(customers / batch)} batch tasks), the connections' default max_concurrency 4, "
            "pool = export limit = `max_active_tasks` = `parallelism` = the worker slots, "
            "`max_tis_per_query` 0; the predicted run and one batch task's time (its "
            f"`execution_timeout`: {60 + 2 * batch} min):",
            "",
            *fixed,
        ]
    )


def units_date(data: dict, part: str) -> str:
    return f"{data[part]['date']}"


def write(data: dict) -> None:
    units = fit_units(data)
    lib, cl = units["library"], units["cluster"]
    ll, cc = data["library"], data["cluster"]
    lines = [
        f"Command: `{_common.command('scale_model.py', [])}` (parts: `--part units`, `--part scheduler`, "
        "`--part cluster`, each kept in $TMPDIR/zws-scale-model.json; `--part write` writes this). "
        f"Library units: {ll['date']}, {ll['machine']}. Scheduler pass: {data['scheduler']['date']}, "
        f"{data['scheduler']['machine']}. Cluster runs: {cc['date']}, {cc['machine']} "
        f"({cc['total_s'] / 60:.0f} min in all, customer setup {cc['setup_s']:.0f} s). The model "
        "(`predict`, `plan`) and how to read it: [SCALE.md](SCALE.md).",
        "",
        "**Library, in-process** (the four stages of `zuora.sync`, embedded Postgres 16 fsync "
        "off, the simulator over HTTP without latency, default export mix; CPU-seconds of this "
        "process, of the Postgres server, of the simulator; calls counted by the simulator):",
        "",
        "| workflows | run | changed | exported | list / export / validate / upsert: our CPU s | "
        "our CPU s | Postgres CPU s | simulator CPU s | wall s | Zuora calls (token, pages, "
        "exports, version lists) |",
        "|---" * 10 + "|",
    ]
    for r in ll["runs"]:
        st = r["stages"]
        per_stage = (
            " / ".join(f"{st[s]['lib']:.2f}" for s in ("list", "export", "validate", "upsert"))
            if "export" in st
            else f"{st['list']['lib']:.2f} (list task finishes it)"
        )
        c = r["calls"]
        lines.append(
            f"| {r['workflows']} | {r['case']} | {r['changed']} | {r['exported']} | {per_stage} | "
            f"{r['cpu']['lib']:.2f} | {r['cpu']['pg']:.2f} | {r['cpu']['sim']:.2f} | "
            f"{r['cpu']['wall']:.2f} | {c.get('token', 0)}, {c.get('list', 0)}, "
            f"{c.get('export', 0)}, {c.get('versions', 0)} |"
        )
    repeats = "; ".join(
        f"{w} workflows: our CPU " + ", ".join(f"{x['lib']:.2f}" for x in xs) + " s"
        for w, xs in ll["unchanged_repeats"].items()
    )
    lines += [
        "",
        f"Unchanged runs repeated (the median is in the table): {repeats}. Fit over the "
        "runs after onboarding, CPU = fixed + per listed workflow x W + per changed workflow x k:",
        "",
        "| | fixed per customer | per listed workflow | per changed workflow |",
        "|---|---|---|---|",
        f"| our code (CPU) | {lib['cpu_fixed_s'] * 1000:.0f} ms | {lib['cpu_per_listed_s'] * 1000:.2f} ms | "
        f"{lib['cpu_per_changed_s'] * 1000:.2f} ms |",
        f"| warehouse Postgres (CPU) | {lib['pg_fixed_s'] * 1000:.0f} ms | {lib['pg_per_listed_s'] * 1000:.2f} ms | "
        f"{lib['pg_per_changed_s'] * 1000:.2f} ms |",
        "",
        "**Cluster** (the local Celery cluster, customers of "
        f"{cc['workflows']} workflows first synced in-process; every run triggered through the "
        "REST API with `customer_ids`). Idle, per second: Airflow "
        f"{sum(cc['idle']['components'].values()):.2f} CPU-s ("
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(cc["idle"]["components"].items()))
        + f"), Postgres {cc['idle']['postgres_cpu']:.2f} CPU-s, metadata "
        f"{cc['idle']['commits_per_s']:.1f} commits and {cc['idle']['rows_per_s']:.1f} rows written.",
        "",
        "| phase | customers (changed) | state | wall s | task processes (TIs) | Airflow CPU s | "
        "scheduler / api-server / workers CPU s | Postgres CPU s | Zuora calls (tokens) | "
        "metadata commits / rows written / KB | xcom / rtif / log rows | slot-s |",
        "|---" * 12 + "|",
    ]
    for r in cc["runs"]:
        comp = r["cpu_by_component"]
        m = r["meta"]
        lines.append(
            f"| {r['phase']} | {r['customers']} ({r['customers_changed']}) | {r['state']} | {r['wall']:.0f} | "
            f"{r['task_processes']} ({r['task_instances']}) | {airflow_cpu(r):.1f} | "
            f"{comp.get('scheduler', 0):.1f} / {comp.get('api-server', 0):.1f} / {comp.get('workers', 0):.1f} | "
            f"{r['postgres_cpu']:.1f} | {r['zuora_calls']} ({r['tokens_minted']}) | {m['commits']} / "
            f"{m['rows_written']} / {m['bytes'] / 1024:.0f} | {r['rows']['xcom']} / "
            f"{r['rows']['rendered_task_instance_fields']} / {r['rows']['log']} | {r['slot_s']:.0f} |"
        )
    a, comp = cl["airflow_cpu_s"], cl["cpu_by_component"]
    lines += [
        "",
        "Fitted on the calibration runs (value = per run + per unchanged customer x C_u + "
        "per changed customer x C_c; a changed customer here has 1 of its "
        f"{cc['workflows']} workflows changed):",
        "",
        "| unit | per run | per unchanged customer (1 task process) | per changed customer (4 task processes) |",
        "|---|---|---|---|",
    ]
    table = (
        [("Airflow CPU s, all processes", a)]
        + [(f"  {k} CPU s", v) for k, v in sorted(comp.items())]
        + [
            ("Postgres CPU s (metadata + warehouse)", cl["postgres_cpu_s"]),
            ("metadata commits", cl["metadata"]["commits"]),
            ("metadata rows written", cl["metadata"]["rows_written"]),
            ("metadata bytes", cl["metadata"]["bytes"]),
        ]
    )
    for name, v in table:
        digits = 2 if "CPU" in name else 0
        lines.append(
            f"| {name} | {v['run']:,.{digits}f} | {v['unchanged']:,.{digits}f} | {v['changed']:,.{digits}f} |"
        )
    slot, mem = cl["slot_s"], cc["memory"]
    lines += [
        "",
        "Task durations without contention (one customer, median of its runs, start -> end): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(slot.items()))
        + f"; queued -> start {cl['schedule_latency_s']:.2f} s. Local wall = "
        f"{cl['run_wall_s']:.1f} s + machine CPU / ({cc['cores']} cores x {cl['cpu_utilisation']:.2f}) "
        f"(fitted on the calibration runs). Worker memory (PSS): idle {mem['idle_worker_mb']:.0f} MB per "
        f"worker of 4 slots (main process {mem['worker_main_mb']:.0f} MB, "
        f"{mem['pool_process_mb']:.0f} MB per pool process), peak {mem['peak_worker_mb']:.0f} MB; "
        f"largest task process {mem['task_mb']:.0f} MB USS ({mem['task_rss_mb']:.0f} MB RSS).",
        "",
        "**Predicted vs measured** (validation runs; predictions from `predict` with the units above: "
        "the library's, the scheduler pass's and the cluster's fitted on the probe and calibration runs "
        "only, never on these; Zuora latency 0 as the simulator's; a quarter of the customers with one "
        "changed workflow in the second run of each size):",
        "",
        "| customers (changed) | task processes pred / meas | Zuora calls pred / meas | Airflow CPU s pred / meas | "
        "scheduler CPU s pred / meas | scheduler mean pass s (pass model) | "
        "wall s pred / meas (limit) | metadata commits pred / meas | state |",
        "|---" * 9 + "|",
    ]
    for r in cc["runs"]:
        if r["phase"] != "validation":
            continue
        p = predict(
            r["customers"],
            cc["workflows"],
            r["customers_changed"] / (r["customers"] * cc["workflows"]),
            units,
            changed_customer_share=r["customers_changed"] / r["customers"],
            tokens_per_customer=1 if not r["customers_changed"] else 0,
            slots=8,
            machine_cores=cc["cores"],
            latency_s=0.0,
        )
        lines.append(
            f"| {r['customers']} ({r['customers_changed']}) | {p['task_processes']:.0f} / {r['task_processes']} | "
            f"{p['zuora_calls']:.0f} / {r['zuora_calls']} | {p['airflow_cpu_s']:.0f} / {airflow_cpu(r):.0f} | "
            f"{p['cpu_by_component_s'].get('scheduler', 0):.0f} / {r['cpu_by_component'].get('scheduler', 0):.0f} | "
            f"{p['scheduler']['mean_pass_s']:.1f} | "
            f"{p['wall_s']:.0f} / {r['wall']:.0f} ({p['limiting'].split(' (')[0]}) | "
            f"{p['metadata']['commits']:.0f} / {r['meta']['commits']} | {r['state']} |"
        )
    sf = units["scheduler"]["wall"]
    lines += [
        "",
        "**The scheduler's decision pass** (`--part scheduler`: `DagRun.task_instance_scheduling_decisions` "
        "+ `schedule_tis`, what Airflow 3.3's scheduler runs on a running run every loop, timed in a child "
        "process against its own Postgres 16 with Airflow's metadata migrated and this DAG serialized; "
        f"{units_date(data, 'scheduler')}):",
        "",
        "| take | customers | state | TIs of the run | waiting (None) | finished | pass wall s | its CPU s | Postgres CPU s |",
        "|---" * 9 + "|",
    ]
    for x in data["scheduler"]["passes"]:
        lines.append(
            f"| {x.get('take', 1)} | {x['customers']} | {x['state']} | {x['task_instances']} | {x['waiting']} | {x['finished']} | "
            f"{x['wall']:.2f} | {x['cpu']:.2f} | {x['postgres_cpu']:.2f} |"
        )
    lines += [
        "",
        f"Fit (start and half-way passes): pass wall = waiting x "
        f"({sf['per_waiting_s'] * 1000:.2f} ms + {sf['per_waiting_finished_s'] * 1e6:.2f} µs x finished TIs). "
        "A loop queues at most `max_tis_per_query` TIs (and no more than free slots), so a run needs at least "
        "task processes / that many loops.",
        "",
    ]
    lines += [
        "",
        "**Scenarios** (`predict`, defaults of `DEPLOYMENT`: Zuora answers in 0.5 s "
        "(assumed), pool 8, 4 export tasks, `max_active_tasks_per_dag` 16, `max_tis_per_query` 16, "
        "workers as many as needed; changes spread uniformly over workflows; no re-export due):",
        "",
        *scenario_table(units),
        "",
        "**What to change for a run within 45 minutes** (`plan`: for 1 to 100 customers per mapped task "
        "and max_concurrency 4 / 8 / 16, every concurrency limit set to what the work needs, "
        "`max_tis_per_query` 256; the configuration with the fewest worker slots that fits, tasks within "
        "their execution_timeout):",
        "",
        *plan_table(units),
    ]
    body = "\n".join(lines)
    _common.write_section("Scale model", body)
    print(body)


def main() -> None:
    import sys

    if sys.argv[1:2] == ["--scheduler-child"]:
        scheduler_child(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", choices=("units", "scheduler", "cluster", "all", "write", "batches", "auto"), default="all"
    )
    parser.add_argument("--sizes", default="1,10,50,200", help="validation sizes (customers)")
    parser.add_argument("--workflows", type=int, default=4, help="per customer in the cluster runs")
    parser.add_argument(
        "--scheduler-sizes",
        default="100,300,1000",
        help="customers in the run whose scheduler decision pass is timed",
    )
    parser.add_argument("--no-wait", action="store_true", help=f"do not wait for {FLAG}")
    args = parser.parse_args()
    if args.part == "auto":  # measures and writes nothing: zuora.settings' AUTO_* numbers
        print(auto_section(units()))
        return
    if args.part == "batches":
        body = batches_section(units())
        _common.write_section("Scale model: batches", body)
        print(body)
        return
    if args.part in ("units", "all"):
        save("library", measure_library())
    if args.part in ("scheduler", "all"):
        save("scheduler", measure_scheduler([int(s) for s in args.scheduler_sizes.split(",")]))
    if args.part in ("cluster", "all"):
        if not {"library", "scheduler"} <= set(load()):
            raise SystemExit(
                "measure the library units and the scheduler first (--part units, --part scheduler)"
            )
        save(
            "cluster",
            measure_cluster([int(s) for s in args.sizes.split(",")], args.workflows, wait=not args.no_wait),
        )
    data = load()
    if {"library", "scheduler", "cluster"} <= set(data):
        write(data)
        UNITS_FILE.write_text(json.dumps(data, indent=1) + "\n")  # the units that back SCALE.md
        print(f"kept in {UNITS_FILE}")


if __name__ == "__main__":
    main()
