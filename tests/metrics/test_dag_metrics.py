"""The sync's metrics under dag.test(), through Airflow's pipeline to real receivers: what a
run emits adds up to its zuora.sync_runs rows, customer by customer, with tags; the monitor's
gauges and alerts too; and every metric the shipped dashboard queries is among them."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.metrics import dashboard
from tests.metrics.conftest import flush_otel
from tests.metrics.ledger import assert_series_match_the_ledger, ledger
from zuora import warehouse
from zuora.api.credentials import airflow_connection
from zuora.warehouse.usage import set_task_allowance


def a_run_with_one_failed_customer(sync_dag, sync_env):
    """acme syncs its 7 workflows; globex's secret is wrong, so its list stage fails."""
    sync_env("acme", workflows=7)
    sync_env("globex", workflows=3, secret="not-the-secret")
    result = sync_dag.test(run_conf={"customer_ids": [], "full_refresh": False})
    assert result.state == "failed"  # globex failed, so the run does
    rows = ledger(sync_env.uri, result.run_id)
    assert [(r[0], r[1]) for r in rows] == [("acme", "success"), ("globex", "failed")]
    return result, rows


def test_statsd_series_match_the_ledger_and_feed_every_dashboard_panel(
    sync_dag, monitor_dag, sync_env, statsd, airflow_api, airflow_metrics
):
    airflow_metrics(
        statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port, statsd_influxdb_enabled=True
    )
    result, rows = a_run_with_one_failed_customer(sync_dag, sync_env)
    with psycopg.connect(sync_env.uri) as conn:  # acme's usage was read by its list task
        set_task_allowance(conn, "acme", 1_000_000)
        month_tasks = int(
            conn.execute(
                "SELECT sum(task_count) FROM zuora.task_usage WHERE customer_id = 'acme' "
                "AND day >= date_trunc('month', now() AT TIME ZONE 'UTC')"
            ).fetchone()[0]
        )
    assert monitor_dag.test().state == "success"
    samples = statsd.samples()

    assert_series_match_the_ledger(samples, rows)
    # the monitor's usage gauges: acme's month so far and its share of the allowance; none
    # for globex, whose failed list stage read no usage
    usage = {
        (s.name, s.tags["customer"]): s.value for s in samples if s.name.startswith("zuora_sync.task_usage.")
    }
    assert usage == {
        ("zuora_sync.task_usage.month_tasks", "acme"): month_tasks,
        ("zuora_sync.task_usage.allowance_share", "acme"): round(month_tasks / 1_000_000, 4),
    }
    # the monitor's gauges over the last hour: 1 of 2 customer syncs failed, globex's dead
    # letter is open, the stand-in Airflow API answered 7 queued task instances
    gauge = {s.name: s.value for s in samples if s.name.startswith("zuora_sync.monitor.")}
    assert gauge["zuora_sync.monitor.customer_syncs"] == 2
    assert gauge["zuora_sync.monitor.failure_rate"] == 0.5
    assert gauge["zuora_sync.monitor.open_dead_letters"] == 1
    assert gauge["zuora_sync.monitor.queued_task_instances"] == 7
    assert gauge["zuora_sync.monitor.slowest_sync_seconds"] > 0
    assert gauge["zuora_sync.monitor.rate_limited"] == sum(r[5] for r in rows)
    # alerts: globex's failed task (its two callbacks' notifier) and the monitor's
    alerts = samples.by_tag("zuora_sync.alerts.raised", "kind")
    assert alerts["task_failed"] >= 1 and alerts["failure_rate"] == 1
    # Airflow's own task metrics, from the same pipeline, for the dashboard's task panels
    assert samples.total("ti.finish", dag_id="zuora_workflow_sync", state="success") > 0
    assert samples.of("task.duration", dag_id="zuora_workflow_sync")

    # nothing secret in a name or a tag: no client id, secret, connection id or host
    text = "\n".join(statsd.lines)
    for secret in ("not-the-secret", "zuora_acme", "127.0.0.1", "client"):
        assert secret not in text

    # every series the shipped dashboard queries is one this run emitted
    emitted = {dashboard.prometheus_name(s.name, s.kind) for s in samples}
    queried = dashboard.queried_metrics()
    assert queried, "the dashboard queries no metric"
    assert queried <= emitted, f"queried but never emitted: {sorted(queried - emitted)}"
    # and the Metrics table (docs/operating.md) names every series of ours this run emitted
    ours = {s.name.removeprefix("zuora_sync.") for s in samples if s.name.startswith("zuora_sync.")}
    assert ours <= dashboard.readme_series(), sorted(ours - dashboard.readme_series())


def test_otlp_series_match_the_ledger_with_tags_as_attributes(sync_dag, sync_env, otlp, airflow_metrics):
    airflow_metrics(otel_on=True, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=otlp.endpoint)
    result, rows = a_run_with_one_failed_customer(sync_dag, sync_env)
    flush_otel()
    assert otlp.requests and all(path == "/v1/metrics" for path, _ in otlp.requests)
    samples = otlp.samples()

    assert_series_match_the_ledger(samples, rows)
    # the fleet-wide histogram (milliseconds), by environment: both customers' syncs
    [duration] = samples.of("zuora_sync.customer_sync.duration")
    assert duration.tags == {"environment": "sandbox"}
    assert duration.unit == "ms" and duration.count == 2
    counter = samples.of("zuora_sync.customer_sync.succeeded", customer="acme")[0]
    assert counter.kind == "counter" and counter.tags["environment"] == "sandbox"


@pytest.mark.parametrize("influx", [False, True])
def test_plain_statsd_keeps_customers_out_of_names(statsd, airflow_metrics, influx):
    """Per-customer series are tags: plain StatsD gets fleet totals under fixed names, and
    only statsd_influxdb_enabled appends the tags."""
    from zuora import metrics

    airflow_metrics(
        statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port, statsd_influxdb_enabled=influx
    )
    metrics.alert_raised("failure,rate=1")  # a kind that would break InfluxDB-style tags
    [line] = [line for line in statsd.samples() and statsd.lines if "alerts" in line]
    if influx:
        assert line == "airflow.zuora_sync.alerts.raised,kind=failure_rate_1:1|c"
    else:
        assert line == "airflow.zuora_sync.alerts.raised:1|c"


@pytest.mark.parametrize("influx", [False, True])
def test_the_usage_gauges_need_tags(statsd, airflow_metrics, migrated_uri, influx):
    """A customer's usage gauge goes only to a backend that keeps its tags: plain StatsD
    would get one gauge that every customer overwrites."""
    from zuora import metrics
    from zuora.settings import Thresholds

    airflow_metrics(
        statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port, statsd_influxdb_enabled=influx
    )
    with psycopg.connect(migrated_uri) as conn:
        for customer, tasks in (("acme", 700), ("globex", 300)):
            warehouse.upsert_customer(
                conn,
                customer_id=customer,
                name=customer,
                zuora_conn_id=f"zuora_{customer}",
                environment="sandbox",
            )
            conn.execute(
                "INSERT INTO zuora.task_usage (customer_id, day, task_count, read_at, run_id) "
                "VALUES (%s, (now() AT TIME ZONE 'UTC')::date, %s, now(), 'r')",
                (customer, tasks),
            )
            conn.execute(
                "INSERT INTO zuora.task_usage_reads (customer_id, checked_at, available, first_day, last_day, "
                "days, run_id) VALUES (%s, now(), true, current_date, current_date, 1, 'r')",
                (customer,),
            )
        set_task_allowance(conn, "acme", 1000)
        metrics.monitor_figures(conn, Thresholds())
    usage = {(s.name, s.tags.get("customer")): s.value for s in statsd.samples() if ".task_usage." in s.name}
    if influx:
        assert usage == {
            ("zuora_sync.task_usage.month_tasks", "acme"): 700,
            ("zuora_sync.task_usage.allowance_share", "acme"): 0.7,
            ("zuora_sync.task_usage.month_tasks", "globex"): 300,
        }
    else:
        assert usage == {}


def test_where_no_task_runner_set_stats_up_the_module_does_it_from_the_config(
    statsd, airflow_metrics, monkeypatch
):
    """dag.test(), the CLI, the triggerer's deadline callback: Airflow's task-side Stats was
    never initialised there; the module sets it up from ``[metrics]`` as the runner would."""
    from airflow.sdk.observability import stats

    from zuora import metrics

    airflow_metrics()  # Airflow's defaults: no backend
    stats.initialize(factory=None, export_legacy_names=True)  # as in a process no runner set up
    monkeypatch.setattr(metrics, "_initialized_here", False)
    for key, value in {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": statsd.port}.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", str(value))
    metrics.alert_raised("deadline_missed")
    assert statsd.samples() and statsd.lines == ["airflow.zuora_sync.alerts.raised:1|c"]


def test_a_production_customer_on_a_host_outside_the_catalogue_is_tagged_production(
    sync_dag, sync_env, statsd, airflow_metrics, monkeypatch
):
    """Customers registered as production whose Zuora host is not in the host catalogue (a
    proxy, a vanity host; here the simulator on 127.0.0.1, their connections naming no
    environment): the ledger records the host's environment as unknown (initech's failed
    sync keeps it), the series say production, so a dashboard filtered to production shows
    both."""
    airflow_metrics(
        statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port, statsd_influxdb_enabled=True
    )
    for customer, secret in (("hooli", None), ("initech", "not-the-secret")):
        tenant = sync_env(customer, workflows=2)
        connection = airflow_connection(
            tenant.base_url, tenant.client_id, secret or tenant.client_secret, allow_insecure_http=True
        )
        monkeypatch.setenv(f"AIRFLOW_CONN_ZUORA_{customer.upper()}", json.dumps(connection))
        with psycopg.connect(sync_env.uri) as conn:
            warehouse.upsert_customer(
                conn,
                customer_id=customer,
                name=customer.title(),
                zuora_conn_id=f"zuora_{customer}",
                environment="production",
            )
    result = sync_dag.test(run_conf={"customer_ids": [], "full_refresh": False})
    assert result.state == "failed"  # initech's credentials are refused
    with psycopg.connect(sync_env.uri) as conn:
        ledger_rows = conn.execute(
            "SELECT customer_id, status, zuora_environment FROM zuora.sync_runs WHERE run_id = %s ORDER BY 1",
            (result.run_id,),
        ).fetchall()
    assert ledger_rows[1] == ("initech", "failed", "unknown")
    ours = [s for s in statsd.samples() if s.name.startswith("zuora_sync.") and "environment" in s.tags]
    tagged = {
        (s.tags.get("customer"), s.tags["environment"])
        for s in ours
        if s.name.startswith("zuora_sync.customer_sync.")
    }
    assert tagged == {("hooli", "production"), ("initech", "production"), (None, "production")}
