"""What the Zuora sync page reads from the warehouse: plain SQL over ``zuora.customers``,
``sync_runs``, ``dead_letters``, the views ``open_dead_letters``, ``workflow_version_changes``
and ``environment_drift``, ``restores`` and ``alerts``, and task usage (``task_usage``,
``task_usage_reads``, the view ``usage_per_month``) and ``workflow_events``; every call in one
read-only transaction (``read_only(conn)``).

    fleet(conn, query) -> {"summary", "total", "customers"}     one row per customer, worst first
    fleet_days(conn) -> [day]                                   the fleet's last 30 days
    fleet_usage(conn) -> {"top_consumers", "switched_off"}      this month's most tasks, recent switch-offs
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
HISTORY_PENDING_AFTER = timedelta(days=3)  # version history pending this long, unbroken: degraded
# worst first; degraded: synced, but with open dead letters or a history pending for days
HEALTH_ORDER = ("failing", "stale", "degraded", "running", "ok", "disabled")
ENVIRONMENTS = ("production", "sandbox")
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
RECENT_SYNCS = 30
LIST_LIMIT = 50  # dead letters, changes, restores, alerts, switch-offs shown per customer
TOP_CONSUMERS = 10  # customers with the most tasks this month, on the fleet page
SWITCHED_OFF_LIMIT = 10  # the fleet's latest switch-offs in the last DAYS days
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
        conn.execute("SET LOCAL work_mem = '32MB'")  # 30 days of 1,000 customers sorted in memory
        conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")  # small reads: no worker start-up
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
    SELECT c.customer_id, c.name, c.environment, c.enabled, c.tenant_group, c.task_allowance,
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
                WHEN EXISTS (SELECT FROM zuora.dead_letters dl
                              WHERE dl.customer_id = c.customer_id AND dl.resolved_at IS NULL)
                  OR history.pending_for_days THEN 'degraded'
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
      LEFT JOIN LATERAL (   -- the last run left versions to fetch, as did every run for days
            SELECT before.versions_pending > 0
                   AND NOT EXISTS (SELECT FROM zuora.sync_runs r
                                    WHERE r.customer_id = c.customer_id AND r.versions_pending = 0
                                      AND r.started_at > now() - %(history_pending_after)s)
                   AS pending_for_days
              FROM (SELECT r.versions_pending FROM zuora.sync_runs r
                     WHERE r.customer_id = c.customer_id AND r.started_at <= now() - %(history_pending_after)s
                     ORDER BY r.started_at DESC LIMIT 1) before
             WHERE last_run.versions_pending > 0) history ON true
)
"""

_ALL = _BASE + "SELECT * FROM base"

# The last DAYS days (24-hour days back from now) of the customers on the page: counts and the
# slowest sync in SQL; durations with their UTC day, as two parallel arrays (in no particular
# order), for the median and the daily trend counted in Python.
_RECENT = """
SELECT r.customer_id,
       count(*) FILTER (WHERE r.status <> 'running' AND r.started_at > now() - interval '7 days') AS finished_7d,
       count(*) FILTER (WHERE r.status = 'success' AND r.started_at > now() - interval '7 days')  AS successes_7d,
       count(*) FILTER (WHERE r.status <> 'running')                                               AS finished_30d,
       count(*) FILTER (WHERE r.status = 'success')                                                AS successes_30d,
       max(r.duration_seconds)                                                                     AS max_duration_seconds,
       array_agg((now() AT TIME ZONE 'UTC')::date - (r.started_at AT TIME ZONE 'UTC')::date)
           FILTER (WHERE r.duration_seconds IS NOT NULL)                                           AS days_ago,
       array_agg(r.duration_seconds) FILTER (WHERE r.duration_seconds IS NOT NULL)                 AS durations
  FROM zuora.sync_runs r
 WHERE r.customer_id = ANY(%(ids)s) AND r.started_at > now() - make_interval(days => %(days)s)
 GROUP BY r.customer_id
"""

_DEAD_LETTERS = """
SELECT dl.customer_id, count(*) AS open_dead_letters,
       left((array_agg(dl.error_type || ': ' || dl.message ORDER BY dl.last_failed_at DESC))[1],
            %(text_limit)s) AS newest_dead_letter,
       max(dl.last_failed_at) AS newest_dead_letter_at,
       min(dl.first_failed_at) AS oldest_dead_letter_at
  FROM zuora.dead_letters dl
 WHERE dl.customer_id = ANY(%(ids)s) AND dl.resolved_at IS NULL
 GROUP BY dl.customer_id
"""

# Since when the history has been pending without a break: the first run that left versions
# to fetch after the last one that left none.
_HISTORY_PENDING = """
SELECT c.customer_id,
       (SELECT min(r.started_at) FROM zuora.sync_runs r
         WHERE r.customer_id = c.customer_id AND r.versions_pending > 0
           AND r.started_at > coalesce((SELECT max(done.started_at) FROM zuora.sync_runs done
                                         WHERE done.customer_id = c.customer_id AND done.versions_pending = 0),
                                       '-infinity')) AS history_pending_since
  FROM unnest(%(ids)s::text[]) AS c (customer_id)
"""

# The task usage of the customers on the page: this UTC month's tasks, the last DAYS days' counts
# (days ago and tasks, two parallel arrays), and the last answer to the usage call.
_USAGE = """
WITH clock AS (SELECT (now() AT TIME ZONE 'UTC')::date AS today)
SELECT c.customer_id, u.month_tasks, u.days_ago, u.counts,
       r.available AS usage_available, r.checked_at AS usage_checked_at, r.http_status AS usage_http_status
  FROM clock, unnest(%(ids)s::text[]) AS c (customer_id)
  LEFT JOIN zuora.task_usage_reads r ON r.customer_id = c.customer_id
  LEFT JOIN LATERAL (
        SELECT (sum(t.task_count) FILTER (WHERE t.day >= date_trunc('month', clock.today)))::bigint AS month_tasks,
               array_agg(clock.today - t.day) FILTER (WHERE t.day > clock.today - %(days)s) AS days_ago,
               array_agg(t.task_count) FILTER (WHERE t.day > clock.today - %(days)s) AS counts
          FROM zuora.task_usage t
         WHERE t.customer_id = c.customer_id
           AND t.day >= least(date_trunc('month', clock.today)::date, clock.today - (%(days)s - 1))) u ON true
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
    one page of ``customers``, worst first (``HEALTH_ORDER``), each with its figures."""
    everyone = _rows(conn, _ALL, _base_params())
    summary = dict.fromkeys(HEALTH_ORDER, 0)
    for row in everyone:
        summary[row["health"]] += 1
    chosen = sorted((row for row in everyone if _matches(row, query)), key=_worst_first)
    start = (query.page - 1) * query.page_size
    customers = chosen[start : start + query.page_size]
    _add_figures(conn, customers)
    return {"summary": summary, "total": len(chosen), "customers": customers}


def _base_params() -> dict[str, Any]:
    return {
        "text_limit": TEXT_LIMIT,
        "stale_after": STALE_AFTER,
        "history_pending_after": HISTORY_PENDING_AFTER,
    }


def _matches(row: dict[str, Any], query: FleetQuery) -> bool:
    text = query.q.casefold()
    return (
        (not text or text in row["customer_id"].casefold() or text in row["name"].casefold())
        and (not query.environment or row["environment"] == query.environment)
        and (not query.health or row["health"] == query.health)
    )


def _worst_first(row: dict[str, Any]) -> tuple:
    """By ``HEALTH_ORDER``; the longest without a success first; by id."""
    success = row["last_success_at"]
    return (HEALTH_ORDER.index(row["health"]), success is not None, success or 0, row["customer_id"])


def _add_figures(conn, customers: list[dict[str, Any]]) -> None:
    ids = [row["customer_id"] for row in customers]
    if not ids:
        return
    params = {"ids": ids, "days": DAYS, "text_limit": TEXT_LIMIT}
    recent = {row.pop("customer_id"): row for row in _rows(conn, _RECENT, params)}
    letters = {row.pop("customer_id"): row for row in _rows(conn, _DEAD_LETTERS, params)}
    pending_ids = [row["customer_id"] for row in customers if (row["versions_pending"] or 0) > 0]
    pending = dict(conn.execute(_HISTORY_PENDING, {"ids": pending_ids}).fetchall()) if pending_ids else {}
    groups = sorted({row["tenant_group"] for row in customers if row["tenant_group"]})
    drift: dict[str, dict[str, int]] = {}
    if groups:
        for row in _rows(conn, _DRIFT, {"groups": groups}):
            drift.setdefault(row["tenant_group"], dict.fromkeys(DRIFT_STATES, 0))[row["state"]] = row[
                "workflows"
            ]
    usage = {row.pop("customer_id"): row for row in _rows(conn, _USAGE, params)}
    for row in customers:
        row.update(recent_figures(recent.get(row["customer_id"])))
        row.update(usage_figures(usage[row["customer_id"]], row["task_allowance"]))
        found = letters.get(row["customer_id"], {})
        row["open_dead_letters"] = found.get("open_dead_letters", 0)
        row["newest_dead_letter"] = found.get("newest_dead_letter")
        row["newest_dead_letter_at"] = found.get("newest_dead_letter_at")
        row["oldest_dead_letter_at"] = found.get("oldest_dead_letter_at")
        row["history_pending_since"] = pending.get(row["customer_id"])
        row["drift"] = drift.get(row["tenant_group"]) if row["tenant_group"] else None


def recent_figures(found: dict[str, Any] | None) -> dict[str, Any]:
    """A customer's figures of the last ``DAYS`` days: success rates over 7 and 30 days
    (successes / finished runs), median and slowest duration, and the trend: the median
    duration of each UTC day, oldest first (0.1 s), None for a day without a finished run."""
    if not found:
        return {
            "success_rate_7d": None,
            "success_rate_30d": None,
            "finished_30d": 0,
            "median_duration_seconds": None,
            "max_duration_seconds": None,
            "duration_trend": [None] * DAYS,
        }
    per_day: dict[int, list[float]] = {}
    for days_ago, seconds in zip(found["days_ago"] or (), found["durations"] or (), strict=True):
        if days_ago < DAYS:
            per_day.setdefault(days_ago, []).append(seconds)
    trend: list[float | None] = [None] * DAYS
    for days_ago, values in per_day.items():
        trend[DAYS - 1 - days_ago] = round(_median(values), 1)
    return {
        "success_rate_7d": _rate(found["successes_7d"], found["finished_7d"]),
        "success_rate_30d": _rate(found["successes_30d"], found["finished_30d"]),
        "finished_30d": found["finished_30d"],
        "median_duration_seconds": _median(found["durations"]) if found["durations"] else None,
        "max_duration_seconds": found["max_duration_seconds"],
        "duration_trend": trend,
    }


def usage_figures(found: dict[str, Any], allowance: int | None) -> dict[str, Any]:
    """A customer's task usage: this month's tasks (None: none stored), their share of the
    allowance, whether Zuora answered the last usage call with counts (None: never asked;
    False: 403/404, with the status), and the daily counts of the last ``DAYS`` days, oldest
    first (None for a day not stored)."""
    trend: list[int | None] = [None] * DAYS
    for days_ago, count in zip(found["days_ago"] or (), found["counts"] or (), strict=True):
        trend[DAYS - 1 - days_ago] = count
    tasks = found["month_tasks"]
    return {
        "month_tasks": tasks,
        "used_share": round(tasks / allowance, 4) if tasks is not None and allowance else None,
        "usage_available": found["usage_available"],
        "usage_checked_at": found["usage_checked_at"],
        "usage_http_status": found["usage_http_status"],
        "usage_trend": trend,
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _rate(successes: int, finished: int) -> float | None:
    return round(successes / finished, 4) if finished else None


_FLEET_DAYS = """
WITH days AS (
    SELECT generate_series((now() AT TIME ZONE 'UTC')::date - (%(days)s - 1),
                           (now() AT TIME ZONE 'UTC')::date, interval '1 day')::date AS day
),
runs AS MATERIALIZED (
    SELECT r.customer_id, r.run_id, r.status, r.started_at, r.finished_at, r.duration_seconds,
           (r.started_at AT TIME ZONE 'UTC')::date AS day
      FROM zuora.sync_runs r
     WHERE r.started_at >= ((now() AT TIME ZONE 'UTC')::date - (%(days)s - 1))::timestamp AT TIME ZONE 'UTC'
),
customer_days AS (
    SELECT day, customer_id, bool_or(status = 'success') AS synced, bool_or(status = 'failed') AS failed
      FROM runs GROUP BY day, customer_id
),
counts AS (
    SELECT day, count(*) FILTER (WHERE synced) AS synced, count(*) FILTER (WHERE failed) AS failed
      FROM customer_days GROUP BY day
),
durations AS (
    SELECT day, count(*) AS customer_syncs,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) AS median_duration_seconds,
           max(duration_seconds) AS max_duration_seconds
      FROM runs GROUP BY day
),
walls AS (   -- a DAG run's wall time: first customer started to last one finished
    SELECT day, max(wall_seconds) AS run_seconds
      FROM (SELECT min(day) AS day,
                   extract(epoch FROM max(finished_at) - min(started_at))::float8 AS wall_seconds
              FROM runs GROUP BY run_id) w
     GROUP BY day
)
SELECT d.day, coalesce(c.synced, 0) AS synced, coalesce(c.failed, 0) AS failed,
       coalesce(u.customer_syncs, 0) AS customer_syncs, u.median_duration_seconds,
       u.max_duration_seconds, w.run_seconds
  FROM days d
  LEFT JOIN counts c USING (day)
  LEFT JOIN durations u USING (day)
  LEFT JOIN walls w USING (day)
 ORDER BY d.day
"""


def fleet_days(conn) -> list[dict[str, Any]]:
    """The last ``DAYS`` days (UTC), oldest first: customers synced and failed (a customer
    with both counts in both), customer syncs, median and slowest customer sync, and the
    longest DAG run's wall time (first customer started to last finished)."""
    return _rows(conn, _FLEET_DAYS, {"days": DAYS})


# This month's customers with the most tasks (read from the index on task_usage (day)); then
# their allowance and projection from zuora.usage_per_month (by id: the view's months of those
# customers only).
_TOP_CONSUMERS = """
SELECT t.customer_id, sum(t.task_count)::bigint AS tasks
  FROM zuora.task_usage t
 WHERE t.day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date
 GROUP BY t.customer_id
 ORDER BY tasks DESC, t.customer_id
 LIMIT %(limit)s
"""

_MONTHS = """
SELECT customer_id, customer_name AS name, task_allowance, used_share, projected_tasks, projected_share
  FROM zuora.usage_per_month
 WHERE customer_id = ANY(%(ids)s) AND current_month
"""

# Workflows Zuora switched off (not through this product: every deactivation), newest first,
# with the workflow's status now; ``seen``: how many in the window.
_SWITCHED_OFF = """
SELECT e.customer_id, e.zuora_id, e.workflow_name, e.new_version, e.seen_at, e.previous_seen_at,
       w.status AS status_now, e.seen
  FROM (SELECT e.event_id, e.customer_id, e.zuora_id, e.workflow_name, e.new_version, e.seen_at,
               e.previous_seen_at, count(*) OVER () AS seen
          FROM zuora.workflow_events e
         WHERE e.kind = 'deactivated' AND e.made_by = 'zuora'
           AND e.seen_at > now() - make_interval(days => %(days)s)
         ORDER BY e.seen_at DESC, e.event_id DESC
         LIMIT %(limit)s) e
  LEFT JOIN zuora.workflows w ON w.customer_id = e.customer_id AND w.zuora_id = e.zuora_id
 ORDER BY e.seen_at DESC, e.event_id DESC
"""


def fleet_usage(conn) -> dict[str, Any]:
    """``top_consumers``: this month's ``TOP_CONSUMERS`` customers with the most tasks, most
    first; ``switched_off``: the latest ``SWITCHED_OFF_LIMIT`` workflows Zuora switched off in
    the last ``DAYS`` days, newest first, and ``switched_off_count``: all of them."""
    top = _rows(conn, _TOP_CONSUMERS, {"limit": TOP_CONSUMERS})
    months = {
        row.pop("customer_id"): row for row in _rows(conn, _MONTHS, {"ids": [t["customer_id"] for t in top]})
    }
    switched_off = _rows(conn, _SWITCHED_OFF, {"days": DAYS, "limit": SWITCHED_OFF_LIMIT})
    return {
        "top_consumers": [{**row, **months[row["customer_id"]]} for row in top],
        "switched_off": [{k: v for k, v in row.items() if k != "seen"} for row in switched_off],
        "switched_off_count": switched_off[0]["seen"] if switched_off else 0,
    }


_CUSTOMER = """
SELECT customer_id, name, environment, enabled, tenant_group, created_at
  FROM zuora.customers WHERE customer_id = %(id)s
"""

_RECENT_SYNCS = """
SELECT run_id, status, started_at, finished_at, duration_seconds, api_requests, token_mints,
       rate_limited, retries, pages, listed, listing_complete, exported, exports_unchanged,
       exports_failed, inserted, updated, unchanged, deleted, restored, invalid, stored,
       dead_lettered, definitions_changed, versions_listed, versions_exported, versions_failed,
       versions_pending, left(error, %(text_limit)s) AS error, zuora_environment, map_index,
       task_id
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
SELECT restore_id, requested_at, requested_by, applied, status, scope, source_customer_id,
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


_MONTH_USAGE = """
SELECT month, tasks, task_allowance, used_share, elapsed_days, projected_tasks, projected_share,
       last_read_at
  FROM zuora.usage_per_month
 WHERE customer_id = %(id)s AND current_month
"""

# The last DAYS UTC days, oldest first, each with its tasks (NULL: not stored).
_USAGE_DAYS = """
SELECT d.day::date AS day, t.task_count AS tasks
  FROM generate_series((now() AT TIME ZONE 'UTC')::date - (%(days)s - 1), (now() AT TIME ZONE 'UTC')::date,
                       interval '1 day') AS d (day)
  LEFT JOIN zuora.task_usage t ON t.customer_id = %(id)s AND t.day = d.day::date
 ORDER BY d.day
"""

_CUSTOMER_SWITCHED_OFF = """
SELECT e.event_id, e.zuora_id, e.workflow_name, e.new_version, e.seen_at, e.previous_seen_at,
       e.alerted_at, e.recorded_from, w.status AS status_now
  FROM zuora.workflow_events e
  LEFT JOIN zuora.workflows w ON w.customer_id = e.customer_id AND w.zuora_id = e.zuora_id
 WHERE e.customer_id = %(id)s AND e.kind = 'deactivated' AND e.made_by = 'zuora'
 ORDER BY e.seen_at DESC, e.event_id DESC
 LIMIT %(limit)s
"""


def customer(conn, customer_id: str) -> dict[str, Any] | None:
    """One customer: its row with the fleet figures, its last ``RECENT_SYNCS`` syncs (newest
    first), open dead letters, recent version changes, restores and promotions (as source or
    target), the monitor's alerts of the last ``DAYS`` days naming it, this month's task
    usage (``usage``, None before a day of it is stored) and each day's of the last ``DAYS``
    (``usage_days``), and the workflows Zuora switched off (``switched_off``, newest first);
    None if unknown."""
    params = {"id": customer_id, "text_limit": TEXT_LIMIT, "days": DAYS, "limit": LIST_LIMIT}
    found = _rows(conn, _CUSTOMER, params)
    if not found:
        return None
    row = _rows(
        conn,
        _BASE + "SELECT * FROM base WHERE customer_id = %(id)s",
        {**params, **_base_params()},
    )[0]
    _add_figures(conn, [row])
    return {
        "customer": {**row, "created_at": found[0]["created_at"]},
        "syncs": _rows(conn, _RECENT_SYNCS, {**params, "limit": RECENT_SYNCS}),
        "dead_letters": _rows(conn, _OPEN_DEAD_LETTERS, params),
        "changes": _rows(conn, _CHANGES, params),
        "restores": _rows(conn, _RESTORES, params),
        "alerts": _rows(conn, _ALERTS, params),
        "usage": next(iter(_rows(conn, _MONTH_USAGE, params)), None),
        "usage_days": _rows(conn, _USAGE_DAYS, params),
        "switched_off": _rows(conn, _CUSTOMER_SWITCHED_OFF, params),
    }
