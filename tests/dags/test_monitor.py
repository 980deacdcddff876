"""The hourly monitor: each check fires on real ledger rows, and alerts are stored and sent."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from zuora import monitor, warehouse
from zuora.alerts import Alert, send_alert


@pytest.fixture
def conn(warehouse_uri):
    with psycopg.connect(warehouse_uri) as conn:
        warehouse.apply_migrations(conn)
        yield conn


def sync_run(conn, run_id, customer, status="success", minutes_ago=10, minutes=1, rate_limited=0):
    conn.execute("""
        INSERT INTO zuora.sync_runs (run_id, customer_id, status, started_at, finished_at, rate_limited)
        VALUES (%s, %s, %s, now() - make_interval(mins => %s),
                CASE WHEN %s = 'running' THEN NULL
                     ELSE now() - make_interval(mins => %s) + make_interval(mins => %s) END, %s)""",
                 (run_id, customer, status, minutes_ago, status, minutes_ago, minutes, rate_limited))
    conn.commit()


def kinds(alerts):
    return sorted(alert.kind for alert in alerts)


def test_healthy_ledger_raises_nothing(conn):
    for i in range(30):
        sync_run(conn, "r1", f"c{i}", rate_limited=2)
    assert monitor.check(conn, monitor.Thresholds()) == []


def test_each_condition_raises_its_alert(conn):
    for i in range(15):
        sync_run(conn, "r1", f"c{i}")
    sync_run(conn, "r1", "slowco", minutes=45)
    sync_run(conn, "r1", "broken", status="failed", rate_limited=150)
    sync_run(conn, "r2", "stuck", status="running", minutes_ago=40)
    warehouse.record_dead_letter(conn, run_id="r1", customer_id="broken", stage="list",
                                 error_type="ZuoraAuthError", message="bad credentials")
    alerts = monitor.check(conn, monitor.Thresholds())
    assert kinds(alerts) == ["dead_letters_growing", "failure_rate", "rate_limiting",
                             "slow_sync", "slow_sync"]
    failure = next(a for a in alerts if a.kind == "failure_rate")
    assert failure.details["customers"] == ["broken"] and failure.details["total"] == 17
    slow = {a.details["customer_id"] for a in alerts if a.kind == "slow_sync"}
    assert slow == {"slowco", "stuck"}


def test_thresholds_are_settable(conn):
    sync_run(conn, "r1", "a", status="failed")
    for i in range(9):
        sync_run(conn, "r1", f"ok{i}")
    assert kinds(monitor.check(conn, monitor.Thresholds())) == ["failure_rate"]
    relaxed = monitor.Thresholds.from_json('{"max_failure_rate": 0.2}')
    assert monitor.check(conn, relaxed) == []
    with pytest.raises(ValueError, match="unknown monitor thresholds"):
        monitor.Thresholds.from_json('{"max_failure": 0.2}')


def test_old_rows_are_outside_the_window(conn):
    sync_run(conn, "old", "a", status="failed", minutes_ago=180, rate_limited=1000)
    assert monitor.check(conn, monitor.Thresholds()) == []


def test_alerts_are_stored_and_logged_without_a_channel(conn):
    recorded = monitor.raise_alerts(conn, [Alert("failure_rate", "2 of 10 failed", "critical")])
    assert recorded == [{"kind": "failure_rate", "title": "2 of 10 failed", "channel": "log"}]
    assert conn.execute("SELECT kind, severity, channel FROM zuora.alerts").fetchall() == [
        ("failure_rate", "critical", "log")]


class _Webhook(BaseHTTPRequestHandler):
    def do_POST(self):
        self.server.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_alerts_go_to_a_webhook_connection(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{server.server_port}/hook"}))
        channel = send_alert(Alert("slow_sync", "acme took 45 minutes", details={"minutes": 45}))
        assert channel == "http"
        assert server.received == [{"kind": "slow_sync", "title": "acme took 45 minutes",
                                    "severity": "warning", "details": {"minutes": 45}}]
    finally:
        server.shutdown()


def test_the_deadline_callback_alerts_through_the_channel(caplog):
    import asyncio
    import logging

    from zuora.alerts import deadline_missed

    with caplog.at_level(logging.WARNING, logger="zuora.alerts"):
        asyncio.run(deadline_missed(
            context={"dag_run": {"dag_id": "zuora_workflow_sync", "run_id": "scheduled__x"}}))
    assert '"kind": "deadline_missed"' in caplog.text and "scheduled__x" in caplog.text
