"""The shipped monitoring files load and agree: the dashboard's datasources are the
provisioned ones, it shows every series of the Metrics table (docs/operating.md), the
statsd-exporter mapping names every series of ours (what each panel queries was seen emitted:
test_dag_metrics), and what its queries count, with a real run's StatsD lines through the
mapping as Prometheus evaluates them, is what happened: every failure, a first one included."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import psycopg
import yaml

from tests.metrics import dashboard
from tests.metrics.prometheus import Exporter, Prometheus, by, value
from tests.metrics.receivers import AlertWebhook
from zuora.warehouse.usage import set_task_allowance

PROVISIONING = dashboard.MONITORING / "grafana" / "provisioning"
README = dashboard.ROOT / "docs" / "operating.md"


def test_the_dashboard_loads_and_uses_the_provisioned_datasources():
    board = json.loads(dashboard.DASHBOARD.read_text())
    assert board["uid"] == "zuora-workflow-sync" and board["panels"]
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text())
    uids = {source["uid"]: source["type"] for source in provisioned["datasources"]}
    ids = [panel["id"] for panel in dashboard.panels(board)]
    assert len(ids) == len(set(ids))
    for panel in dashboard.panels(board):
        for target in panel.get("targets", []):
            source = target.get("datasource", panel.get("datasource"))
            assert uids.get(source["uid"]) == source["type"], (panel["title"], source)
            assert target.get("expr") or target.get("rawSql"), panel["title"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_dashboard_shows_every_series_of_the_readme_table():
    table = dashboard.readme_series()
    assert len(table) >= 20
    queried = dashboard.queried_metrics()
    readme = (dashboard.ROOT / "docs" / "operating.md").read_text()
    for name in table:
        kind = readme.split(f"| `zuora_sync.{name}` | ", 1)[1].split(" |", 1)[0]  # type column
        assert dashboard.prometheus_name(f"zuora_sync.{name}", kind) in queried, name


def test_the_warehouse_panels_query_the_views():
    sql = [
        target["rawSql"]
        for panel in dashboard.panels()
        for target in panel.get("targets", [])
        if "rawSql" in target
    ]
    assert any("zuora.changes_per_day" in q for q in sql) and any("zuora.sync_health" in q for q in sql)


def test_the_warehouse_panels_run_on_a_migrated_warehouse(warehouse_uri):
    """Each SQL panel, with Grafana's macros and the customer variable filled in as Grafana
    does for "All", runs on the real schema and returns its columns."""
    import re

    import psycopg

    from zuora import warehouse

    with psycopg.connect(warehouse_uri) as conn:
        warehouse.apply_migrations(conn)
        for panel in dashboard.panels():
            for target in panel.get("targets", []):
                if "rawSql" not in target:
                    continue
                sql = re.sub(
                    r"\$__timeFilter\(([^)]*)\)",
                    r"\1 BETWEEN now() - interval '7 days' AND now()",
                    target["rawSql"],
                )
                sql = sql.replace("${customer:regex}", ".*")
                assert "${" not in sql and "$__" not in sql, sql
                cursor = conn.execute(sql)
                assert cursor.description, panel["title"]
                cursor.fetchall()


# --- what the dashboard's queries count, as Prometheus evaluates them -----------------------

SCRAPE_S = 15  # monitoring/prometheus/prometheus.yml


def _queries() -> dict[str, list[str]]:
    """The dashboard's PromQL by panel title, with the customer variable at "All"."""
    return {
        panel["title"]: [t["expr"].replace("$customer", ".*") for t in panel["targets"]]
        for panel in dashboard.panels()
        if panel.get("targets") and "expr" in panel["targets"][0]
    }


def _during(statsd, action):
    """What ``action()`` made the receiver get: its result and its samples."""
    mark = len(statsd.lines)
    result = action()
    return result, statsd.samples(since=mark)


def _replay(phases) -> tuple[Prometheus, float]:
    """Each phase's lines reach statsd-exporter between two scrapes (the worst case: a series'
    zero and its first count in one scrape), then three more scrapes 15 s apart; returns
    the Prometheus and the time of its last scrape."""
    exporter, db, now = Exporter(), Prometheus(), 0.0
    db.scrape(now, exporter)
    for samples in phases:
        exporter.receive(samples)
        for _ in range(4):
            now += SCRAPE_S
            db.scrape(now, exporter)
    return db, now


def test_the_dashboard_counts_every_failure_a_customers_first_included(
    sync_dag, monitor_dag, sync_env, statsd, airflow_metrics
):
    """Two runs' StatsD lines through the shipped mapping into a Prometheus-like evaluation of
    the dashboard's own queries: globex is new and its first sync fails (wrong secret), acme
    succeeds, then fails at its list stage in the second run. Every failure counts: Prometheus
    takes a new series' first sample as its baseline, so each series must exist at 0 first."""
    airflow_metrics(
        statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port, statsd_influxdb_enabled=True
    )
    acme = sync_env("acme", workflows=3)
    sync_env("globex", workflows=2, secret="not-the-secret")
    monitor, hourly = _during(statsd, monitor_dag.test)  # the hourly monitor, before the runs
    assert monitor.state == "success"
    run_conf = {"customer_ids": [], "full_refresh": False}
    first, run1 = _during(statsd, lambda: sync_dag.test(run_conf=run_conf))
    sync_env("acme", tenant=acme, secret="not-the-secret")  # acme's credentials go bad
    second, run2 = _during(statsd, lambda: sync_dag.test(run_conf=run_conf))
    assert (first.state, second.state) == ("failed", "failed")
    db, now = _replay([hourly, run1, run2])
    queries = _queries()

    def query(title, target=0):
        return db.query(queries[title][target], now)

    per_customer = {"acme": 0.5, "globex": 1.0}  # acme: 1 of 2 syncs failed; globex: both
    assert by(query("Error rate by customer (24 h)"), "customer") == per_customer
    assert by(query("Failures by customer"), "customer") == {"acme": 1, "globex": 2}
    assert by(query("Success rate by customer (24 h)"), "customer") == {"acme": 0.5, "globex": 0.0}
    assert value(query("Sync success rate (24 h)")) == 0.25
    assert value(query("Error rate (1 h)")) == 0.75
    assert (value(query("Customer syncs ended", 0)), value(query("Customer syncs ended", 1))) == (1, 3)
    stages = {"list": 3, "export": 0, "validate": 0, "upsert": 0, "task": 0}
    assert by(query("Failures and dead letters by stage (all customers)", 0), "stage") == stages
    assert by(query("Failures and dead letters by stage (all customers)", 1), "stage") == stages
    assert by(query("Run duration", 1), "outcome") == {"failed": 2, "success": 0}
    sent = [s for s in run1 + run2 if s.name == "zuora_sync.alerts.raised" and s.value]
    alerts = by(query("Alerts raised by kind"), "kind")
    assert alerts.pop("task_failed") == len(sent) > 0 and set(alerts.values()) == {0}

    with psycopg.connect(sync_env.uri) as conn:
        durations, requests = conn.execute(
            "SELECT array_agg(duration_seconds::float ORDER BY run_id), sum(api_requests) "
            "FROM zuora.sync_runs WHERE customer_id = 'acme'"
        ).fetchone()
        requests += conn.execute(
            "SELECT sum(api_requests) FROM zuora.sync_runs WHERE customer_id = 'globex'"
        ).fetchone()[0]
    calls = by(query("Zuora API calls by customer"), "customer")
    assert calls["acme"] + calls["globex"] == requests == value(query("Zuora API calls (1 h)"))
    average = by(query("Average sync duration by customer (24 h)"), "customer")["acme"]
    assert abs(average - sum(durations) / 2) < 0.002  # milliseconds, added up
    # every query of the dashboard evaluates; each has data but the queue depth (no Airflow API
    # here) and the usage gauges (the monitor ran before any usage was read: the next test)
    for title, exprs in queries.items():
        for expr in exprs:
            assert db.query(expr, now) or title in ("Queue depth", *USAGE_PANELS), (title, expr)


USAGE_PANELS = (
    "Task usage this month: top 20 customers",
    "Share of the monthly task allowance: top 20 customers",
)
ALERTS_PANEL = "Allowance and switched-off workflow alerts (1 d)"


def test_the_usage_panels_show_each_customers_month_its_share_and_the_alert(
    sync_dag, monitor_dag, sync_env, statsd, airflow_metrics, monkeypatch
):
    """The monitor's usage gauges and a usage alert through the shipped mapping into the
    dashboard's own queries: acme's tenant ran 500 tasks this month (its allowance: 500,
    so the monitor alerts), globex's 200 (of 10,000: no projection reaches it, even on the
    2nd), initech's usage is not available (403: no series)."""
    airflow_metrics(
        statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port, statsd_influxdb_enabled=True
    )
    webhook = AlertWebhook()
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", webhook.connection())
    today = away_from_midnight().isoformat()
    for customer, tasks in (("acme", 500), ("globex", 200)):  # every other day of the two months: 0
        sync_env(customer, workflows=1, usage={"tasks_per_day": 0, "extra_tasks": {today: tasks}})
    sync_env("initech", workflows=1, usage={"metrics_status": 403})
    with psycopg.connect(sync_env.uri) as conn:
        for customer, tasks in (("acme", 500), ("globex", 10_000), ("initech", 100)):
            set_task_allowance(conn, customer, tasks)
    try:
        before, hourly = _during(statsd, monitor_dag.test)  # the zeros, before any usage is read
        run, synced = _during(
            statsd, lambda: sync_dag.test(run_conf={"customer_ids": [], "full_refresh": False})
        )
        after, hourly_again = _during(statsd, monitor_dag.test)
    finally:
        webhook.close()
    assert (before.state, run.state, after.state) == ("success", "success", "success")
    db, now = _replay([hourly, synced, hourly_again])
    queries = _queries()
    month, share = (db.query(queries[title][0], now) for title in USAGE_PANELS)
    assert by(month, "customer") == {"acme": 500, "globex": 200}
    assert by(share, "customer") == {"acme": 1.0, "globex": 0.02}
    alerts = by(db.query(queries[ALERTS_PANEL][0], now), "kind")
    assert alerts == {
        "task_usage_100": 1,
        "task_usage_80": 0,
        "task_usage_projected": 0,
        "workflow_deactivated": 0,
    }
    assert [(a["kind"], a["details"]["customer_id"]) for a in webhook.received] == [
        ("task_usage_100", "acme")
    ]


def away_from_midnight() -> date:
    """Today (UTC), once at least two minutes before its end: the simulator's today and the
    monitor's month stay the test's."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    if (midnight - now).total_seconds() < 120:
        time.sleep((midnight - now).total_seconds() + 0.5)
    return datetime.now(UTC).date()


def _our_series(samples, customers: int) -> int:
    """How many ``zuora_sync_*`` series statsd-exporter shows once ``customers`` customers
    emitted what acme did (its lines replayed under other ids) beside the fleet's lines."""
    exporter = Exporter()
    exporter.receive([s for s in samples if "customer" not in s.tags])
    acme = [s for s in samples if s.tags.get("customer") == "acme"]
    for number in range(customers):
        exporter.receive(replace(s, tags={**s.tags, "customer": f"c{number}"}) for s in acme)
    return sum(dict(key)["__name__"].startswith("zuora_sync_") for key in exporter.exposition())


def test_the_series_count_stays_small_per_customer_as_documented(
    sync_dag, monitor_dag, sync_env, statsd, airflow_metrics
):
    """The shipped mapping's series, from a real run's lines (the monitor, then acme syncing
    and globex failing, then the monitor with acme's usage and allowance): a customer has a
    fixed handful of series, its failure adds none, its usage gauges two, the rest is
    fleet-wide; docs/operating.md states the counts at 10, 1,000 and 10,000 customers (each
    like acme: usage read, an allowance set)."""
    airflow_metrics(
        statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port, statsd_influxdb_enabled=True
    )
    sync_env("acme", workflows=3)
    sync_env("globex", workflows=2, secret="not-the-secret")
    assert monitor_dag.test().state == "success"
    assert sync_dag.test(run_conf={"customer_ids": [], "full_refresh": False}).state == "failed"
    with psycopg.connect(sync_env.uri) as conn:
        set_task_allowance(conn, "acme", 50_000)
    assert monitor_dag.test().state == "success"  # acme's usage, read by its sync
    samples = statsd.samples()
    exporter = Exporter()
    exporter.receive(samples)

    def series_of(customer):
        return sorted(dict(key)["__name__"] for key in exporter.exposition() if ("customer", customer) in key)

    usage = ["zuora_sync_task_usage_allowance_share", "zuora_sync_task_usage_month_tasks"]
    # a failure adds no series of the customer's; usage read, with an allowance, adds its two
    assert series_of("acme") == sorted(series_of("globex") + usage)
    assert len(series_of("globex")) == 12, series_of("globex")  # 11 counters of the table, and the seconds'
    per_customer = len(series_of("acme"))
    assert per_customer == 14
    counts = {customers: _our_series(samples, customers) for customers in (10, 1_000, 10_000)}
    fleet = counts[10] - 10 * per_customer
    assert fleet < 100 and all(count == n * per_customer + fleet for n, count in counts.items())
    documented = re.findall(r"^\| ([\d,]+) customers \| ([\d,]+) \|", README.read_text(), re.MULTILINE)
    assert {int(n.replace(",", "")): int(c.replace(",", "")) for n, c in documented} == counts
