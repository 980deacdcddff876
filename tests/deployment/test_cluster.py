"""The product in its real runtime: a scheduler, an API server, a triggerer and two Celery
workers (`make cluster`), driven through the REST API as a person drives the UI. Runs happen
one at a time (max_active_runs=1), so each test waits for its own.

Every test of the cluster is in this module, so that it runs on one test worker (pytest-xdist,
``--dist loadfile``), which starts the cluster once and stops it when the module ends: its
runs, its StatsD metrics (every component sends them, with InfluxDB-style tags, to a UDP
receiver of the test), the Zuora sync page its api-server serves, and last a third worker
exporting OpenTelemetry.

The DAG runs its default shape ($ZUORA_SYNC_CUSTOMERS_PER_TASK=auto, the cluster's 4 export
slots): the runs of up to 4 customers have one group per customer; those of 5 (the retries,
the killed worker, the StatsD series) run in batches of 2, about one per slot."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from urllib.parse import quote

import psutil
import requests
from celery import Celery

from devstack.postgres import free_port
from tests.deployment.conftest import DAG_ID, SETTINGS
from tests.metrics import dashboard
from tests.metrics.ledger import assert_series_match_the_ledger, ledger
from tests.metrics.receivers import OtlpReceiver

GROUP = "customer_sync"
BATCH = "sync_customers"


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def mapped(tis: list[dict], stage: str) -> list[dict]:
    return [ti for ti in tis if ti["task_id"] == f"{GROUP}.{stage}"]


def max_overlap(tis: list[dict]) -> int:
    """Most task instances running at the same moment, from their start and end times."""
    events = sorted(
        [(parse(t["start_date"]), 1) for t in tis] + [(parse(t["end_date"]), -1) for t in tis],
        key=lambda e: (e[0], e[1]),
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def batch_tasks(tis: list[dict]) -> dict[str, dict]:
    """The run's sync_customers task instances by grid label (a batch's customers' range)."""
    return {ti["rendered_map_index"]: ti for ti in tis if ti["task_id"] == BATCH}


def add_fleet(deployment, prefix: str, count: int, **tenant) -> list[str]:
    """``count`` more customers of 2 workflows, named ``prefix`` + c, d, e...: with the
    customers a test adds itself, enough for the default (auto) to batch its run."""
    names = [f"{prefix}{letter}" for letter in "cdefgh"[:count]]
    for name in names:
        deployment.add_customer(name, workflows=2, **tenant)
    return names


def kill_worker(deployment, name: str) -> None:
    """SIGKILL a Celery worker and every process under it, as a lost machine or container: the
    task processes too, which Airflow 3.3's supervisor puts in process groups of their own
    (killing the worker's group alone leaves them running, orphaned)."""
    worker = psutil.Process(deployment.component_pid(name))
    for process in [worker, *worker.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def wait_for_state(deployment, run_id: str, stage: str, state: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ti in mapped(deployment.api.task_instances(run_id), stage):
            if ti["state"] == state:
                return ti
        time.sleep(0.5)
    raise AssertionError(f"no {stage} task {state} within {timeout} s")


def wait_for_a_call(deployment, customer: str, timeout: float = 60) -> None:
    """Until the customer's simulator tenant has a request in flight: a task is in a Zuora call."""
    deadline = time.monotonic() + timeout
    while not deployment.sim.stats(customer)["in_flight"]:
        assert time.monotonic() < deadline, f"no call of {customer} in flight within {timeout} s"
        time.sleep(0.2)


def test_chosen_customers_sync_within_the_pool_through_a_scheduler_restart(deployment):
    api = deployment.api
    api.call("PATCH", "/pools/zuora_api", json={"pool": "zuora_api", "slots": 2, "include_deferred": False})
    chosen = [f"p{n}" for n in range(1, 5)]
    for customer in chosen + ["other"]:
        deployment.add_customer(customer, workflows=6, latency_ms=300)
    run_id = api.trigger({"customer_ids": chosen, "full_refresh": True})
    wait_for_state(deployment, run_id, "list_workflows", "running")
    os.killpg(deployment.component_pid("scheduler"), signal.SIGKILL)  # the cluster restarts it
    assert api.wait(run_id, timeout=300) == "success"
    api.call("PATCH", "/pools/zuora_api", json={"pool": "zuora_api", "slots": 8, "include_deferred": False})

    tis = api.task_instances(run_id)
    for stage in ("list_workflows", "export_workflows", "validate", "upsert"):
        assert sorted(t["rendered_map_index"] for t in mapped(tis, stage)) == chosen, stage
    assert max_overlap(mapped(tis, "list_workflows") + mapped(tis, "export_workflows")) <= 2
    assert {t["hostname"] for t in tis if t["hostname"]} <= {"worker1", "worker2"}
    # a run for a few named customers keeps a group each: the batch task is mapped over none
    assert [(t["map_index"], t["state"]) for t in tis if t["task_id"] == BATCH] == [(-1, "skipped")]
    assert deployment.query(
        "SELECT customer_id, status, listed, stored FROM zuora.sync_runs WHERE run_id = %s ORDER BY 1", run_id
    ) == [(c, "success", 6, 6) for c in chosen]
    for customer in chosen:
        stats = deployment.sim.stats(customer)
        assert stats["tokens_minted"] == 1, (customer, stats)  # shared by all its task processes
        assert stats["max_in_flight"] <= 4  # the connection's max_concurrency
    # nothing duplicated by the restart: one insert per workflow, nothing else
    assert deployment.query(
        "SELECT customer_id, change_kind, count(*) FROM zuora.workflow_history GROUP BY 1, 2 ORDER BY 1"
    ) == [(c, "insert", 6) for c in chosen]


def test_transient_errors_are_retried_on_schedule_and_permanent_ones_dead_lettered(deployment):
    """In batches (5 customers): badcreds and flaky share the first. A permanent failure is
    dead-lettered at once, a transient one retries the batch task on schedule, and each retry
    syncs only the customers still open."""
    api = deployment.api
    flaky = deployment.add_customer("flaky", workflows=3)
    deployment.sim.script("flaky", [{"endpoint": "list", "kind": "status", "status": 503, "count": 2}])
    deployment.add_customer("badcreds", secret="not-the-secret", workflows=2)
    steady = ["steady", *add_fleet(deployment, "steady_", 2)]
    deployment.add_customer("steady", workflows=2)
    run_id = api.trigger({"customer_ids": ["flaky", "badcreds", *steady]})
    assert api.wait(run_id, timeout=240) == "failed"  # summarize fails a run with a failure

    tis = api.task_instances(run_id)
    batches = batch_tasks(tis)
    assert {t["state"] for t in tis if t["task_id"].startswith(f"{GROUP}.")} == {"skipped"}
    assert sorted(batches) == ["badcreds … flaky (2)", "steady … steady_c (2)", "steady_d"]
    first = batches["badcreds … flaky (2)"]
    # tries 1 and 2: flaky's 503 (badcreds dead-lettered in try 1); try 3: flaky synced, the
    # task fails naming badcreds, failed for good
    assert (first["state"], first["try_number"]) == ("failed", 3)
    tries = api.tries(run_id, BATCH, first["map_index"])
    # the tries endpoint: the two failed tries (task instance history) and the current one
    assert [(t["try_number"], t["state"]) for t in sorted(tries, key=lambda t: t["try_number"])] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    starts = sorted(parse(t["start_date"]) for t in tries)
    delay = timedelta(seconds=float(SETTINGS["ZUORA_SYNC_RETRY_DELAYS"].split(",")[0]))
    assert len(starts) == 3 and all(b - a >= delay for a, b in pairwise(starts))
    assert {
        (t["state"], t["try_number"]) for label, t in batches.items() if label != first["rendered_map_index"]
    } == {("success", 1)}
    assert deployment.sim.stats("flaky")["requests"]["list"] == 3
    assert deployment.sim.stats("badcreds")["requests"] == {"token": 1}  # not retried
    assert flaky["workflow_count"] == 3

    outcome = dict(
        deployment.query("SELECT customer_id, status FROM zuora.sync_runs WHERE run_id = %s", run_id)
    )
    assert outcome == {"flaky": "success", "badcreds": "failed", **dict.fromkeys(steady, "success")}
    [(stage, error_type, attempts, message)] = deployment.query(
        "SELECT stage, error_type, attempts, message FROM zuora.open_dead_letters WHERE customer_id = 'badcreds'"
    )
    assert (stage, error_type, attempts) == ("list", "ZuoraAuthError", 1)
    assert "refused the client credentials" in message and "not-the-secret" not in message
    deadline = time.monotonic() + 30
    while not any(
        a["kind"] == "task_failed"
        and a["details"].get("batch") == "badcreds … flaky (2)"
        and "failed for good: badcreds" in str(a["details"]["error"])
        for a in deployment.alerts
    ):
        assert time.monotonic() < deadline, deployment.alerts
        time.sleep(0.5)
    assert not any("not-the-secret" in str(a) for a in deployment.alerts)


def test_a_worker_killed_mid_batch_is_retried_for_its_open_customers_and_the_deadline_alerts(deployment):
    """In batches (5 customers): slow shares the first batch with killa, synced before it."""
    api = deployment.api
    # an export of about 6 s (12 exports and 12 version lists, 4 at a time, 1 s each), so the
    # run, with the lost try noticed (~10 s) and retried, takes over its 15-second deadline
    deployment.add_customer("killa", workflows=2)
    deployment.add_customer("slow", workflows=12, latency_ms=1000)
    others = add_fleet(deployment, "slow_", 3)
    run_id = api.trigger({"customer_ids": ["killa", "slow", *others]})
    deadline = time.monotonic() + 120
    while not deployment.sim.stats("slow")["requests"].get("export"):
        assert time.monotonic() < deadline, "slow's export never started"
        time.sleep(0.2)
    wait_for_a_call(deployment, "slow")  # the batch task is exporting slow's workflows
    [batch] = [ti for ti in api.task_instances(run_id) if ti["task_id"] == BATCH and ti["map_index"] == 0]
    assert batch["state"] == "running"
    kill_worker(deployment, batch["hostname"])
    assert api.wait(run_id, timeout=300) == "success"

    batches = batch_tasks(api.task_instances(run_id))
    assert (batches["killa … slow (2)"]["state"], batches["killa … slow (2)"]["try_number"]) == ("success", 2)
    # the retry synced only slow, still open: killa was done before the worker died
    assert deployment.sim.stats("killa")["requests"]["list"] == 1
    assert deployment.sim.stats("slow")["requests"]["list"] == 2
    rows = deployment.query(
        "SELECT customer_id, status, listed, stored, dead_lettered FROM zuora.sync_runs WHERE run_id = %s",
        run_id,
    )
    assert ("slow", "success", 12, 12, 0) in rows
    assert {status for _, status, *_ in rows} == {"success"} and len(rows) == 5
    for table in ("staging_list_items", "staging_exports", "staging_workflows", "staging_listings"):
        assert deployment.query(f"SELECT count(*) FROM zuora.{table} WHERE run_id = %s", run_id) == [(0,)], (
            table
        )
    # the run took over its 15-second deadline: the triggerer alerted, delivered and stored
    stored_alerts = deployment.query(
        "SELECT details ->> 'run_id', channel FROM zuora.alerts WHERE kind = 'deadline_missed'"
    )
    assert (run_id, "http") in stored_alerts
    assert any(a["kind"] == "deadline_missed" and a["details"]["run_id"] == run_id for a in deployment.alerts)


def test_a_customer_lost_on_its_last_try_ends_dead_lettered_and_alerted(deployment):
    api = deployment.api
    deployment.add_customer("doomed", workflows=2)
    deployment.add_customer("fine", workflows=2)
    # three tries fail fast and are retried; the last one hangs in the list call, and its
    # worker is killed there: no exception, so nothing in the task runner sees the failure
    deployment.sim.script(
        "doomed",
        [
            {"endpoint": "list", "kind": "status", "status": 503, "count": 3},
            {"endpoint": "list", "kind": "hang", "seconds": 60},
        ],
    )
    run_id = api.trigger({"customer_ids": ["doomed", "fine"]})
    deadline = time.monotonic() + 120
    while not (
        last := [
            t
            for t in mapped(api.task_instances(run_id), "list_workflows")
            if t["rendered_map_index"] == "doomed" and t["state"] == "running" and t["try_number"] == 4
        ]
    ):
        assert time.monotonic() < deadline, "the list task never ran its last try"
        time.sleep(0.5)
    wait_for_a_call(deployment, "doomed")  # the try is waiting for its list page
    kill_worker(deployment, last[0]["hostname"])
    assert api.wait(run_id, timeout=240) == "failed"

    states = {
        (t["task_id"], t["rendered_map_index"]): (t["state"], t["try_number"])
        for t in api.task_instances(run_id)
        if t["map_index"] >= 0
    }
    assert states[(f"{GROUP}.list_workflows", "doomed")] == ("failed", 4)
    assert states[(f"{GROUP}.upsert", "fine")][0] == "success"
    assert deployment.query(
        "SELECT customer_id, status FROM zuora.sync_runs WHERE run_id = %s ORDER BY 1", run_id
    ) == [("doomed", "failed"), ("fine", "success")]
    assert deployment.query(
        "SELECT stage, error_type FROM zuora.dead_letters WHERE customer_id = 'doomed' AND run_id = %s",
        run_id,
    ) == [("task", "TaskLost")]
    deadline = time.monotonic() + 30
    while not any(
        a["kind"] == "task_failed"
        and a["details"]["run_id"] == run_id
        and "doomed" in str(a["details"]["error"])
        for a in deployment.alerts
    ):
        assert time.monotonic() < deadline, deployment.alerts
        time.sleep(0.5)


def test_a_three_day_backfill_runs_one_day_at_a_time(deployment):
    api = deployment.api
    deployment.add_customer("daily", workflows=4)
    before = deployment.query("SELECT count(*) FROM zuora.workflow_history")[0][0]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    backfill = api.call(
        "POST",
        "/backfills",
        json={
            "dag_id": DAG_ID,
            "from_date": (today - timedelta(days=4)).isoformat(),
            "to_date": (today - timedelta(days=1, hours=12)).isoformat(),
            "max_active_runs": 1,
            "dag_run_conf": {"customer_ids": ["daily"]},
        },
    )
    deadline = time.monotonic() + 240
    while True:
        runs = [
            r
            for r in api.call(
                "GET", f"/dags/{DAG_ID}/dagRuns", params={"run_type": "backfill", "limit": 100}
            )["dag_runs"]
        ]
        if len(runs) == 3 and all(r["state"] in ("success", "failed") for r in runs):
            break
        assert time.monotonic() < deadline, runs
        time.sleep(1)
    assert [r["state"] for r in runs] == ["success"] * 3
    spans = sorted((parse(r["start_date"]), parse(r["end_date"])) for r in runs)
    assert all(end <= next_start for (_, end), (next_start, _) in pairwise(spans))
    assert backfill["max_active_runs"] == 1
    # the first run inserted the 4 workflows; the next two found nothing changed, so each
    # synced the customer in its list task (skipped, with the reason) and started nothing else
    assert deployment.query("SELECT count(*) FROM zuora.workflow_history")[0][0] == before + 4
    first, *later = sorted(runs, key=lambda r: r["logical_date"])
    assert {t["state"] for t in mapped(api.task_instances(first["dag_run_id"]), "upsert")} == {"success"}
    for run in later:
        stages = [t for t in api.task_instances(run["dag_run_id"]) if t["map_index"] >= 0]
        assert {(t["task_id"], t["state"]) for t in stages} == {
            (f"{GROUP}.{stage}", "skipped")
            for stage in ("list_workflows", "export_workflows", "validate", "upsert")
        }
        assert [t["task_id"] for t in stages if t["hostname"]] == [f"{GROUP}.list_workflows"]
    assert deployment.query(
        "SELECT count(*) FROM zuora.sync_runs WHERE customer_id = 'daily' AND status = 'success'"
    ) == [(3,)]


def test_a_restore_triggered_from_the_ui_is_a_dry_run_until_applied(deployment):
    api = deployment.api
    deployment.add_customer("restorable", workflows=2)
    assert api.wait(api.trigger({"customer_ids": ["restorable"]}), timeout=180) == "success"
    zuora_id, version = deployment.query(
        "SELECT zuora_id, version FROM zuora.workflow_versions WHERE customer_id = 'restorable' "
        "AND original_encrypted IS NOT NULL ORDER BY zuora_id, version_order LIMIT 1"
    )[0]
    api.call("PATCH", "/dags/zuora_workflow_restore", json={"is_paused": False})
    conf = {"customer_id": "restorable", "zuora_id": zuora_id, "version": version}
    for run_conf in (conf, {**conf, "apply": True}):
        run_id = api.trigger(run_conf, dag_id="zuora_workflow_restore")
        assert api.wait(run_id, timeout=120, dag_id="zuora_workflow_restore") == "success"
    assert deployment.query(
        "SELECT status, applied, requested_by, source_version FROM zuora.restores "
        "WHERE source_customer_id = 'restorable' ORDER BY restore_id"
    ) == [("planned", False, "admin", version), ("imported", True, "admin", version)]
    imports = deployment.sim.imports("restorable")  # the tenant is named after it
    assert [(i["kind"], i["workflow_id"], i["replay"]) for i in imports] == [("version", zuora_id, False)]


def test_the_trigger_forms_offer_the_params_as_the_ui_reads_them(deployment):
    """The UI marks a param required unless its schema type admits null."""
    params = deployment.api.call("GET", f"/dags/{DAG_ID}/details")["params"]
    assert set(params) == {"customer_ids", "full_refresh"}
    for name, param in params.items():
        assert "null" in param["schema"]["type"], (name, param)
        assert param["description"], name
    assert params["customer_ids"]["value"] == [] and params["full_refresh"]["value"] is False
    restore = deployment.api.call("GET", "/dags/zuora_workflow_restore/details")["params"]
    assert restore["apply"]["value"] is False and restore["confirm_production"]["value"] is False


def test_the_monitor_reads_the_real_queue_through_the_airflow_api(deployment, monkeypatch):
    import json

    import psycopg

    from zuora import monitor

    api = deployment.api
    base = deployment.info["api_url"]
    connection = {
        "conn_type": "http",
        "host": base,
        "login": "admin",
        "password": json.loads(open(deployment.info["password_file"]).read())["admin"],
    }
    api.call("POST", "/connections", json={"connection_id": "airflow_api", **connection})
    # in the cluster: the monitor DAG reads the queue through the API without failing (its
    # own other task may be queued meanwhile: 5 is over anything this test leaves queued)
    thresholds = {"key": "zuora_monitor_thresholds", "value": '{"max_queued_task_instances": 5}'}
    api.call("POST", "/variables", json=thresholds)
    api.call("PATCH", "/dags/zuora_sync_monitor", json={"is_paused": False})
    run_id = api.trigger({}, dag_id="zuora_sync_monitor")
    assert api.wait(run_id, timeout=180, dag_id="zuora_sync_monitor") == "success"
    assert not deployment.query("SELECT 1 FROM zuora.alerts WHERE kind IN ('queue_backlog', 'check_failed')")
    api.call("PATCH", "/dags/zuora_sync_monitor", json={"is_paused": True})
    deadline = time.monotonic() + 120  # the scheduled run unpausing created is done too
    while any(
        r["state"] not in ("success", "failed")
        for r in api.call("GET", "/dags/zuora_sync_monitor/dagRuns")["dag_runs"]
    ):
        assert time.monotonic() < deadline, "a monitor run is still going"
        time.sleep(0.5)

    # a real backlog: both workers frozen, a sync run's first task is queued and stays so
    deployment.add_customer("queued", workflows=1)
    workers = [deployment.component_pid(name) for name in ("worker1", "worker2")]

    def queued_now() -> int:
        return api.call("GET", "/dags/~/dagRuns/~/taskInstances", params={"state": "queued"})["total_entries"]

    for pid in workers:
        os.killpg(pid, signal.SIGSTOP)
    try:
        sync_run = api.trigger({"customer_ids": ["queued"]})
        deadline = time.monotonic() + 60
        while not (queued := queued_now()):
            assert time.monotonic() < deadline, "nothing was queued"
            time.sleep(0.5)
        time.sleep(3)  # settled: with no worker running, nothing more becomes queued
        assert queued_now() == queued
        monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(connection))
        with psycopg.connect(deployment.info["warehouse_uri"]) as conn:
            over = monitor.check(conn, monitor.Thresholds(max_queued_task_instances=queued - 1))
            under = monitor.check(conn, monitor.Thresholds(max_queued_task_instances=queued))
    finally:
        for pid in workers:
            os.killpg(pid, signal.SIGCONT)
    backlog = [a.details for a in over if a.kind in ("queue_backlog", "check_failed")]
    assert backlog == [{"queued": queued, "threshold": queued - 1}]
    assert not [a for a in under if a.kind in ("queue_backlog", "check_failed")]
    assert api.wait(sync_run, timeout=180) == "success"  # the backlog drains once the workers run


def test_a_runs_series_from_the_workers_match_the_ledger_and_feed_the_dashboard(deployment):
    """In batches (5 customers): the series stay per customer."""
    api, statsd = deployment.api, deployment.statsd
    deployment.add_customer("metered", workflows=4)
    deployment.add_customer("metered_bad", secret="not-the-secret", workflows=2)
    others = add_fleet(deployment, "metered_", 3)
    mark = len(statsd.lines)
    run_id = api.trigger({"customer_ids": ["metered", "metered_bad", *others]})
    assert api.wait(run_id, timeout=240) == "failed"  # metered_bad's credentials are refused
    assert sorted(batch_tasks(api.task_instances(run_id))) == [
        "metered … metered_bad (2)",
        "metered_c … metered_d (2)",
        "metered_e",
    ]
    rows = ledger(deployment.info["warehouse_uri"], run_id)
    assert [(r[0], r[1]) for r in rows] == [
        ("metered", "success"),
        ("metered_bad", "failed"),
        *((name, "success") for name in others),
    ]

    samples = statsd.samples(settle=2, since=mark)
    assert_series_match_the_ledger(samples, rows, failed_customer="metered_bad")
    # Airflow's own task metrics of the same run, from the workers' task runners: per batch task
    finished = samples.of("ti.finish", dag_id="zuora_workflow_sync")
    assert {s.tags["task_id"] for s in finished} >= {BATCH, "summarize"}
    assert samples.of("task.duration", dag_id="zuora_workflow_sync")

    # the monitor, hourly in production, triggered here with the cluster's own API as its queue;
    # metered has a task allowance, so its usage share is one of the monitor's series
    assert deployment.query(
        "UPDATE zuora.customers SET task_allowance = 1000000 WHERE customer_id = 'metered' RETURNING 1"
    ) == [(1,)]
    _airflow_api_connection(deployment)
    api.call("PATCH", "/dags/zuora_sync_monitor", json={"is_paused": False})
    mark = len(statsd.lines)
    monitor_run = api.trigger({}, dag_id="zuora_sync_monitor")
    assert api.wait(monitor_run, timeout=180, dag_id="zuora_sync_monitor") == "success"
    monitor = statsd.samples(settle=2, since=mark)
    gauges = {s.name: s.value for s in monitor if s.name.startswith("zuora_sync.monitor.")}
    [(ended, failed, open_letters)] = deployment.query(
        """SELECT count(*) FILTER (WHERE finished_at > now() - interval '60 minutes'),
                  count(*) FILTER (WHERE status = 'failed' AND finished_at > now() - interval '60 minutes'),
                  (SELECT count(*) FROM zuora.dead_letters WHERE resolved_at IS NULL)
             FROM zuora.sync_runs"""
    )
    assert gauges["zuora_sync.monitor.customer_syncs"] == ended
    assert abs(gauges["zuora_sync.monitor.failure_rate"] - failed / ended) < 1e-9
    assert gauges["zuora_sync.monitor.open_dead_letters"] == open_letters
    assert gauges["zuora_sync.monitor.queued_task_instances"] >= 0
    assert "zuora_sync.monitor.slowest_sync_seconds" in gauges
    assert "zuora_sync.monitor.rate_limited" in gauges

    # every series the dashboard queries arrived from this cluster (alerts: task_failed for
    # metered_bad from the worker, the monitor's from its task)
    everything = statsd.samples(settle=0)
    assert everything.by_tag("zuora_sync.alerts.raised", "kind").get("task_failed", 0) >= 1
    emitted = {dashboard.prometheus_name(s.name, s.kind) for s in everything}
    missing = dashboard.queried_metrics() - emitted
    assert not missing, f"the dashboard queries series the cluster never sent: {sorted(missing)}"


def _airflow_api_connection(deployment) -> None:
    """The monitor's ``airflow_api`` connection to the cluster's API (test_cluster may have
    made it already)."""
    password = json.loads(open(deployment.info["password_file"]).read())["admin"]
    try:
        deployment.api.call(
            "POST",
            "/connections",
            json={
                "connection_id": "airflow_api",
                "conn_type": "http",
                "host": deployment.info["api_url"],
                "login": "admin",
                "password": password,
            },
        )
    except RuntimeError as exc:
        assert "409" in str(exc), exc  # already there


def test_the_api_server_serves_the_sync_page_to_a_jwt(deployment):
    api = deployment.api
    page = f"{api.base}/zuora-sync"
    ours = [p for p in api.call("GET", "/plugins")["plugins"] if p["name"] == "zuora_sync"]
    assert ours and {v["destination"] for v in ours[0]["external_views"]} == {"nav", "dag"}
    assert requests.get(f"{page}/", timeout=30).status_code == 401
    assert requests.get(f"{page}/", timeout=30, headers={"Authorization": "Bearer x.y.z"}).status_code in (
        401,
        403,
    )

    customers = ["page1", "page2"]
    for customer in customers:
        deployment.add_customer(customer, workflows=3)
    run_id = api.trigger({"customer_ids": customers})
    assert api.wait(run_id) == "success"

    html = api.session.get(f"{page}/", timeout=30)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert '<a href="/zuora-sync/customers/page2">page2</a>' in html.text

    fleet = api.session.get(f"{page}/api/fleet", params={"q": "page"}, timeout=30).json()
    rows = {row["customer_id"]: row for row in fleet["customers"]}
    ledger = {
        customer: (run, status, calls)
        for customer, run, status, calls in deployment.query(
            """SELECT DISTINCT ON (customer_id) customer_id, run_id, status, api_requests
                 FROM zuora.sync_runs WHERE customer_id = ANY(%s)
                ORDER BY customer_id, started_at DESC""",
            customers,
        )
    }
    assert set(rows) == set(customers)
    for customer in customers:
        row = rows[customer]
        assert (row["last_run_id"], row["last_status"], row["last_api_requests"]) == ledger[customer]
        assert ledger[customer][0] == run_id and row["health"] == "ok"

    # the customer's view links to its own task instances in the grid
    tis = {
        ti["rendered_map_index"]: ti["map_index"]
        for ti in api.task_instances(run_id)
        if ti["task_id"] == "customer_sync.list_workflows"
    }
    view = api.session.get(f"{page}/customers/{'page2'}", timeout=30)
    assert view.status_code == 200
    run_link = f"/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"
    assert f"{run_link}/tasks/customer_sync.list_workflows/mapped/{tis['page2']}" in view.text
    synced = api.session.get(f"{page}/api/customers/{'page2'}", timeout=30).json()
    assert synced["syncs"][0]["run_id"] == run_id and synced["syncs"][0]["map_index"] == tis["page2"]


@contextlib.contextmanager
def the_only_worker(deployment, name: str, **settings: str):
    """A worker ``name`` joins with the cluster's configuration plus ``settings``; the cluster's
    own workers stop consuming (Celery's remote control) until it has left, so whatever is
    queued meanwhile waits for it. (The configuration: the scheduler's environment, which every
    component gets; a Celery worker's own is hidden by its process title.)"""
    env = psutil.Process(deployment.component_pid("scheduler")).environ() | settings
    env |= {"ZWS_HOSTNAME": name, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
    control = Celery(broker=env["AIRFLOW__CELERY__BROKER_URL"]).control
    queue = env.get("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "default")
    own = [f"worker{n}@{socket.gethostname()}" for n in (1, 2)]  # --celery-hostname worker<n>@%h
    stopped = control.cancel_consumer(queue, destination=own, reply=True, timeout=30)
    assert sorted(node for reply in stopped for node in reply) == own, stopped
    log = deployment.home / "logs" / f"{name}.log"
    with open(log, "ab") as out:
        worker = subprocess.Popen(
            ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h"],
            env=env,
            cwd=deployment.home,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
        assert worker.poll() is None, f"{name} exited with {worker.returncode}: {log.read_text()[-3000:]}"
    finally:
        control.add_consumer(queue, destination=own, reply=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)  # its tasks are done: nothing to shut down
        worker.wait()


def test_otlp_from_a_workers_task_processes_matches_the_ledger(deployment):
    """The OpenTelemetry pipeline where the series leave worker task processes (each flushes
    when it ends): a worker with Airflow's OTel metrics on, exporting over OTLP/HTTP to an
    endpoint of the test that decodes ``ExportMetricsServiceRequest``. (StatsD and OTel are
    exclusive in an Airflow process, so the cluster's StatsD workers sit this run out.)"""
    otlp = OtlpReceiver()
    try:
        with the_only_worker(
            deployment,
            "worker3",
            AIRFLOW__METRICS__STATSD_ON="False",
            AIRFLOW__METRICS__OTEL_ON="True",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=otlp.endpoint,
        ):
            deployment.add_customer("otel", workflows=4)  # while the worker starts
            deployment.add_customer("otel_bad", secret="not-the-secret", workflows=2)
            run_id = deployment.api.trigger({"customer_ids": ["otel", "otel_bad"]})
            assert deployment.api.wait(run_id, timeout=240) == "failed"
            deadline = time.monotonic() + 60  # each task process exports when it exits
            while not otlp.samples().of("zuora_sync.run.finished", outcome="failed"):
                assert time.monotonic() < deadline, "no OTLP export from the summarize task's process"
                time.sleep(0.5)
        tis = deployment.api.task_instances(run_id)
        assert {t["hostname"] for t in tis if t["hostname"]} == {"worker3"}
        rows = ledger(deployment.info["warehouse_uri"], run_id)
        assert [(r[0], r[1]) for r in rows] == [("otel", "success"), ("otel_bad", "failed")]
        samples = otlp.samples()
        assert_series_match_the_ledger(samples, rows, failed_customer="otel_bad")
        # the fleet-wide histogram, by environment (each task process's last export)
        [duration] = samples.of("zuora_sync.customer_sync.duration", environment="sandbox")
        assert duration.unit == "ms" and duration.count >= 1
        assert samples.of("ti.finish", dag_id=DAG_ID), "Airflow's own task metrics, same pipeline"
    finally:
        otlp.close()
