"""The data team's side of task usage: the allowance set by the CLI, zuora.usage_per_month
(month to date, allowance, projection) and zuora.usage_per_day (the day before, the day's
transitions) over usage the sync read from the simulator, the example queries of
docs/data-team.md, and the read-only role."""

from __future__ import annotations

import calendar
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from zuora import cli, monitor, sync
from zuora.warehouse.usage import first_read_day, set_task_allowance

ROOT = Path(__file__).resolve().parents[2]
D = timedelta(days=1)
NEW = ("task_usage", "task_usage_reads", "workflow_events", "usage_per_month", "usage_per_day")


def doc_queries() -> list[str]:
    """The SQL examples of docs/data-team.md's task usage section."""
    text = (ROOT / "docs" / "data-team.md").read_text()
    section = text.split("## Task usage and switched-off workflows")[1].split("\n## ")[0]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def test_the_allowance_is_set_by_the_cli_and_kept_by_add_customer(env, sim_tenant, capsys):
    tenant = sim_tenant(workflows=1)
    env.customer("acme", tenant)
    assert cli.main(["set-allowance", "acme", "50,000"]) == 0
    assert "task allowance 50,000 tasks a month" in capsys.readouterr().out
    assert env.query("SELECT task_allowance FROM zuora.customers") == [(50000,)]
    # add-customer run again (a secret rotated): the allowance stays unless given
    base = ["add-customer", "acme", "--name", "Acme", "--environment", "sandbox", "--no-airflow-connection"]
    assert cli.main(base) == 0
    assert env.query("SELECT task_allowance FROM zuora.customers") == [(50000,)]
    assert cli.main([*base, "--task-allowance", "75000"]) == 0
    assert env.query("SELECT task_allowance FROM zuora.customers") == [(75000,)]
    assert cli.main(["set-allowance", "acme", "none"]) == 0
    assert env.query("SELECT task_allowance FROM zuora.customers") == [(None,)]
    with pytest.raises(SystemExit, match="no customer 'nobody' in zuora.customers"):
        cli.main(["set-allowance", "nobody", "10"])
    for bad in ("0", "-5", "lots"):
        with pytest.raises(SystemExit):
            cli.main(["set-allowance", "acme", bad])
    assert "a task allowance is a whole number" in capsys.readouterr().err


def test_usage_per_month_gives_month_to_date_allowance_and_projection(env, sim_tenant, clock):
    tenant = sim_tenant(workflows=2, usage={"tasks_per_day": 1000})
    acme = env.customer("acme", tenant)
    cli.main(["set-allowance", "acme", "30000"])
    # read on the 15th of last month at noon (days the simulator has all of): from the 1st of
    # the month before
    last_month = (clock.today.replace(day=1) - D).replace(day=1)
    read_at = clock.at(last_month.replace(day=15), 12)
    sync.list_stage(acme, "run-1")
    before = (last_month - D).replace(day=1)
    rows = env.query(
        "SELECT month, days_in_month, tasks, days_read, elapsed_days, projected_tasks, task_allowance, "
        "used_share, projected_share, current_month, usage_available FROM zuora.usage_per_month ORDER BY month"
    )
    full = calendar.monthrange(before.year, before.month)[1]
    days = calendar.monthrange(last_month.year, last_month.month)[1]
    projected = Decimal(15000) / Decimal("14.5") * days
    assert rows == [
        (
            before,
            full,
            1000 * full,
            full,
            Decimal(full),
            1000 * full,
            30000,
            round(Decimal(full) / 30, 4),
            round(Decimal(full) / 30, 4),
            False,
            True,
        ),
        (
            last_month,
            days,
            15000,
            15,
            Decimal("14.500"),
            round(projected),
            30000,
            Decimal("0.5000"),
            round(projected / 30000, 4),
            False,
            True,
        ),
    ]
    assert env.query("SELECT max(read_at) FROM zuora.task_usage") == [(read_at,)]
    # the current month once read today: a projection only after a whole day of it
    clock.at(clock.today, 10)
    sync.list_stage(acme, "run-2")
    [(current, projected_now)] = env.query(
        "SELECT current_month, projected_tasks FROM zuora.usage_per_month WHERE month = date_trunc('month', %s::date)",
        clock.today,
    )
    assert current and (projected_now is None) == (clock.today.day == 1)


def test_usage_per_day_and_the_doc_queries_join_usage_to_version_changes(env, sim_tenant, clock):
    tenant = sim_tenant(workflows=0, usage={"tasks_per_day": 1000})
    wid = tenant.add_workflow(name="Late fees", ts_format="iso_z")["id"]
    acme = env.customer("acme", tenant)
    clock.at(clock.today, 8)
    sync.run_customer(acme, "run-1")
    tenant.update_workflow(wid)  # 0.0.2 activated today
    sync.run_customer(acme, "run-2")
    t = clock.today
    # the day's usage doubled (today's count is still growing: set as if read at its end)
    env.query("UPDATE zuora.task_usage SET task_count = 2100 WHERE day = %s RETURNING 1", t)
    rows = env.query(
        "SELECT day, task_count, previous_task_count, change, ratio, events FROM zuora.usage_per_day "
        "WHERE day >= %s ORDER BY day",
        t - D,
    )
    assert rows == [
        (t - D, 1000, 1000, 0, Decimal("1.000"), []),
        (t, 2100, 1000, 1100, Decimal("2.100"), ["'Late fees' 0.0.2 version_changed"]),
    ]
    this_month, usage_alerts, switched_off, doubled, per_day = doc_queries()
    with psycopg.connect(env.uri) as conn:
        assert conn.execute(doubled).fetchall() == [
            ("acme", "Late fees", "0.0.1", "0.0.2", t, 1000, 2100, Decimal("2.10"))
        ]
        assert conn.execute(this_month).fetchall()[0][:2] == ("acme", "Acme")
        assert conn.execute(switched_off).fetchall() == []
        stored_days = (t - first_read_day(t)).days + 1  # since the first read: this month and last
        assert [row[0] for row in conn.execute(per_day).fetchall()] == [
            t - n * D for n in reversed(range(min(30, stored_days)))
        ]
        tenant.update_workflow(wid, status="Inactive", bump_version=False, change_content=False)
        sync.run_customer(acme, "run-3")
        assert [row[:4] for row in conn.execute(switched_off).fetchall()] == [
            ("acme", wid, "Late fees", "0.0.2")
        ]
        # past its allowance this month (2,100 tasks today alone): the monitor's alert
        assert conn.execute(usage_alerts).fetchall() == []
        set_task_allowance(conn, "acme", 1000)
        kinds = [alert["kind"] for alert in monitor.check_and_raise(conn, monitor.Thresholds())]
        assert kinds == ["task_usage_100", "workflow_deactivated"]
        [(_, kind, customer, month, used_share, channel)] = conn.execute(usage_alerts).fetchall()
        assert (kind, customer, month, channel) == ("task_usage_100", "acme", t.strftime("%Y-%m"), "log")
        assert used_share >= Decimal("2.1")


def test_the_reader_role_reads_the_usage_tables_and_views(env):
    with psycopg.connect(env.uri) as conn:
        for name in NEW:
            assert conn.execute(
                "SELECT has_table_privilege('zuora_reader', %s, 'SELECT')", (f"zuora.{name}",)
            ).fetchone()[0], name
            assert not conn.execute(
                "SELECT has_table_privilege('zuora_reader', %s, 'INSERT')", (f"zuora.{name}",)
            ).fetchone()[0], name
        conn.execute("SET ROLE zuora_reader")
        for name in NEW:
            conn.execute(f"SELECT * FROM zuora.{name}").fetchall()
