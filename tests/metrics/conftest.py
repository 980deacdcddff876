"""Fixtures for the metrics tests: real receivers (a UDP StatsD server, an OTLP/HTTP
endpoint), Airflow's task-side Stats set up from ``[metrics]`` settings as the task runner
does in every task process, the DAGs for dag.test(), and a stand-in Airflow REST API for the
monitor's queue depth (dag.test() runs no API server)."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.dags.conftest import sync_env  # noqa: F401  (the DAG tests' customers on the simulator)
from tests.metrics.receivers import OtlpReceiver, StatsdReceiver


@pytest.fixture
def statsd():
    receiver = StatsdReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def otlp():
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def airflow_metrics(monkeypatch):
    """airflow_metrics(statsd_on=True, ...) sets ``AIRFLOW__METRICS__*`` (and any other
    variable given in upper case) and initialises ``airflow.sdk.observability.stats`` from the
    configuration, as ``task_runner.main()`` does; back to no metrics afterwards."""
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    def configure(**settings):
        for key, value in settings.items():
            name = key if key.isupper() else f"AIRFLOW__METRICS__{key.upper()}"
            monkeypatch.setenv(name, str(value))
        stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=True)
        return stats

    yield configure
    stats.initialize(factory=NoStatsLogger, export_legacy_names=True)
    from opentelemetry import metrics as otel_metrics

    provider = otel_metrics.get_meter_provider()
    if hasattr(provider, "shutdown"):  # an SDK MeterProvider a test set up: stop its exporter,
        provider.shutdown(timeout_millis=2000)  # and leave one without readers for Airflow's
        _replace_meter_provider()  # flush at exit


def _replace_meter_provider() -> None:
    import opentelemetry.metrics._internal as internal
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.sdk.metrics import MeterProvider

    internal._METER_PROVIDER_SET_ONCE._done = False  # as Airflow's get_otel_logger does
    otel_metrics.set_meter_provider(MeterProvider(shutdown_on_exit=False))


def flush_otel() -> None:
    """What a task process does at exit (Airflow's atexit hook): export what is pending."""
    from opentelemetry import metrics as otel_metrics

    otel_metrics.get_meter_provider().force_flush(timeout_millis=10_000)


@pytest.fixture(scope="session")
def monitor_dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["zuora_sync_monitor"]


class _AirflowApi(BaseHTTPRequestHandler):
    def do_POST(self):  # /auth/token
        self._json({"access_token": "t" * 20})

    def do_GET(self):  # /api/v2/dags/~/dagRuns/~/taskInstances?state=queued
        self._json({"task_instances": [], "total_entries": self.server.queued})

    def _json(self, payload):
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def airflow_api(monkeypatch):
    """The ``airflow_api`` connection points at a stand-in REST API answering 7 queued."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AirflowApi)
    server.queued = 7
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRFLOW_API",
        json.dumps(
            {
                "conn_type": "http",
                "host": f"http://127.0.0.1:{server.server_port}",
                "login": "a",
                "password": "b",
            }
        ),
    )
    yield server
    server.shutdown()
