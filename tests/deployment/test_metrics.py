"""The sync's metrics over OpenTelemetry under the local Celery cluster, where they leave worker
task processes: a cluster of this module (one worker) exports over OTLP/HTTP to an endpoint of
the test, which decodes ``ExportMetricsServiceRequest``: what the worker task processes flushed
when they ended matches the ledger, tags as attributes. (StatsD, from the session's cluster:
tests/deployment/test_cluster.py.)"""

from __future__ import annotations

import os
import time

import pytest

from tests.deployment.conftest import DAG_ID, SETTINGS, running_cluster
from tests.metrics.ledger import assert_series_match_the_ledger, ledger
from tests.metrics.receivers import OtlpReceiver


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
