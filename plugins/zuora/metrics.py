"""The sync's metrics, through Airflow's own metrics pipeline (StatsD, OpenTelemetry or
Datadog: whatever ``[metrics]`` the deployment configured; nothing of ours to set).

Every series is named ``zuora_sync.<what>`` (Airflow puts its ``statsd_prefix`` /
``otel_prefix``, ``airflow`` by default, in front) and listed in the "Metrics" table of
docs/operating.md, which is an interface: dashboards and alert rules depend on it. A
customer's series carry the customer as a *tag* (``customer``, ``environment``), never in the
name, and are counters, but for the task usage gauges (``task_usage.*``, the hourly
monitor's); the others are fleet-wide, tagged at most with a value of a finite set
(``stage``, ``outcome``, ``kind``, ``environment`` for the duration histogram). Plain StatsD
drops tags (fleet totals only; a customer's gauge would be any customer's value, so the usage
gauges are not sent there); StatsD with ``statsd_influxdb_enabled``, Datadog and
OpenTelemetry keep them. Tag values are ids, never hosts, client ids or connection ids.

A counter is emitted at 0 where nothing happened, for every value of its tags' set, and the
monitor emits the customer series of customers not synced today at 0: Prometheus's
``increase()`` takes a new series' first sample as its baseline, so a series must exist at 0
before it first counts (tests/metrics/test_dashboard.py evaluates the dashboard's queries).

Emitting never raises and never waits: each function catches everything, and the backends
are Airflow's (a UDP datagram, or an in-memory OpenTelemetry instrument exported by a
background thread). Task processes import this module: it imports nothing heavy at the top.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

log = logging.getLogger(__name__)

PREFIX = "zuora_sync."

# The figures of a customer's zuora.sync_runs row emitted as counters when its sync ends:
# metric (after the prefix) -> SQL expression over the row.
CUSTOMER_COUNTERS = {
    "zuora.requests": "r.api_requests",
    "zuora.rate_limited": "r.rate_limited",
    "zuora.retries": "r.retries",
    "zuora.token_mints": "r.token_mints",
    "workflows.listed": "r.listed",
    "workflows.exported": "r.exported",
    "workflows.changed": "r.inserted + r.updated + r.restored",
    "workflows.deleted": "r.deleted",
    "workflows.invalid": "r.invalid",
}

_ROW = f"""
SELECT r.status, coalesce(c.environment, nullif(r.zuora_environment, 'unknown'), 'unknown'),
       r.duration_seconds, r.dead_lettered, {", ".join(CUSTOMER_COUNTERS.values())}
  FROM zuora.sync_runs r LEFT JOIN zuora.customers c USING (customer_id)
 WHERE r.run_id = %s AND r.customer_id = %s"""

# The values of the fleet-wide series' tags (and the stages of zuora.warehouse.ledger.STAGES):
# each series is emitted at 0 for every value, so it exists before it first counts.
ALERT_KINDS = (
    "task_failed",
    "deadline_missed",
    "failure_rate",
    "slow_sync",
    "rate_limiting",
    "dead_letters_growing",
    "queue_backlog",
    "check_failed",
    "task_usage_80",
    "task_usage_100",
    "task_usage_projected",
    "workflow_deactivated",
)
OUTCOMES = ("success", "failed")

_TAG_VALUE = re.compile(r"[^A-Za-z0-9_.-]")


def customer_sync_ended(conn, run_id: str, customer_id: str, *, stage: str | None = None) -> None:
    """A customer's sync ended (its ``sync_runs`` row is closed): success or failure, its
    duration, Zuora calls and workflow figures from the row, so the series add up to the
    ledger. ``stage`` names the stage that failed, for a task-level dead letter just written.

    Every series is emitted, at 0 where nothing happened (a success's ``failed``, the stages
    that did not fail): Prometheus's ``increase()`` takes a new series' first sample as its
    baseline, so a series first seen at 1 would never count that 1."""
    try:
        if not _enabled():
            return  # metrics off: not even the row's read
        row = conn.execute(_ROW, (run_id, customer_id)).fetchone()
        if row is None or row[0] not in ("success", "failed"):
            return
        status, environment, duration, dead_lettered, *figures = row
        tags = _tags(customer=customer_id, environment=environment)
        failed = status == "failed"
        seconds = float(duration or 0)
        figures = [int(value or 0) for value in figures]
        _customer_figures(tags, int(not failed), int(failed), round(seconds * 1000), figures)
        if duration is not None:
            _timing("customer_sync.duration", seconds, {"environment": tags["environment"]})
        failed_stage = _tag(stage or "task") if failed else None
        letters = {each: 0 for each in _stages()}
        letters["validate"] += int(dead_lettered or 0)  # list items the merge could not store
        if stage is not None:  # the failed task's own dead letter
            letters[_tag(stage)] = letters.get(_tag(stage), 0) + 1
        for each, written in letters.items():
            _incr("stage.failed", int(each == failed_stage), {"stage": each})
            _incr("dead_letters.written", written, {"stage": each})
    except Exception as exc:
        _dropped("customer_sync_ended", exc, conn)


def _customer_figures(tags: dict, succeeded: int, failed: int, milliseconds: int, figures: list[int]) -> None:
    """A customer's own series (``tags``: customer, environment): every one a counter, so the
    monitor can emit them at 0 for a customer that has not synced yet."""
    _incr("customer_sync.succeeded", succeeded, tags)
    _incr("customer_sync.failed", failed, tags)
    _incr("customer_sync.milliseconds", milliseconds, tags)
    for name, value in zip(CUSTOMER_COUNTERS, figures, strict=True):
        _incr(name, value, tags)


def run_summarized(conn, run_id: str, customers: int, failed: int) -> None:
    """The run's end (its ``summarize`` task): customers, failed customers, the run's duration
    (from its first customer's start), and ``run.finished`` by outcome (1 for this run's, 0
    for the other)."""
    try:
        if not _enabled():
            return
        _gauge("run.customers", customers)
        _gauge("run.failed_customers", failed)
        outcome = "failed" if failed else "success"
        for each in OUTCOMES:
            _incr("run.finished", int(each == outcome), {"outcome": each})
        started = conn.execute(
            "SELECT extract(epoch FROM clock_timestamp() - min(started_at)) "
            "FROM zuora.sync_runs WHERE run_id = %s",
            (run_id,),
        ).fetchone()
        if started and started[0] is not None:
            _timing("run.duration", float(started[0]), {})
    except Exception as exc:
        _dropped("run_summarized", exc, conn)


_MONITOR = """
SELECT count(*) FILTER (WHERE finished_at > now() - make_interval(mins => %(minutes)s)),
       count(*) FILTER (WHERE status = 'failed' AND finished_at > now() - make_interval(mins => %(minutes)s)),
       coalesce(max(extract(epoch FROM coalesce(finished_at, now()) - started_at))
                FILTER (WHERE coalesce(finished_at, now()) > now() - make_interval(mins => %(minutes)s)), 0),
       coalesce(sum(rate_limited)
                FILTER (WHERE coalesce(finished_at, started_at) > now() - make_interval(mins => %(minutes)s)), 0),
       (SELECT count(*) FROM zuora.dead_letters WHERE resolved_at IS NULL)
  FROM zuora.sync_runs
 WHERE coalesce(finished_at, now()) > now() - make_interval(mins => %(minutes)s)"""

# enabled customers whose series no sync ended in the last day emitted (or refreshed)
_NOT_SYNCED_TODAY = """
SELECT c.customer_id, c.environment FROM zuora.customers c
 WHERE c.enabled AND NOT EXISTS (
       SELECT FROM zuora.sync_runs r
        WHERE r.customer_id = c.customer_id AND r.started_at > now() - interval '1 day'
          AND r.finished_at IS NOT NULL)"""


# each enabled customer whose last usage call Zuora answered with counts: this UTC month's
# tasks so far (0 until the month's first day is read) and its allowance
_MONTH_USAGE = """
SELECT c.customer_id, c.environment, coalesce(sum(u.task_count), 0), c.task_allowance
  FROM zuora.customers c
  JOIN zuora.task_usage_reads r ON r.customer_id = c.customer_id AND r.available
  LEFT JOIN zuora.task_usage u
         ON u.customer_id = c.customer_id AND u.day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date
 WHERE c.enabled
 GROUP BY c.customer_id, c.environment, c.task_allowance"""


def monitor_figures(conn, thresholds) -> None:
    """The monitor's hourly gauges over its window (``thresholds.window_minutes``): customer
    syncs and the failure rate, the slowest sync, 429s, open dead letters, and the queued
    task instances (the seed's queue depth) when an ``airflow_api`` connection is set.

    And every counter the dashboard reads, at 0: the fleet's (each alert kind, run outcome
    and stage) and the customer series of each enabled customer no sync ended in the last
    day (a new customer's among them), so each exists before it first counts and stays
    within the exporter's ``ttl``.

    And each enabled customer's task usage this UTC month (issue 31): its tasks so far and,
    with an allowance, their share of it, while Zuora answers its usage call (not for a
    customer whose usage is not available or not read yet)."""
    if not _enabled():
        return
    try:
        total, failed, slowest, limited, open_letters = conn.execute(
            _MONITOR, {"minutes": thresholds.window_minutes}
        ).fetchone()
        _gauge("monitor.customer_syncs", int(total))
        _gauge("monitor.failure_rate", failed / total if total else 0.0)
        _gauge("monitor.slowest_sync_seconds", float(slowest))
        _gauge("monitor.rate_limited", int(limited))
        _gauge("monitor.open_dead_letters", int(open_letters))
    except Exception as exc:
        _dropped("monitor_figures", exc, conn)
    try:
        for kind in ALERT_KINDS:
            _incr("alerts.raised", 0, {"kind": kind})
        for outcome in OUTCOMES:
            _incr("run.finished", 0, {"outcome": outcome})
        for stage in _stages():
            _incr("stage.failed", 0, {"stage": stage})
            _incr("dead_letters.written", 0, {"stage": stage})
        zeros = [0] * len(CUSTOMER_COUNTERS)
        for customer_id, environment in conn.execute(_NOT_SYNCED_TODAY).fetchall():
            _customer_figures(_tags(customer=customer_id, environment=environment), 0, 0, 0, zeros)
    except Exception as exc:
        _dropped("monitor_figures (zeros)", exc, conn)
    try:
        if _tags_kept():  # plain StatsD: a customer's gauge without its tag would mean nothing
            _month_usage(conn)
    except Exception as exc:
        _dropped("monitor_figures (task usage)", exc, conn)
    try:
        from zuora.queue_depth import queued_task_instances

        queued = queued_task_instances(thresholds.airflow_api_conn_id)
        if queued is not None:
            _gauge("monitor.queued_task_instances", queued)
    except Exception as exc:
        _dropped("monitor_figures (queued task instances)", exc)


def _month_usage(conn) -> None:
    """Each customer's ``task_usage.month_tasks`` and ``task_usage.allowance_share``."""
    for customer_id, environment, tasks, allowance in conn.execute(_MONTH_USAGE).fetchall():
        tags = _tags(customer=customer_id, environment=environment)
        _gauge("task_usage.month_tasks", int(tasks), tags)
        if allowance:
            _gauge("task_usage.allowance_share", round(int(tasks) / allowance, 4), tags)


def alert_raised(kind: str) -> None:
    """An alert went out (any channel, or the log), by kind."""
    try:
        _incr("alerts.raised", 1, {"kind": _tag(kind)})
    except Exception as exc:
        _dropped("alert_raised", exc)


def _stages() -> tuple[str, ...]:
    from zuora.warehouse.ledger import STAGES  # imported on use: task processes import this module

    return STAGES


# --- the only code that touches Airflow's Stats -------------------------------------------


def _incr(name: str, count: int, tags: dict) -> None:
    _stats().incr(PREFIX + name, count, tags=tags)


def _gauge(name: str, value: float, tags: dict | None = None) -> None:
    _stats().gauge(PREFIX + name, value, tags=tags or {})


def _timing(name: str, seconds: float, tags: dict) -> None:
    _stats().timing(PREFIX + name, timedelta(seconds=seconds), tags=tags)


_initialized_here = False

# The [metrics] switches of the backends Airflow chooses from (Datadog, StatsD, OpenTelemetry:
# airflow.sdk.observability.metrics.stats_utils.get_stats_factory); none on: its no-op logger.
BACKEND_SWITCHES = ("statsd_datadog_enabled", "statsd_on", "otel_on")


def _enabled() -> bool:
    """False when Airflow's metrics are off (no backend switched on in ``[metrics]``, read
    through the public ``airflow.sdk.conf``): the figures are not even computed."""
    try:
        from airflow.sdk import conf

        return any(conf.getboolean("metrics", switch, fallback=False) for switch in BACKEND_SWITCHES)
    except Exception:  # cannot tell: emit, and let the emitting functions catch what fails
        return True


def _tags_kept() -> bool:
    """Whether the backend keeps tags: all but plain StatsD (``statsd_on`` without
    ``statsd_influxdb_enabled``)."""
    from airflow.sdk import conf

    def on(switch: str) -> bool:
        return conf.getboolean("metrics", switch, fallback=False)

    return (
        on("statsd_datadog_enabled") or on("otel_on") or on("statsd_influxdb_enabled") or not on("statsd_on")
    )


def _stats():
    """Airflow's task-side Stats (the public ``airflow.sdk.observability.stats``). A task
    process's runner has set it up from ``[metrics]``; where nothing has (``dag.test()``, the
    CLI, the triggerer's deadline callback) it is set up here the same way, once, so the same
    settings reach the same backend."""
    global _initialized_here
    from airflow.sdk.observability import stats

    if not _initialized_here and not _airflow_set_stats_up():
        from airflow.sdk import conf
        from airflow.sdk.observability.metrics import stats_utils

        stats.initialize(
            factory=stats_utils.get_stats_factory(),
            export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=True),
        )
        _initialized_here = True
    return stats


_unknown_warned = False


def _airflow_set_stats_up() -> bool:
    """Whether something (a task runner) gave Airflow's Stats its backend. The one read of an
    Airflow internal here, as the Task SDK 1.3 offers no public way to ask:
    tests/metrics/test_airflow_stats.py fails on an upgrade that changes it. Where it cannot
    tell, it answers yes (a warning, once): task processes keep their runner's backend, and
    only the places no runner set up (``dag.test()``, the CLI, the triggerer) emit nothing."""
    global _unknown_warned
    try:
        from airflow.sdk._shared.observability.metrics import stats as shared

        return shared._factory is not None
    except Exception as exc:
        if not _unknown_warned:
            _unknown_warned = True
            log.warning("zuora metrics: cannot tell whether Airflow's Stats is set up (%r)", exc)
        return True


def _tag(value) -> str:
    """A tag value any backend keeps: InfluxDB-style StatsD tags cannot hold ',' or '='."""
    return _TAG_VALUE.sub("_", str(value))[:100]


def _tags(**tags) -> dict:
    return {key: _tag(value) for key, value in tags.items()}


_last_warning = 0.0


def _dropped(what: str, exc: Exception, conn=None) -> None:
    """A metric that could not be emitted is logged (at most once a minute), never raised;
    a failed query does not leave the caller's transaction aborted."""
    global _last_warning
    if conn is not None:
        try:
            if conn.info.transaction_status == 3:  # psycopg INERROR: our query failed
                conn.rollback()
        except Exception:
            pass
    if time.monotonic() - _last_warning > 60:
        _last_warning = time.monotonic()
        log.warning("zuora metrics: %s not emitted: %s: %s", what, type(exc).__name__, exc)
