"""The local Celery cluster (`make cluster`), started once for the deployment tests, and a
client for Airflow's REST API v2 as the UI uses it (JWT from /auth/token)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest

from devstack import cluster
from devstack.airflow_api import SYNC_DAG, Api
from tests.metrics.receivers import StatsdReceiver
from zuora_simulator.client import AdminClient

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = SYNC_DAG

# What the tests change in the deployment: retries a second apart instead of minutes, a lost
# worker noticed in about 10 s, a 15-second run deadline; a scheduler that looks for work
# again after 0.25 s instead of 1 s when it found none.
SETTINGS = {
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
    "ZUORA_SYNC_RETRY_DELAYS": "1,1,1",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "ZUORA_SYNC_DEADLINE_MINUTES": "0.25",
    # Airflow's StatsD metrics on, with tags, to the receiver the fixture starts (test_metrics)
    "AIRFLOW__METRICS__STATSD_ON": "True",
    "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
    "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
}


def copy_of_the_source(dest: Path) -> Path:
    """The source tree as the image's COPY or a team's checkout has it, at ``dest``: no venv,
    git, tool caches, local deployments or build output (building in the tree would leave an
    egg-info in plugins/, where Airflow's plugin folder would register our plugin twice)."""
    shutil.copytree(
        ROOT,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".demo",
            ".cluster",
            ".git",
            "__pycache__",
            "*.egg-info",
            ".pytest_cache",
            ".mypy_cache",
            ".ruff_cache",
            "build",
        ),
    )
    return dest


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Deployment:
    """The running cluster: its REST API, warehouse, simulator and processes."""

    def __init__(self, home: Path, info: dict, alerts: list):
        self.home = home
        self.info = info
        self.api = Api(info)
        self.sim = AdminClient(info["simulator_url"])
        self.alerts = alerts  # what the zuora_alerts webhook received

    def first_run(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while not (runs := self.api.call("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]):
            assert time.monotonic() < deadline, "the scheduler created no run"
            time.sleep(0.5)
        return runs[0]["dag_run_id"]

    def component_pid(self, name: str) -> int:
        return json.loads((self.home / "cluster.json").read_text())["components"][name]

    def query(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.info["warehouse_uri"]) as conn:
            return conn.execute(sql, params).fetchall()

    def add_customer(self, customer_id: str, secret: str | None = None, **tenant) -> dict:
        """A customer with a simulator tenant, one try per HTTP call; returns the tenant."""
        return cluster.add_customer(
            self.api,
            self.sim,
            self.info["warehouse_uri"],
            customer_id,
            secret=secret,
            extra={"max_attempts": 1},
            **tenant,
        )


@contextlib.contextmanager
def running_cluster(home: Path, env: dict, *args: str, alerts: list | None = None) -> Iterator[Deployment]:
    """`python -m devstack.cluster --no-demo ARGS` in ``home`` with ``env``; the sync DAG
    unpaused and its first scheduled run (no customers yet) done. Stopped with SIGTERM."""
    log = open(home / "cluster.out", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.cluster", "--home", str(home), "--no-demo", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 240
        while not (home / "cluster.json").exists():
            assert process.poll() is None, (home / "cluster.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "the cluster did not start within 240 s"
            time.sleep(0.25)
        deployment = Deployment(
            home, json.loads((home / "cluster.json").read_text()), [] if alerts is None else alerts
        )
        deployment.api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
        deployment.api.wait(deployment.first_run())  # the scheduled run unpausing starts
        yield deployment
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        finally:
            log.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """`python -m devstack.cluster --no-demo` in a home of its own, with the zuora_alerts
    webhook pointing at a receiver of the test; the sync DAG unpaused and its first
    scheduled run (no customers yet) done. Stopped with SIGTERM at the end."""
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    receiver.received = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    statsd = StatsdReceiver()
    home = tmp_path_factory.mktemp("cluster")
    env = {
        **os.environ,
        **SETTINGS,
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
        "AIRFLOW_CONN_ZUORA_ALERTS": json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{receiver.server_port}/alerts"}
        ),
    }
    try:
        with running_cluster(home, env, alerts=receiver.received) as deployment:
            deployment.statsd = statsd  # what every component's StatsD metrics sent
            yield deployment
    finally:
        receiver.shutdown()
        statsd.close()
