"""The sync's metrics under the local Celery cluster, where they leave worker task processes.

StatsD: the session's cluster (tests/deployment/conftest.py) sends every component's metrics,
with InfluxDB-style tags, to a UDP receiver of the test. A run's series match its
zuora.sync_runs rows customer by customer; the monitor's gauges match the warehouse and the
real queue; and every metric the shipped dashboard queries arrived.
OpenTelemetry: a second cluster of this module (one worker) exports over OTLP/HTTP to an
endpoint of the test, which decodes ``ExportMetricsServiceRequest``: what the worker task
processes flushed when they ended matches the ledger the same way, tags as attributes."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.deployment.conftest import DAG_ID, SETTINGS, running_cluster
from tests.metrics import dashboard
from tests.metrics.ledger import assert_series_match_the_ledger, ledger
from tests.metrics.receivers import OtlpReceiver


def test_a_runs_series_from_the_workers_match_the_ledger_and_feed_the_dashboard(deployment):
    api, statsd = deployment.api, deployment.statsd
    deployment.add_customer("metered", workflows=4)
    deployment.add_customer("metered_bad", secret="not-the-secret", workflows=2)
    mark = len(statsd.lines)
    run_id = api.trigger({"customer_ids": ["metered", "metered_bad"]})
    assert api.wait(run_id, timeout=240) == "failed"  # metered_bad's credentials are refused
    rows = ledger(deployment.info["warehouse_uri"], run_id)
    assert [(r[0], r[1]) for r in rows] == [("metered", "success"), ("metered_bad", "failed")]

    samples = statsd.samples(settle=2, since=mark)
    assert_series_match_the_ledger(samples, rows, failed_customer="metered_bad")
    # Airflow's own task metrics of the same run, from the workers' task runners
    finished = samples.of("ti.finish", dag_id="zuora_workflow_sync")
    assert {s.tags["task_id"] for s in finished} >= {"customer_sync.list_workflows", "summarize"}
    assert samples.of("task.duration", dag_id="zuora_workflow_sync")

    # the monitor, hourly in production, triggered here with the cluster's own API as its queue
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


@pytest.fixture(scope="module")
def otel_cluster(tmp_path_factory):
    """(Deployment, OtlpReceiver): `python -m devstack.cluster --no-demo --workers 1` with
    Airflow's OpenTelemetry metrics on, to the receiver; its first scheduled run done."""
    otlp = OtlpReceiver()
    home = tmp_path_factory.mktemp("otel-cluster")
    env = {
        **os.environ,
        **{k: v for k, v in SETTINGS.items() if not k.startswith("AIRFLOW__METRICS__")},
        "ZUORA_SYNC_DEADLINE_MINUTES": "0",
        "AIRFLOW__METRICS__OTEL_ON": "True",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": otlp.endpoint,
    }
    try:
        with running_cluster(home, env, "--workers", "1") as deployment:
            yield deployment, otlp
    finally:
        otlp.close()


def test_otlp_from_the_workers_task_processes_matches_the_ledger(otel_cluster):
    deployment, otlp = otel_cluster
    deployment.add_customer("metered", workflows=4)
    deployment.add_customer("metered_bad", secret="not-the-secret", workflows=2)
    run_id = deployment.api.trigger({"customer_ids": ["metered", "metered_bad"]})
    assert deployment.api.wait(run_id, timeout=240) == "failed"
    rows = ledger(deployment.info["warehouse_uri"], run_id)
    assert [(r[0], r[1]) for r in rows] == [("metered", "success"), ("metered_bad", "failed")]

    deadline = time.monotonic() + 60  # each task process exports when it exits
    while not otlp.samples().of("zuora_sync.run.finished", outcome="failed"):
        assert time.monotonic() < deadline, "no OTLP export from the summarize task's process"
        time.sleep(2)
    samples = otlp.samples()
    assert_series_match_the_ledger(samples, rows, failed_customer="metered_bad")
    [duration] = samples.of("zuora_sync.customer_sync.duration", customer="metered")
    assert duration.unit == "ms" and duration.count == 1
    assert samples.of("ti.finish", dag_id=DAG_ID), "Airflow's own task metrics, same pipeline"
