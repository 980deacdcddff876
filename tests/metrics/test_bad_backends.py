"""Bad or absent metrics backends change nothing of the sync: a StatsD host that does not
resolve, an OTLP endpoint that refuses or hangs, a name Airflow's validator rejects. The run succeeds with the same ledger, and what our module
spends per customer sync stays within a few milliseconds (measured, not assumed). And
``metrics_block_list`` applies to our names."""

from __future__ import annotations

import logging
import socket
import statistics
import time

import psycopg
import pytest

from tests.metrics.conftest import flush_otel
from tests.metrics.receivers import OtlpReceiver
from zuora import metrics

CALLS = 30
BUDGET_S = 0.005  # a few ms per customer sync, the bound


def refusing_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backends():
    return {
        "statsd host unresolvable": dict(statsd_on=True, statsd_host="statsd.invalid", statsd_port=8125),
        "statsd nothing listening": dict(
            statsd_on=True, statsd_host="127.0.0.1", statsd_port=refusing_port(socket.SOCK_DGRAM)
        ),
        "otlp refusing": dict(
            otel_on=True, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=f"http://127.0.0.1:{refusing_port()}/v1/metrics"
        ),
        "otlp hanging": "hang",
    }


@pytest.fixture
def datagrams(monkeypatch):
    """Every UDP datagram this process sends, with its address (the real socket sends it)."""
    sent, sendto = [], socket.socket.sendto

    def recording(sock, data, *flags_and_address):
        sent.append((flags_and_address[-1], bytes(data)))
        return sendto(sock, data, *flags_and_address)

    monkeypatch.setattr(socket.socket, "sendto", recording)
    return sent


@pytest.mark.parametrize("backend", list(backends()))
def test_a_bad_backend_changes_nothing_and_costs_a_few_ms(
    sync_dag, sync_env, airflow_metrics, backend, caplog, datagrams
):
    settings = backends()[backend]
    hanging = None
    if settings == "hang":
        hanging = OtlpReceiver(hang=30)  # accepts, then answers nothing for 30 s
        settings = dict(
            otel_on=True,
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=hanging.endpoint,
            OTEL_EXPORTER_OTLP_METRICS_TIMEOUT=2,  # bound Airflow's flush at task exit (see docs/operating.md, Metrics)
        )
    try:
        sync_env("acme", workflows=5)
        started = time.monotonic()
        airflow_metrics(**settings)
        with caplog.at_level(logging.INFO):
            first = _timed(metrics.alert_raised, "probe")  # the backend is made on first use
        setup_s = time.monotonic() - started

        result = sync_dag.test(run_conf={"customer_ids": [], "full_refresh": False})
        assert result.state == "success"
        with psycopg.connect(sync_env.uri) as conn:
            row = conn.execute(
                "SELECT status, listed, exported FROM zuora.sync_runs WHERE run_id = %s", (result.run_id,)
            ).fetchone()
            assert row == ("success", 5, 5)
            # what a customer sync's end costs: read its sync_runs row, emit its 12 counters, the
            # duration, and the 10 stage counters (23 datagrams with StatsD)
            costs = [_timed(metrics.customer_sync_ended, conn, result.run_id, "acme") for _ in range(CALLS)]
            assert conn.info.transaction_status != 3  # not left in a failed transaction
        median, worst = statistics.median(costs), max(costs)
        if backend == "statsd nothing listening":  # our series really went to the closed port
            ours = [data for address, data in datagrams if address == ("127.0.0.1", settings["statsd_port"])]
            ended = [data for data in ours if data.startswith(b"airflow.zuora_sync.customer_sync.succeeded")]
            assert len(ended) == CALLS + 1, ours[:5]  # the run's acme, and each timed call
        print(
            f"{backend}: backend made in {first * 1000:.1f} ms ({setup_s * 1000:.0f} ms with setup); "
            f"per customer sync median {median * 1000:.2f} ms, max {worst * 1000:.2f} ms"
        )
        assert first < 0.5, f"making the backend took {first:.3f} s"
        assert median < BUDGET_S, f"median {median * 1000:.2f} ms per customer sync"
        if hanging:
            flush_started = time.monotonic()
            flush_otel()  # what the task process does at exit, against an endpoint that hangs
            flush_s = time.monotonic() - flush_started
            print(f"{backend}: exit flush {flush_s:.2f} s (OTEL_EXPORTER_OTLP_METRICS_TIMEOUT=2)")
            assert flush_s < 5
    finally:
        if hanging:
            hanging.server.hang = 0
            hanging.close()


def _timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def test_a_name_airflow_rejects_is_dropped_with_a_log_line_never_raised(statsd, airflow_metrics, caplog):
    airflow_metrics(statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port)
    with caplog.at_level(logging.INFO):
        metrics._incr("bad name: spaces and a colon", 1, {})  # the validator's characters
        metrics._incr("x" * 300, 1, {})  # over 250 characters
        metrics.alert_raised("ok")
    assert [line for line in statsd.samples() and statsd.lines] == ["airflow.zuora_sync.alerts.raised:1|c"]
    assert "Invalid stat name" in caplog.text


def test_with_metrics_off_nothing_is_computed(statsd, airflow_metrics, caplog):
    """Airflow's defaults (no backend): a customer's sync end does not even read its row;
    with a backend the same call does (here on no connection: dropped with a warning)."""
    airflow_metrics()
    metrics._last_warning = 0.0  # the once-a-minute warning limit, for this test
    with caplog.at_level(logging.WARNING):
        metrics.customer_sync_ended(None, "run", "acme")
    assert "not emitted" not in caplog.text
    airflow_metrics(statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port)
    with caplog.at_level(logging.WARNING):
        metrics.customer_sync_ended(None, "run", "acme")  # never raises
    assert "customer_sync_ended not emitted: AttributeError" in caplog.text


def test_metrics_block_list_applies_to_our_names(statsd, airflow_metrics):
    stats = airflow_metrics(
        statsd_on=True,
        statsd_host="127.0.0.1",
        statsd_port=statsd.port,
        metrics_block_list="zuora_sync.alerts",
    )
    metrics.alert_raised("failure_rate")
    metrics._gauge("run.customers", 3)
    stats.incr("scheduler_heartbeat")  # what is not blocked still goes out
    assert sorted(statsd.samples() and statsd.lines) == [
        "airflow.scheduler_heartbeat:1|c",
        "airflow.zuora_sync.run.customers:3|g",
    ]
