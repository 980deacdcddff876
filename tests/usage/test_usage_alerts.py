"""The monitor's alerts on task usage and on workflows switched off in Zuora (issue 31), decided
by its real checks (``monitor.check_and_raise`` at an explicit ``now``) over what the sync read
from the simulator over HTTP into a real warehouse, sent to a real webhook and counted at a
real StatsD receiver (``zuora_sync.alerts.raised{kind}``): each usage alert once per customer
and month (80 %, 100 %, the projection before the 20th), again the next month; a deactivation
alert once per event, none for a restore's change, an old event or one from the history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg

from zuora import monitor, restore, sync
from zuora.warehouse.sql import sql_text
from zuora.warehouse.usage import set_task_allowance

D = timedelta(days=1)
HOUR = timedelta(hours=1)


def month_start(today: date, months_back: int) -> date:
    month = today.year * 12 + today.month - 1 - months_back
    return date(month // 12, month % 12 + 1, 1)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def check_and_raise(env, now: datetime) -> list[tuple[str, str]]:
    """The monitor's hourly decision at ``now``: (kind, channel) of each alert it sent."""
    with psycopg.connect(env.uri) as conn:
        return [
            (a["kind"], a["channel"]) for a in monitor.check_and_raise(conn, monitor.Thresholds(), now=now)
        ]


def allowance(env, customer_id: str, tasks: int | None) -> None:
    with psycopg.connect(env.uri) as conn:
        set_task_allowance(conn, customer_id, tasks)


def test_each_usage_alert_once_per_customer_and_month_and_again_the_next_month(
    env, sim_tenant, clock, webhook, statsd, airflow_metrics
):
    airflow_metrics(
        statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port, statsd_influxdb_enabled=True
    )
    tenant = sim_tenant(workflows=2, usage={"tasks_per_day": 1000})
    acme = env.customer("acme", tenant)
    allowance(env, "acme", 40_000)
    a, b = month_start(clock.today, 2), month_start(clock.today, 1)  # two whole months gone

    def day(day: date) -> list[tuple[str, str]]:
        """The customer's sync reads its usage that day at noon; the monitor checks at 13:00."""
        clock.at(day, 12)
        sync.list_stage(acme, f"run-{day}")
        return check_and_raise(env, at(day, 13))

    # the 5th: 5,000 tasks (12.5 %), projected 5,000 / 4.5 days x 28..31 days: 78..86 %
    assert day(a.replace(day=5)) == []
    tenant.update(usage={"tasks_per_day": 3000})
    # the 8th: 18,000 (45 %), projected 18,000 / 7.5 x 28..31 = 67,200..74,400: over 100 %
    assert day(a.replace(day=8)) == [("task_usage_projected", "http")]
    assert check_and_raise(env, at(a.replace(day=8), 20)) == []  # not again that month
    assert day(a.replace(day=11)) == []  # 27,000: 67.5 %
    assert day(a.replace(day=13)) == [("task_usage_80", "http")]  # 33,000: 82.5 %
    assert day(a.replace(day=15)) == []  # 39,000: 97.5 %
    assert day(a.replace(day=16)) == [("task_usage_100", "http")]  # 42,000: 105 %
    assert day(a.replace(day=19)) == []  # 51,000, projected over 100 %: all said this month
    # the next month: each again, once
    assert day(b.replace(day=3)) == [("task_usage_projected", "http")]  # 9,000, projected 3,600 a day
    assert day(b.replace(day=11)) == [("task_usage_80", "http")]  # 33,000
    assert day(b.replace(day=14)) == [("task_usage_100", "http")]  # 42,000
    assert day(b.replace(day=15)) == []

    month_a, month_b = a.strftime("%Y-%m"), b.strftime("%Y-%m")
    sent = [
        (alert["kind"], alert["details"]["month"], alert["details"]["tasks"]) for alert in webhook.received
    ]
    assert sent == [
        ("task_usage_projected", month_a, 18_000),
        ("task_usage_80", month_a, 33_000),
        ("task_usage_100", month_a, 42_000),
        ("task_usage_projected", month_b, 9_000),
        ("task_usage_80", month_b, 33_000),
        ("task_usage_100", month_b, 42_000),
    ]
    projected, eighty, full = webhook.received[:3]
    assert projected["details"]["projected_tasks"] == round(18_000 / 7.5 * (b - a).days)
    assert projected["title"].startswith("customer acme is on course for ")
    assert (eighty["severity"], eighty["details"]["used_share"], eighty["details"]["task_allowance"]) == (
        "warning",
        0.825,
        40_000,
    )
    assert (full["severity"], full["title"]) == (
        "critical",
        f"customer acme has used 105% of its monthly task allowance in {month_a}: 42,000 of 40,000 tasks",
    )
    stored = env.query("SELECT kind, details ->> 'customer_id', channel FROM zuora.alerts ORDER BY alert_id")
    assert stored == [(kind, "acme", "http") for kind, _, _ in sent]
    raised = statsd.samples().by_tag("zuora_sync.alerts.raised", "kind")
    assert raised == {"task_usage_projected": 2, "task_usage_80": 2, "task_usage_100": 2}


def test_the_projection_only_before_the_20th_and_a_jump_past_100_is_one_alert(
    env, sim_tenant, clock, webhook
):
    tenant = sim_tenant(workflows=2, usage={"tasks_per_day": 1000})
    globex = env.customer("globex", tenant)
    allowance(env, "globex", 60_000)
    month = month_start(clock.today, 1)
    clock.at(month.replace(day=20), 12)
    sync.list_stage(globex, "run-20")  # 20,000 (33 %), projected about 50 %
    assert check_and_raise(env, at(month.replace(day=20), 13)) == []

    tenant.update(usage={"tasks_per_day": 9000})  # the 19th to the 21st: 9,000 a day
    clock.at(month.replace(day=21), 12)
    sync.list_stage(globex, "run-21")
    assert env.query(
        "SELECT tasks, projected_share >= 1 FROM zuora.usage_per_month WHERE customer_id = 'globex' "
        "AND month = %s",
        month,
    ) == [(45_000, True)]  # 75 %, projected over 100 %: but on the 21st
    assert check_and_raise(env, at(month.replace(day=21), 13)) == []
    with psycopg.connect(env.uri) as conn:  # the same usage seen on the 19th: the projection
        assert [
            alert.kind for alert in monitor.check(conn, monitor.Thresholds(), now=at(month.replace(day=19)))
        ] == ["task_usage_projected"]

    allowance(env, "globex", 40_000)  # 112.5 % at once; the channel refuses the first try
    webhook.status = 500
    assert check_and_raise(env, at(month.replace(day=21), 14)) == [
        ("task_usage_100", "failed: AlertDeliveryError")
    ]
    webhook.status = 204
    assert check_and_raise(env, at(month.replace(day=21), 15)) == [("task_usage_100", "http")]  # sent now
    assert check_and_raise(env, at(month.replace(day=22), 9)) == []  # nor the 80 % one after it
    assert [alert["kind"] for alert in webhook.received] == ["task_usage_100", "task_usage_100"]

    with psycopg.connect(env.uri) as conn:  # a disabled customer is not alerted about
        conn.execute("UPDATE zuora.customers SET enabled = false")
        conn.execute("DELETE FROM zuora.alerts")
        conn.commit()
        assert monitor.check(conn, monitor.Thresholds(), now=at(month.replace(day=22))) == []


def deactivated(env) -> list[tuple]:
    return env.query(
        "SELECT event_id, seen_at, alerted_at IS NOT NULL FROM zuora.workflow_events "
        "WHERE kind = 'deactivated' ORDER BY event_id"
    )


def test_a_workflow_switched_off_in_zuora_is_alerted_once_a_restores_change_never(
    env, sim_tenant, webhook, statsd, airflow_metrics
):
    airflow_metrics(
        statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port, statsd_influxdb_enabled=True
    )
    tenant = sim_tenant(workflows=0)
    late = tenant.add_workflow(name="Late fees")["id"]
    tenant.update_workflow(late)  # 0.0.1 and the active 0.0.2
    dunning = tenant.add_workflow(name="Dunning")["id"]
    acme = env.customer("acme", tenant)
    sync.run_customer(acme, "run-1")

    # a restore of this product activates 0.0.1 of Late fees again; a person in Zuora
    # activates a new version of Dunning
    restore.run("acme", late, version="0.0.1", activate=True, requested_by="jane")
    restore.run("acme", late, version="0.0.1", activate=True, apply_it=True, requested_by="jane")
    tenant.update_workflow(dunning)
    sync.run_customer(acme, "run-2")
    assert env.query("SELECT kind, made_by FROM zuora.workflow_events ORDER BY zuora_id") == [
        ("version_changed", "restore"),
        ("version_changed", "zuora"),
    ]
    assert check_and_raise(env, datetime.now(UTC)) == []  # version changes are no alert

    tenant.update_workflow(dunning, status="Inactive", bump_version=False, change_content=False)
    sync.run_customer(acme, "run-3")  # Zuora switched Dunning off
    [(event_id, seen_at, alerted)] = deactivated(env)
    assert not alerted
    with psycopg.connect(env.uri) as conn:  # seen more than a day before the check: never
        assert monitor.check(conn, monitor.Thresholds(), now=seen_at + D + HOUR) == []
    assert check_and_raise(env, seen_at + HOUR) == [("workflow_deactivated", "http")]
    assert check_and_raise(env, seen_at + 2 * HOUR) == []  # once
    assert deactivated(env) == [(event_id, seen_at, True)]
    [alert] = webhook.received
    assert alert["kind"] == "workflow_deactivated" and alert["severity"] == "warning"
    assert alert["title"] == (
        f"workflow 'Dunning' ({dunning}) of customer acme was switched off in Zuora, not through this product"
    )
    assert {
        k: alert["details"][k] for k in ("customer_id", "event_id", "zuora_id", "workflow_name", "version")
    } == {
        "customer_id": "acme",
        "event_id": event_id,
        "zuora_id": dunning,
        "workflow_name": "Dunning",
        "version": "0.0.2",
    }
    assert datetime.fromisoformat(alert["details"]["seen_at"]) == seen_at

    # switched on again, then off again: a new event, a new alert
    tenant.update_workflow(dunning, status="Active", bump_version=False, change_content=False)
    sync.run_customer(acme, "run-4")
    tenant.update_workflow(dunning, status="Inactive", bump_version=False, change_content=False)
    sync.run_customer(acme, "run-5")
    [_, (second, seen_again, _)] = deactivated(env)
    assert check_and_raise(env, seen_again + HOUR) == [("workflow_deactivated", "http")]
    assert [a["details"]["event_id"] for a in webhook.received] == [event_id, second]
    assert [alerted for _, _, alerted in deactivated(env)] == [True, True]
    assert statsd.samples().by_tag("zuora_sync.alerts.raised", "kind") == {"workflow_deactivated": 2}


def test_events_from_before_the_alerts_do_not_flood_an_upgrade(env, sim_tenant, webhook):
    """The events migration 0010 derived from the history, and the syncs' events seen more
    than a day before the monitor first runs with these checks, are never alerted."""
    tenant = sim_tenant(workflows=0)
    ids = [tenant.add_workflow(name=f"Workflow {n}")["id"] for n in range(3)]
    acme = env.customer("acme", tenant)
    sync.run_customer(acme, "run-1")
    for wid in ids:
        tenant.update_workflow(wid, status="Inactive", bump_version=False, change_content=False)
    sync.run_customer(acme, "run-2")
    assert len(deactivated(env)) == 3
    now = datetime.now(UTC)

    migration = sql_text("migrations/0010_task_usage.sql")  # as on a warehouse upgraded to 0010
    backfill = migration.split("-- The transitions the history kept so far")[1].split("\n", 1)[1]
    env.query("DELETE FROM zuora.workflow_events RETURNING 1")
    env.query(backfill.strip().rstrip(";") + " RETURNING 1")
    assert env.query("SELECT DISTINCT kind, recorded_from FROM zuora.workflow_events") == [
        ("deactivated", "history")
    ]
    assert check_and_raise(env, now) == []

    env.query(
        "UPDATE zuora.workflow_events SET recorded_from = 'sync', seen_at = seen_at - interval '2 days' RETURNING 1"
    )
    assert check_and_raise(env, now) == []  # seen two days before: old news
    env.query("UPDATE zuora.workflow_events SET seen_at = seen_at + interval '2 days' RETURNING 1")
    assert check_and_raise(env, now) == [("workflow_deactivated", "http")] * 3  # recent: alerted
    assert webhook.received and len(webhook.received) == 3
