"""`make cluster`'s own process handling, without starting Airflow: what the shell may and may
not change in the components' environment, and how a component that keeps dying is restarted."""

from __future__ import annotations

import os
import sys
import threading
import time
from itertools import pairwise

from devstack import cluster


def environment(tmp_path, demo=True):
    topology = cluster.Cluster(tmp_path, workers=0, demo=demo)
    topology.api_port = 8793
    return topology._environment(5432, 6379, "http://127.0.0.1:9999")


def test_the_shell_cannot_point_the_cluster_at_another_warehouse(tmp_path, monkeypatch, capsys):
    shell = {
        "AIRFLOW_CONN_ZUORA_WAREHOUSE": "postgresql://someone@prod-db:5432/warehouse",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://someone@prod-db/airflow",
        "AIRFLOW__CORE__DAGS_FOLDER": "/somewhere/else",
        "AIRFLOW__CORE__FERNET_KEY": "not-the-cluster-key-secret",
        "AIRFLOW_CONN_ZUORA_DEMO_ACME": '{"conn_type": "zuora", "host": "https://rest.zuora.com"}',
        # what the shell may set: settings and connections the cluster leaves to it
        "AIRFLOW__CORE__PARALLELISM": "7",
        "AIRFLOW_CONN_ZUORA_ALERTS": '{"conn_type": "http", "host": "http://127.0.0.1:1/alerts"}',
        "ZUORA_SYNC_RETRY_DELAYS": "3,3,3",
    }
    for name, value in shell.items():
        monkeypatch.setenv(name, value)

    env = environment(tmp_path)

    assert env["AIRFLOW_CONN_ZUORA_WAREHOUSE"] == "postgresql://postgres@127.0.0.1:5432/warehouse"
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg://postgres@127.0.0.1:5432/airflow"
    )
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(cluster.ROOT / "dags")
    assert env["AIRFLOW__CORE__FERNET_KEY"] != "not-the-cluster-key-secret"
    assert "127.0.0.1:9999" in env["AIRFLOW_CONN_ZUORA_DEMO_ACME"]
    assert env["AIRFLOW__CORE__PARALLELISM"] == "7"
    assert env["AIRFLOW_CONN_ZUORA_ALERTS"] == shell["AIRFLOW_CONN_ZUORA_ALERTS"]
    assert env["ZUORA_SYNC_RETRY_DELAYS"] == "3,3,3"
    said = capsys.readouterr().out
    for name in ("AIRFLOW_CONN_ZUORA_WAREHOUSE", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__CORE__DAGS_FOLDER"):
        assert name in said
    assert "prod-db" not in said and "not-the-cluster-key-secret" not in said


def test_the_shell_still_overrides_the_shared_settings(tmp_path, monkeypatch):
    name, value = next(iter(cluster.shared_settings().items()))
    monkeypatch.setenv(name, value + "-from-the-shell")
    assert environment(tmp_path, demo=False)[name] == value + "-from-the-shell"


def test_a_component_that_keeps_dying_is_restarted_ever_more_slowly(tmp_path):
    starts = tmp_path / "starts"
    topology = cluster.Cluster(tmp_path, workers=0, demo=False)
    topology.logs.mkdir(parents=True)
    topology.api_port, topology.warehouse_uri, topology.simulator_url = 1, "postgresql://x", "http://x"
    dies = f"import sys, time; open({str(starts)!r}, 'a').write(f'{{time.monotonic()}}\\n'); sys.exit(3)"
    topology._start("crasher", [sys.executable, "-c", dies], dict(os.environ))
    supervisor = threading.Thread(target=topology._supervise)
    supervisor.start()
    time.sleep(10)
    topology.stopping = True
    supervisor.join()
    for process in topology.processes.values():
        process.wait()

    times = [float(line) for line in starts.read_text().split()]
    gaps = [b - a for a, b in pairwise(times)]
    # restarted after 1, 2, 4 s (the next in 8): 4 starts in 10 s, not 10 (once a second)
    assert len(times) == 4, gaps
    assert all(later > earlier * 1.5 for earlier, later in pairwise(gaps)), gaps
    assert topology.crashes["crasher"] == 4


def test_restart_delays_double_up_to_a_minute():
    assert [cluster.restart_delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
