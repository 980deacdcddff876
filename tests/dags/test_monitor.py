"""The hourly monitor: each check fires on real ledger rows, and alerts are stored and sent;
a check that cannot run is an alert, a failed monitor task alerts, retention runs hourly."""

import json
import logging
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from devstack.postgres import free_port
from zuora import monitor, warehouse
from zuora.alerts import Alert, send_alert


@pytest.fixture
def conn(warehouse_uri):
    with psycopg.connect(warehouse_uri) as conn:
        warehouse.apply_migrations(conn)
        yield conn


def sync_run(conn, run_id, customer, status="success", minutes_ago=10, minutes=1, rate_limited=0):
    conn.execute(
        """
        INSERT INTO zuora.sync_runs (run_id, customer_id, status, started_at, finished_at, rate_limited)
        VALUES (%s, %s, %s, now() - make_interval(mins => %s),
                CASE WHEN %s = 'running' THEN NULL
                     ELSE now() - make_interval(mins => %s) + make_interval(mins => %s) END, %s)""",
        (run_id, customer, status, minutes_ago, status, minutes_ago, minutes, rate_limited),
    )
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
    warehouse.record_dead_letter(
        conn,
        run_id="r1",
        customer_id="broken",
        stage="list",
        error_type="ZuoraAuthError",
        message="bad credentials",
    )
    alerts = monitor.check(conn, monitor.Thresholds())
    assert kinds(alerts) == [
        "dead_letters_growing",
        "failure_rate",
        "rate_limiting",
        "slow_sync",
        "slow_sync",
    ]
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


@pytest.mark.parametrize(
    "text, message",
    [
        ('[{"max_failure_rate": 0.1}]', "monitor thresholds must be a JSON object"),
        ('{"max_failure_rate": "0.1"}', "monitor threshold 'max_failure_rate' must be a number"),
        ('{"max_sync_minutes": null}', "monitor threshold 'max_sync_minutes' must be a number"),
        ('{"max_rate_limited": 1.5}', "monitor threshold 'max_rate_limited' must be an integer"),
        ('{"window_minutes": true}', "monitor threshold 'window_minutes' must be an integer"),
        ('{"max_failure_rate": false}', "monitor threshold 'max_failure_rate' must be a number"),
        ('{"airflow_api_conn_id": 8080}', "monitor threshold 'airflow_api_conn_id' must be a string"),
    ],
)
def test_thresholds_of_the_wrong_type_are_refused(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        monitor.Thresholds.from_json(text)


def test_a_number_threshold_takes_an_integer_or_a_fraction(conn):
    thresholds = monitor.Thresholds.from_json('{"max_failure_rate": 1, "max_sync_minutes": 44.5}')
    assert thresholds == monitor.Thresholds(max_failure_rate=1, max_sync_minutes=44.5)
    sync_run(conn, "r1", "slowco", minutes=45)
    assert kinds(monitor.check(conn, thresholds)) == ["slow_sync"]


def test_a_failing_check_is_an_alert_and_the_others_still_run(conn):
    sync_run(conn, "r1", "ok")
    sync_run(conn, "r1", "broken", status="failed")
    # Postgres cannot compute an infinite interval: the slow-sync query fails
    alerts = monitor.check(conn, monitor.Thresholds(max_sync_minutes=float("inf")))
    assert kinds(alerts) == ["check_failed", "failure_rate"]
    failed = next(a for a in alerts if a.kind == "check_failed")
    assert failed.details["check"] == "slow_syncs"
    assert failed.details["error"].startswith("DatetimeFieldOverflow: interval out of range")
    monitor.raise_alerts(conn, alerts)  # the failed query left no aborted transaction behind
    assert conn.execute("SELECT kind FROM zuora.alerts ORDER BY kind").fetchall() == [
        ("check_failed",),
        ("failure_rate",),
    ]


def test_old_rows_are_outside_the_window(conn):
    sync_run(conn, "old", "a", status="failed", minutes_ago=180, rate_limited=1000)
    assert monitor.check(conn, monitor.Thresholds()) == []


def test_alerts_are_stored_and_logged_without_a_channel(conn):
    recorded = monitor.raise_alerts(conn, [Alert("failure_rate", "2 of 10 failed", "critical")])
    assert recorded == [{"kind": "failure_rate", "title": "2 of 10 failed", "channel": "log"}]
    assert conn.execute("SELECT kind, severity, channel FROM zuora.alerts").fetchall() == [
        ("failure_rate", "critical", "log")
    ]


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
        monkeypatch.setenv(
            "AIRFLOW_CONN_ZUORA_ALERTS",
            json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{server.server_port}/hook"}),
        )
        channel = send_alert(Alert("slow_sync", "acme took 45 minutes", details={"minutes": 45}))
        assert channel == "http"
        assert server.received == [
            {
                "kind": "slow_sync",
                "title": "acme took 45 minutes",
                "severity": "warning",
                "details": {"minutes": 45},
            }
        ]
    finally:
        server.shutdown()


class _RefusingWebhook(_Webhook):
    """What Slack answers a revoked webhook: 404 no_service."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(self.path)
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"no_service")


@pytest.fixture
def webhook_server():
    """webhook_server(handler) -> a local HTTP server (``.url``, ``.received``) with it."""
    servers = []

    def start(handler=_Webhook):
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.received = []
        server.url = f"http://127.0.0.1:{server.server_port}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


SLACK_TOKEN = "T0ZWS0001/B0ZWS0002/webhook-token-do-not-leak"


@pytest.mark.parametrize("reachable", [True, False], ids=["refused", "unreachable"])
@pytest.mark.parametrize("token_in", ["host", "password"])
def test_a_failing_webhook_leaks_no_secret(conn, webhook_server, monkeypatch, caplog, reachable, token_in):
    import traceback

    from airflow.sdk._shared.secrets_masker import redact

    base = webhook_server(_RefusingWebhook).url if reachable else f"http://127.0.0.1:{free_port()}"
    slack = (
        {"conn_type": "slackwebhook", "host": f"{base}/services/{SLACK_TOKEN}"}
        if token_in == "host"
        else {"conn_type": "slackwebhook", "host": base, "password": f"services/{SLACK_TOKEN}"}
    )
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", json.dumps(slack))
    alert = Alert("failure_rate", "2 of 10 failed", "critical")

    with caplog.at_level(logging.INFO):  # Airflow's level; urllib3's DEBUG lines: see redact below
        handled = monitor.raise_alerts(conn, [alert])
        with pytest.raises(Exception) as caught:
            send_alert(alert)

    error = "".join(traceback.format_exception(caught.value))
    rows = conn.execute("SELECT kind, title, details, channel FROM zuora.alerts").fetchall()
    assert [(kind, channel) for kind, _, _, channel in rows] == [("failure_rate", handled[0]["channel"])]
    assert handled[0]["channel"].startswith("failed: ")
    assert "'zuora_alerts'" in str(caught.value)  # says which connection
    assert ("HTTP 404" in str(caught.value)) is reachable
    everything = caplog.text + error + repr(caught.value) + json.dumps(rows, default=str)
    for secret in ("webhook-token-do-not-leak", "B0ZWS0002"):
        assert secret not in everything
    # what logs the URL anyway (urllib3 at DEBUG, with or without the host) Airflow's
    # secrets masker hides in a task's log
    assert "webhook-token-do-not-leak" not in redact(f"POST {base}/services/{SLACK_TOKEN} failed")
    assert "webhook-token-do-not-leak" not in redact(f'"POST /services/{SLACK_TOKEN} HTTP/1.1" 404')


def test_a_name_from_zuora_reaches_slack_as_text_never_a_mention_or_a_link(webhook_server, monkeypatch):
    """A workflow's name (a switched-off workflow's alert title) is Zuora's data: Slack shows
    it literally (``&``, ``<``, ``>`` escaped), so it cannot ping a channel or hide a link."""
    server = webhook_server()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ZUORA_ALERTS",
        json.dumps({"conn_type": "slackwebhook", "host": f"{server.url}/services/T0/B0/slack-token-x"}),
    )
    name = "<!channel> <http://evil.example|Late fees> & co"
    send_alert(Alert("workflow_deactivated", f"workflow {name!r} was switched off", details={"name": name}))
    escaped = "&lt;!channel&gt; &lt;http://evil.example|Late fees&gt; &amp; co"
    assert server.received == [
        {"text": f"[WARNING] workflow '{escaped}' was switched off\n  name: {escaped}"}
    ]


def test_each_alert_is_stored_before_it_is_sent_and_a_retry_sends_none_twice(
    conn, webhook_server, monkeypatch, caplog
):
    from datetime import UTC, datetime

    from psycopg.errors import CheckViolation

    hook = webhook_server()
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", json.dumps({"conn_type": "http", "host": hook.url}))
    run_started = conn.execute("SELECT now()").fetchone()[0]
    conn.commit()
    first = Alert("failure_rate", "2 of 10 failed", "critical", {"failed": 2})
    unstorable = Alert("slow_sync", "acme took 45 minutes", "info")  # not a severity zuora.alerts takes
    last = Alert("dead_letters_growing", "3 new dead letters", details={"new": 3})

    for _ in ("first try", "retry"):
        with pytest.raises(CheckViolation), caplog.at_level(logging.ERROR):
            monitor.raise_alerts(conn, [first, unstorable, last], since=run_started)

    # the alerts that could be stored went out once and stayed stored; the other one never went
    assert [body["kind"] for body in hook.received] == ["failure_rate", "dead_letters_growing"]
    assert conn.execute("SELECT kind, channel FROM zuora.alerts ORDER BY alert_id").fetchall() == [
        ("failure_rate", "http"),
        ("dead_letters_growing", "http"),
    ]
    assert "Could not store alert slow_sync (CheckViolation); not sending it yet" in caplog.text
    # the next run (a later start) raises the same conditions again
    later = datetime.now(UTC)
    monitor.raise_alerts(conn, [first], since=later)
    assert [body["kind"] for body in hook.received] == [
        "failure_rate",
        "dead_letters_growing",
        "failure_rate",
    ]


def test_a_send_that_failed_is_sent_again_by_the_retry(conn, webhook_server, monkeypatch):
    refusing, working = webhook_server(_RefusingWebhook), webhook_server()
    run_started = conn.execute("SELECT now()").fetchone()[0]
    conn.commit()
    alert = Alert("failure_rate", "2 of 10 failed", "critical")
    for server in (refusing, working):
        monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", json.dumps({"conn_type": "http", "host": server.url}))
        monitor.raise_alerts(conn, [alert], since=run_started)
    assert len(refusing.received) == len(working.received) == 1
    assert conn.execute("SELECT channel FROM zuora.alerts").fetchall() == [("http",)]


def test_the_deadline_callback_stores_the_alert_then_sends_it(
    conn, warehouse_uri, webhook_server, monkeypatch
):
    import asyncio

    from zuora.alerts import deadline_missed

    hook = webhook_server()
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", warehouse_uri)
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", json.dumps({"conn_type": "http", "host": hook.url}))
    run = {"dag_run": {"dag_id": "zuora_workflow_sync", "dag_run_id": "scheduled__x"}}

    asyncio.run(deadline_missed(context=run))

    assert [(b["kind"], b["details"]["run_id"]) for b in hook.received] == [
        ("deadline_missed", "scheduled__x")
    ]
    assert conn.execute("SELECT kind, details ->> 'run_id', channel FROM zuora.alerts").fetchall() == [
        ("deadline_missed", "scheduled__x", "http")
    ]


def test_the_deadline_callback_still_alerts_when_the_warehouse_is_down(
    conn, webhook_server, monkeypatch, caplog
):
    import asyncio

    from zuora.alerts import deadline_missed

    hook = webhook_server()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ZUORA_WAREHOUSE", f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    )
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", json.dumps({"conn_type": "http", "host": hook.url}))
    run = {"dag_run": {"dag_id": "zuora_workflow_sync", "dag_run_id": "scheduled__y"}}

    with caplog.at_level(logging.ERROR, logger="zuora.alerts"):
        asyncio.run(deadline_missed(context=run))

    assert [(b["kind"], b["details"]["run_id"]) for b in hook.received] == [
        ("deadline_missed", "scheduled__y")
    ]
    assert "Could not store alert deadline_missed (OperationalError); sending it only" in caplog.text
    assert conn.execute("SELECT count(*) FROM zuora.alerts").fetchone() == (0,)  # not stored anywhere


# -- the monitor DAG under dag.test(): real Airflow, real Postgres, real HTTP -------------------


@pytest.fixture(scope="module")
def monitor_dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["zuora_sync_monitor"]


@pytest.fixture
def webhook():
    """A local alert receiver; ``webhook.received`` holds the JSON bodies posted to it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.received = []
    server.url = f"http://127.0.0.1:{server.server_port}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_an_unreachable_airflow_api_is_an_alert_and_the_database_alerts_still_go_out(
    monitor_dag, conn, warehouse_uri, webhook, monkeypatch, caplog
):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", warehouse_uri)
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", json.dumps({"conn_type": "http", "host": webhook.url}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRFLOW_API",
        json.dumps(
            {  # nothing listens on that port
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": free_port(),
                "login": "admin",
                "password": "api-password-do-not-leak",
            }
        ),
    )
    sync_run(conn, "r1", "ok")
    sync_run(conn, "r1", "broken", status="failed")

    with caplog.at_level(logging.INFO):
        assert monitor_dag.test().state == "success"

    stored = conn.execute("SELECT kind, details, channel FROM zuora.alerts ORDER BY kind").fetchall()
    assert [(kind, channel) for kind, _, channel in stored] == [
        ("check_failed", "http"),
        ("failure_rate", "http"),
    ]
    assert stored[0][1]["check"] == "queue_backlog"
    assert stored[0][1]["error"].startswith("ConnectionError: ")
    assert sorted(alert["kind"] for alert in webhook.received) == ["check_failed", "failure_rate"]
    everything = caplog.text + json.dumps(webhook.received) + json.dumps([row[1] for row in stored])
    assert "api-password-do-not-leak" not in everything


def test_a_monitor_task_does_not_resend_what_an_earlier_try_of_its_run_sent(
    monitor_dag, conn, warehouse_uri, webhook, monkeypatch
):
    """The task passes its run's start to raise_alerts: an alert stored since then (here
    dated after the run's start, as an earlier try's would be) is not sent again."""
    from psycopg.types.json import Jsonb

    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", warehouse_uri)
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", json.dumps({"conn_type": "http", "host": webhook.url}))
    sync_run(conn, "r1", "ok")
    sync_run(conn, "r1", "broken", status="failed")
    [earlier] = monitor.check(conn, monitor.Thresholds())
    conn.execute(
        """INSERT INTO zuora.alerts (raised_at, kind, severity, title, details, channel)
           VALUES (now() + interval '1 hour', %s, %s, %s, %s, 'http')""",
        (earlier.kind, earlier.severity, earlier.title, Jsonb(earlier.details)),
    )
    conn.commit()

    assert monitor_dag.test().state == "success"

    assert webhook.received == []
    assert conn.execute("SELECT kind, channel FROM zuora.alerts").fetchall() == [("failure_rate", "http")]


def test_a_failing_monitor_task_alerts(monitor_dag, conn, warehouse_uri, webhook, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", warehouse_uri)
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", json.dumps({"conn_type": "http", "host": webhook.url}))
    monkeypatch.setenv("AIRFLOW_VAR_ZUORA_MONITOR_THRESHOLDS", '{"max_failure_rate": "high"}')

    assert monitor_dag.test().state == "failed"  # at once: a bad Variable is not retried

    assert [alert["kind"] for alert in webhook.received] == ["task_failed"]
    details = webhook.received[0]["details"]
    assert (details["dag_id"], details["task"]) == ("zuora_sync_monitor", "check_sync_health")
    assert "monitor threshold 'max_failure_rate' must be a number" in details["error"]


def token_variables(replace: dict[str, str] | None = None) -> dict[str, str]:
    """The token-cache Variables in the Airflow metadata DB (test code may use the ORM);
    with ``replace``, they are replaced by these first."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    tokens = Variable.key.startswith("zuora_oauth_cache_") | Variable.key.startswith("zuora_oauth_token_")
    with create_session() as session:
        if replace is not None:
            session.execute(delete(Variable).where(tokens))
            session.add_all(Variable(key=key, val=value) for key, value in replace.items())
            session.flush()
        return {v.key: v.val for v in session.scalars(select(Variable).where(tokens))}


def test_retention_runs_hourly_on_real_rows_and_token_variables(
    monitor_dag, conn, warehouse_uri, monkeypatch, caplog
):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", warehouse_uri)
    monkeypatch.setenv("AIRFLOW_VAR_ZUORA_RETENTION", '{"sync_runs_days": 30}')
    warehouse.upsert_customer(
        conn, customer_id="acme", name="Acme", zuora_conn_id="zuora_acme", environment="sandbox"
    )
    item = {"id": 1, "name": "Workflow 1", "updatedAt": "2026-01-01T00:00:00.000Z"}
    for run_id in ("dead-run", "live-run"):
        warehouse.stage_listing(conn, run_id, "acme", [item], True)
    for zuora_id, message in ((1, "fixed long ago"), (2, "still failing")):
        warehouse.record_dead_letter(
            conn,
            run_id="r0",
            customer_id="acme",
            stage="export",
            zuora_id=zuora_id,
            error_type="ZuoraTransientError",
            message=message,
        )
    for run_id in ("r-old", "r-new"):
        warehouse.start_sync_run(conn, run_id, "acme")
        warehouse.finish_sync_run(conn, run_id, "acme", status="success")
    conn.execute(
        "UPDATE zuora.staging_listings SET listed_at = now() - interval '3 days' WHERE run_id = 'dead-run'"
    )
    conn.execute(
        "UPDATE zuora.dead_letters SET resolved_at = now() - interval '100 days' "
        "WHERE message = 'fixed long ago'"
    )
    conn.execute(
        "UPDATE zuora.sync_runs SET started_at = now() - interval '40 days' WHERE run_id = 'r-old'"
    )  # kept by the default of 400 days
    conn.commit()
    fresh = json.dumps({"expires_at": time.time() + 3600, "token": "gAAAAB-fresh"})
    token_variables(
        replace={
            "zuora_oauth_cache_expired": json.dumps({"expires_at": time.time() - 60, "token": "gAAAAB-old"}),
            "zuora_oauth_cache_fresh": fresh,
            "zuora_oauth_cache_old_format": "gAAAAABold-format-fernet-blob",
            "zuora_oauth_token_expired": json.dumps(
                {"expires_at": time.time() - 60, "token": "gAAAAB-legacy"}
            ),
        }
    )

    with caplog.at_level(logging.INFO, logger="zuora.warehouse.retention"):
        assert monitor_dag.test().state == "success"

    assert conn.execute("SELECT run_id FROM zuora.staging_listings").fetchall() == [("live-run",)]
    assert conn.execute("SELECT message FROM zuora.dead_letters").fetchall() == [("still failing",)]
    assert conn.execute("SELECT run_id FROM zuora.sync_runs").fetchall() == [("r-new",)]
    assert token_variables() == {"zuora_oauth_cache_fresh": fresh}
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("zuora retention "))
    assert json.loads(line.removeprefix("zuora retention ")) == {
        "staging": 1,
        "resolved_dead_letters": 1,
        "validation_issues": 0,
        "sync_runs": 1,
        "history": 0,
        "expired_tokens": 3,
    }


def test_retention_settings_are_checked_before_anything_is_removed(
    monitor_dag, conn, warehouse_uri, webhook, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", warehouse_uri)
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", json.dumps({"conn_type": "http", "host": webhook.url}))
    monkeypatch.setenv("AIRFLOW_VAR_ZUORA_RETENTION", '{"sync_runs": 30}')
    expired = json.dumps({"expires_at": time.time() - 60, "token": "gAAAAB-old"})
    token_variables(replace={"zuora_oauth_cache_expired": expired})

    assert monitor_dag.test().state == "failed"

    assert [alert["details"]["task"] for alert in webhook.received] == ["apply_retention"]
    assert "unknown retention setting 'sync_runs'" in webhook.received[0]["details"]["error"]
    assert token_variables() == {"zuora_oauth_cache_expired": expired}
