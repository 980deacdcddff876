"""What the Zuora sync page reads from the warehouse: plain SQL over ``zuora.customers``,
``sync_runs``, ``dead_letters``, the views ``open_dead_letters``, ``workflow_version_changes``
and ``environment_drift``, ``restores`` and ``alerts``; every call in one read-only
transaction (``read_only(conn)``).

    fleet(conn, query) -> {"summary", "total", "customers"}     one row per customer, worst first
    fleet_days(conn) -> [day]                                   the fleet's last 30 days
    customer(conn, customer_id) -> {...} | None                 one customer's own view

Never selected: originals (``original_encrypted``, ``original_hash``), payloads, restore plans
and Zuora's answers to them, connection ids: what is not read cannot reach the page.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

DAYS = 30  # the window of rates, durations, trends and charts
STALE_AFTER = timedelta(hours=36)  # no successful sync for this long: stale (daily schedule + slack)
HEALTH_ORDER = ("failing", "stale", "running", "ok", "disabled")
ENVIRONMENTS = ("production", "sandbox")
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
RECENT_SYNCS = 30
LIST_LIMIT = 50  # dead letters, changes, restores, alerts shown per customer
TEXT_LIMIT = 300  # characters of an error message in a table cell


@dataclass(frozen=True)
class FleetQuery:
    """Search and filters of the fleet table: ``q`` matches customer id or name."""

    q: str = ""
    environment: str = ""
    health: str = ""
    page: int = 1
    page_size: int = PAGE_SIZE


@contextlib.contextmanager
def read_only(conn) -> Iterator:
    """One read-only transaction (rolled back after: nothing to keep) with a time limit."""
    conn.read_only = True
    try:
        conn.execute("SET LOCAL statement_timeout = '10s'")
        yield conn
    finally:
        conn.rollback()


def _rows(conn, sql: str, params: Any = None) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# Each customer's last run, last success and health: cheap per customer (index lookups), so it
# is computed for all of them; filtered, ordered worst first and cut to one page.
_BASE = """
WITH base AS (
    SELECT c.customer_id, c.name, c.environment, c.enabled, c.tenant_group,
           last_run.run_id       AS last_run_id,
           last_run.status       AS last_status,
           last_run.started_at   AS last_run_at,
           last_run.finished_at  AS last_finished_at,
           last_run.duration_seconds AS last_duration_seconds,
           last_run.api_requests AS last_api_requests,
           last_run.rate_limited AS last_rate_limited,
           last_run.retries      AS last_retries,
           last_run.versions_pending,
           left(last_run.error, %(text_limit)s) AS last_error,
           last_ok.finished_at   AS last_success_at,
           CASE WHEN NOT c.enabled THEN 'disabled'
                WHEN last_run.status = 'failed' THEN 'failing'
                WHEN last_ok.finished_at IS NULL
                  OR last_ok.finished_at < now() - %(stale_after)s THEN
                     CASE WHEN last_run.status = 'running' THEN 'running' ELSE 'stale' END
                WHEN last_run.status = 'running' THEN 'running'
                ELSE 'ok'
           END AS health
      FROM zuora.customers c
      LEFT JOIN LATERAL (
            SELECT r.run_id, r.status, r.started_at, r.finished_at, r.duration_seconds,
                   r.api_requests, r.rate_limited, r.retries, r.versions_pending, r.error
              FROM zuora.sync_runs r
             WHERE r.customer_id = c.customer_id
             ORDER BY r.started_at DESC LIMIT 1) last_run ON true
      LEFT JOIN LATERAL (
            SELECT r.finished_at FROM zuora.sync_runs r
             WHERE r.customer_id = c.customer_id AND r.status = 'success'
             ORDER BY r.started_at DESC LIMIT 1) last_ok ON true
)
"""

_FLEET_PAGE = (
    _BASE
    + """
, chosen AS (
    SELECT * FROM base
     WHERE (%(q)s = '' OR strpos(lower(customer_id), lower(%(q)s)) > 0
                       OR strpos(lower(name), lower(%(q)s)) > 0)
       AND (%(environment)s = '' OR environment = %(environment)s)
       AND (%(health)s = '' OR health = %(health)s)
)
SELECT *, count(*) OVER () AS total
  FROM chosen
 ORDER BY array_position(%(order)s::text[], health), last_success_at NULLS FIRST, customer_id
 LIMIT %(limit)s OFFSET %(offset)s
"""
)

_SUMMARY = (
    _BASE
    + """
SELECT health, count(*) AS customers FROM base GROUP BY health
"""
)

# Rates, durations and the daily median duration of the customers on the page.
_STATS = """
SELECT r.customer_id,
       count(*) FILTER (WHERE r.status <> 'running' AND r.started_at > now() - interval '7 days') AS finished_7d,
       count(*) FILTER (WHERE r.status = 'success' AND r.started_at > now() - interval '7 days')  AS successes_7d,
       count(*) FILTER (WHERE r.status <> 'running')                                               AS finished_30d,
       count(*) FILTER (WHERE r.status = 'success')                                                AS successes_30d,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.duration_seconds)                             AS median_duration_seconds,
       max(r.duration_seconds)                                                                     AS max_duration_seconds
  FROM zuora.sync_runs r
 WHERE r.customer_id = ANY(%(ids)s) AND r.started_at > now() - make_interval(days => %(days)s)
 GROUP BY r.customer_id
"""

_TREND = """
SELECT customer_id, array_agg(days_ago ORDER BY days_ago) AS days_ago,
       array_agg(median ORDER BY days_ago) AS medians
  FROM (SELECT r.customer_id,
               (now() AT TIME ZONE 'UTC')::date - (r.started_at AT TIME ZONE 'UTC')::date AS days_ago,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY r.duration_seconds) AS median
          FROM zuora.sync_runs r
         WHERE r.customer_id = ANY(%(ids)s) AND r.duration_seconds IS NOT NULL
           AND r.started_at >= ((now() AT TIME ZONE 'UTC')::date - (%(days)s - 1))::timestamp AT TIME ZONE 'UTC'
         GROUP BY 1, 2) d
 GROUP BY customer_id
"""

_DEAD_LETTERS = """
SELECT dl.customer_id, count(*) AS open_dead_letters,
       left((array_agg(dl.error_type || ': ' || dl.message ORDER BY dl.last_failed_at DESC))[1],
            %(text_limit)s) AS newest_dead_letter,
       max(dl.last_failed_at) AS newest_dead_letter_at
  FROM zuora.dead_letters dl
 WHERE dl.customer_id = ANY(%(ids)s) AND dl.resolved_at IS NULL
 GROUP BY dl.customer_id
"""

_DRIFT = """
SELECT tenant_group, state, count(*) AS workflows
  FROM zuora.environment_drift
 WHERE tenant_group = ANY(%(groups)s)
 GROUP BY 1, 2
"""

DRIFT_STATES = ("different", "duplicate_name", "only_sandbox", "only_production", "unknown", "same")


def fleet(conn, query: FleetQuery) -> dict[str, Any]:
    """``summary`` (customers per health, all of them), ``total`` (matching the query) and
    one page of ``customers``, failing and stale first, each with its figures."""
    params = {
        "text_limit": TEXT_LIMIT,
        "stale_after": STALE_AFTER,
        "q": query.q,
        "environment": query.environment,
        "health": query.health,
        "order": list(HEALTH_ORDER),
        "limit": query.page_size,
        "offset": (query.page - 1) * query.page_size,
    }
    summary = dict.fromkeys(HEALTH_ORDER, 0)
    for row in _rows(conn, _SUMMARY, params):
        summary[row["health"]] = row["customers"]
    customers = _rows(conn, _FLEET_PAGE, params)
    total = customers[0]["total"] if customers else 0
    for row in customers:
        del row["total"]
    _add_figures(conn, customers)
    return {"summary": summary, "total": total, "customers": customers}


def _add_figures(conn, customers: list[dict[str, Any]]) -> None:
    ids = [row["customer_id"] for row in customers]
    if not ids:
        return
    params = {"ids": ids, "days": DAYS, "text_limit": TEXT_LIMIT}
    stats = {row.pop("customer_id"): row for row in _rows(conn, _STATS, params)}
    trends = {row["customer_id"]: row for row in _rows(conn, _TREND, params)}
    letters = {row.pop("customer_id"): row for row in _rows(conn, _DEAD_LETTERS, params)}
    groups = sorted({row["tenant_group"] for row in customers if row["tenant_group"]})
    drift: dict[str, dict[str, int]] = {}
    if groups:
        for row in _rows(conn, _DRIFT, {"groups": groups}):
            drift.setdefault(row["tenant_group"], dict.fromkeys(DRIFT_STATES, 0))[row["state"]] = row[
                "workflows"
            ]
    for row in customers:
        figures = stats.get(row["customer_id"], {})
        row["success_rate_7d"] = _rate(figures.get("successes_7d"), figures.get("finished_7d"))
        row["success_rate_30d"] = _rate(figures.get("successes_30d"), figures.get("finished_30d"))
        row["finished_30d"] = figures.get("finished_30d", 0)
        row["median_duration_seconds"] = figures.get("median_duration_seconds")
        row["max_duration_seconds"] = figures.get("max_duration_seconds")
        row["duration_trend"] = _trend(trends.get(row["customer_id"]))
        found = letters.get(row["customer_id"], {})
        row["open_dead_letters"] = found.get("open_dead_letters", 0)
        row["newest_dead_letter"] = found.get("newest_dead_letter")
        row["newest_dead_letter_at"] = found.get("newest_dead_letter_at")
        row["drift"] = drift.get(row["tenant_group"]) if row["tenant_group"] else None


def _rate(successes: int | None, finished: int | None) -> float | None:
    return round((successes or 0) / finished, 4) if finished else None


def _trend(found: dict[str, Any] | None) -> list[float | None]:
    """The median duration of each of the last ``DAYS`` days (UTC), oldest first; None for a
    day without a finished run."""
    series: list[float | None] = [None] * DAYS
    if found:
        for days_ago, median in zip(found["days_ago"], found["medians"], strict=True):
            if 0 <= days_ago < DAYS:
                series[DAYS - 1 - days_ago] = median
    return series


_FLEET_DAYS = """
WITH days AS (
    SELECT generate_series((now() AT TIME ZONE 'UTC')::date - (%(days)s - 1),
                           (now() AT TIME ZONE 'UTC')::date, interval '1 day')::date AS day
),
runs AS (
    SELECT r.customer_id, r.run_id, r.status, r.started_at, r.finished_at, r.duration_seconds,
           (r.started_at AT TIME ZONE 'UTC')::date AS day
      FROM zuora.sync_runs r
     WHERE r.started_at >= ((now() AT TIME ZONE 'UTC')::date - (%(days)s - 1))::timestamp AT TIME ZONE 'UTC'
),
per_day AS (
    SELECT day,
           count(DISTINCT customer_id) FILTER (WHERE status = 'success') AS synced,
           count(DISTINCT customer_id) FILTER (WHERE status = 'failed')  AS failed,
           count(*)                                                      AS customer_syncs,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) AS median_duration_seconds,
           max(duration_seconds)                                         AS max_duration_seconds
      FROM runs GROUP BY day
),
run_walls AS (   -- a DAG run's wall time: first customer started to last one finished
    SELECT min(day) AS day,
           extract(epoch FROM max(finished_at) - min(started_at))::float8 AS wall_seconds
      FROM runs GROUP BY run_id
)
SELECT d.day, coalesce(p.synced, 0) AS synced, coalesce(p.failed, 0) AS failed,
       coalesce(p.customer_syncs, 0) AS customer_syncs,
       p.median_duration_seconds, p.max_duration_seconds,
       (SELECT max(w.wall_seconds) FROM run_walls w WHERE w.day = d.day) AS run_seconds
  FROM days d LEFT JOIN per_day p USING (day)
 ORDER BY d.day
"""


def fleet_days(conn) -> list[dict[str, Any]]:
    """The last ``DAYS`` days (UTC), oldest first: customers synced and failed (a customer
    with both counts in both), customer syncs, median and slowest customer sync, and the
    longest DAG run's wall time (first customer started to last finished)."""
    return _rows(conn, _FLEET_DAYS, {"days": DAYS})


_CUSTOMER = """
SELECT customer_id, name, environment, enabled, tenant_group, created_at
  FROM zuora.customers WHERE customer_id = %(id)s
"""

_RECENT_SYNCS = """
SELECT run_id, status, started_at, finished_at, duration_seconds, api_requests, token_mints,
       rate_limited, retries, pages, listed, listing_complete, exported, exports_unchanged,
       exports_failed, inserted, updated, unchanged, deleted, restored, invalid, stored,
       dead_lettered, definitions_changed, versions_listed, versions_exported, versions_failed,
       versions_pending, left(error, %(text_limit)s) AS error, zuora_environment
  FROM zuora.sync_runs
 WHERE customer_id = %(id)s
 ORDER BY started_at DESC
 LIMIT %(limit)s
"""

_OPEN_DEAD_LETTERS = """
SELECT dead_letter_id, stage, zuora_id, workflow_name, error_type,
       left(message, %(text_limit)s) AS message, attempts, first_failed_at, last_failed_at,
       last_run_id
  FROM zuora.open_dead_letters
 WHERE customer_id = %(id)s
 ORDER BY last_failed_at DESC, dead_letter_id DESC
 LIMIT %(limit)s
"""

_CHANGES = """
SELECT zuora_id, name, version, previous_version, status, zuora_updated_at, exported,
       task_count, tasks_added, tasks_removed, tasks_changed, settings_changed
  FROM zuora.workflow_version_changes
 WHERE customer_id = %(id)s
 ORDER BY zuora_updated_at DESC NULLS LAST, zuora_id, version_order DESC
 LIMIT %(limit)s
"""

_RESTORES = """
SELECT restore_id, requested_at, requested_by, applied, status, source_customer_id,
       source_zuora_id, source_version, target_customer_id, target_zuora_id, mode, activate,
       new_version, zuora_status, left(message, %(text_limit)s) AS message
  FROM zuora.restores
 WHERE source_customer_id = %(id)s OR target_customer_id = %(id)s
 ORDER BY requested_at DESC, restore_id DESC
 LIMIT %(limit)s
"""

# The monitor names a customer in an alert's details as customer_id, in customers, or as
# most_limited_customer.
_ALERTS = """
SELECT alert_id, raised_at, kind, severity, title
  FROM zuora.alerts
 WHERE raised_at > now() - make_interval(days => %(days)s)
   AND (details @> jsonb_build_object('customer_id', %(id)s::text)
        OR details @> jsonb_build_object('customers', jsonb_build_array(%(id)s::text))
        OR details @> jsonb_build_object('most_limited_customer', %(id)s::text))
 ORDER BY raised_at DESC, alert_id DESC
 LIMIT %(limit)s
"""


def customer(conn, customer_id: str) -> dict[str, Any] | None:
    """One customer: its row with the fleet figures, its last ``RECENT_SYNCS`` syncs (newest
    first), open dead letters, recent version changes, restores and promotions (as source or
    target) and the monitor's alerts of the last ``DAYS`` days naming it; None if unknown."""
    params = {"id": customer_id, "text_limit": TEXT_LIMIT, "days": DAYS, "limit": LIST_LIMIT}
    found = _rows(conn, _CUSTOMER, params)
    if not found:
        return None
    row = _rows(
        conn,
        _BASE + "SELECT * FROM base WHERE customer_id = %(id)s",
        {**params, "stale_after": STALE_AFTER},
    )[0]
    _add_figures(conn, [row])
    return {
        "customer": {**row, "created_at": found[0]["created_at"]},
        "syncs": _rows(conn, _RECENT_SYNCS, {**params, "limit": RECENT_SYNCS}),
        "dead_letters": _rows(conn, _OPEN_DEAD_LETTERS, params),
        "changes": _rows(conn, _CHANGES, params),
        "restores": _rows(conn, _RESTORES, params),
        "alerts": _rows(conn, _ALERTS, params),
    }
