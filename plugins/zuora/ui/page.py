"""The Zuora sync page as HTML: Jinja2 templates (``templates/``) with autoescape on, so every
name, message and id from Zuora or an operator is text, never markup; charts are inline SVG
(``zuora.ui.charts``).

    fleet_html(data, days, usage, query, links, now, nonce) -> str
    customer_html(data, links, now, nonce) -> str
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import jinja2

from zuora.monitor import USAGE_SHARES
from zuora.ui import charts, queries


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("zuora.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(age=age, stamp=stamp, pct=pct, seconds=seconds, tasks=tasks, share_class=share_class)
    return env


def fleet_html(
    data: dict[str, Any],
    days: list[dict[str, Any]],
    usage: dict[str, Any],
    query: queries.FleetQuery,
    links: dict[str, Any],
    now: datetime,
    nonce: str,
) -> str:
    for row in data["customers"]:
        row["trend_svg"] = charts.sparkline(row["duration_trend"])
        row["usage_svg"] = usage_sparkline(row["usage_trend"])
    pages = max(1, -(-data["total"] // query.page_size))
    return (
        _environment()
        .get_template("fleet.html")
        .render(
            summary=data["summary"],
            total=data["total"],
            customers=data["customers"],
            top_consumers=usage["top_consumers"],
            switched_off=usage["switched_off"],
            switched_off_count=usage["switched_off_count"],
            charts={
                "customers": charts.fleet_bars(days),
                "runs": charts.duration_bars(days, "run_seconds", "longest sync run per day"),
                "median": charts.duration_bars(days, "median_duration_seconds", "median customer sync"),
            },
            query=query,
            pages=pages,
            links=links,
            environments=queries.ENVIRONMENTS,
            days=queries.DAYS,
            stale_hours=int(queries.STALE_AFTER.total_seconds() // 3600),
            pending_days=queries.HISTORY_PENDING_AFTER.days,
            now=now,
            nonce=nonce,
        )
    )


def customer_html(data: dict[str, Any], links: dict[str, Any], now: datetime, nonce: str) -> str:
    return (
        _environment()
        .get_template("customer.html")
        .render(
            c=data["customer"],
            syncs=data["syncs"],
            dead_letters=data["dead_letters"],
            changes=data["changes"],
            restores=data["restores"],
            alerts=data["alerts"],
            usage=data["usage"],
            switched_off=data["switched_off"],
            charts={
                "syncs": charts.sync_bars(data["syncs"]),
                "usage": charts.count_bars(data["usage_days"], "tasks", "tasks per day"),
            },
            links=links,
            days=queries.DAYS,
            now=now,
            nonce=nonce,
        )
    )


def other_dag_html(dag_id: str, sync_dag_id: str, link: str, nonce: str) -> str:
    return (
        _environment()
        .get_template("other_dag.html")
        .render(dag_id=dag_id, sync_dag_id=sync_dag_id, link=link, nonce=nonce)
    )


def error_html(status: int, detail: str, login: str | None, nonce: str) -> str:
    return (
        _environment()
        .get_template("error.html")
        .render(status=status, detail=detail, login=login, nonce=nonce)
    )


def age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago: "just now", "5 min ago", "3 h ago", "12 d ago"."""
    if value is None:
        return "–"
    seconds_ago = ((now or datetime.now(UTC)) - value).total_seconds()
    if seconds_ago < 60:
        return "just now"
    if seconds_ago < 3600:
        return f"{seconds_ago / 60:.0f} min ago"
    if seconds_ago < 48 * 3600:
        return f"{seconds_ago / 3600:.0f} h ago"
    return f"{seconds_ago / 86400:.0f} d ago"


def stamp(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%" if value in (0, 1) else f"{value * 100:.1f}%"


def seconds(value: float | None) -> str:
    return "–" if value is None else charts.seconds_text(value)


def tasks(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def share_class(value: float | None) -> str:
    """How a share of the task allowance looks: as the monitor's alerts, critical from 100 %,
    warning from 80 % (``zuora.monitor.USAGE_SHARES``)."""
    warning, critical = USAGE_SHARES.values()
    if value is None:
        return ""
    share = float(value)  # a Decimal from the warehouse: 0.8 is not below 80 %
    return "critical" if share >= critical else "warning" if share >= warning else ""


def usage_sparkline(values: list[int | None]):
    return charts.sparkline(values, label="tasks per day", fmt=charts.tasks_text, empty="no usage")
