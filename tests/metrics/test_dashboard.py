"""The shipped monitoring files load and agree: the dashboard's datasources are the
provisioned ones, it shows every series of the Metrics table (docs/operating.md), and the statsd-exporter mapping
names every series of ours (what each panel queries was seen emitted: test_dag_metrics)."""

from __future__ import annotations

import json

import yaml

from tests.metrics import dashboard

PROVISIONING = dashboard.MONITORING / "grafana" / "provisioning"


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
