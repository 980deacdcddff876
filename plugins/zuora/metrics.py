"""The sync's metrics, through Airflow's own metrics pipeline (StatsD, OpenTelemetry or
Datadog: whatever ``[metrics]`` the deployment configured; nothing of ours to set).

Every series is named ``zuora_sync.<what>`` (Airflow puts its ``statsd_prefix`` /
``otel_prefix``, ``airflow`` by default, in front) and listed in the "Metrics" table of
docs/operating.md, which is an interface: dashboards and alert rules depend on it. Per-customer series carry the
customer as a *tag* (``customer``, ``environment``, ``stage``), never in the name: plain
StatsD drops tags (fleet totals only), StatsD with ``statsd_influxdb_enabled``, Datadog and
OpenTelemetry keep them. Cardinality is bounded by the number of customers; tag values are
ids, never hosts, client ids or connection ids.

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
SELECT r.status, coalesce(r.zuora_environment, c.environment, 'unknown'), r.duration_seconds,
       r.dead_lettered, {", ".join(CUSTOMER_COUNTERS.values())}
  FROM zuora.sync_runs r LEFT JOIN zuora.customers c USING (customer_id)
 WHERE r.run_id = %s AND r.customer_id = %s"""

_TAG_VALUE = re.compile(r"[^A-Za-z0-9_.-]")


def customer_sync_ended(conn, run_id: str, customer_id: str, *, stage: str | None = None) -> None:
    """A customer's sync ended (its ``sync_runs`` row is closed): success or failure, its
    duration, Zuora calls and workflow figures from the row, so the series add up to the
    ledger. ``stage`` names the stage that failed, for a task-level dead letter just written."""
    try:
        if not _enabled():
            return  # metrics off: not even the row's read
        row = conn.execute(_ROW, (run_id, customer_id)).fetchone()
        if row is None or row[0] not in ("success", "failed"):
            return
        status, environment, duration, dead_lettered, *figures = row
        tags = _tags(customer=customer_id, environment=environment)
        # both counters, one of them 0: every customer has both series, so ratios by customer
        # exist for a customer that never failed or never succeeded
        _incr("customer_sync.succeeded", int(status == "success"), tags)
        failed = {**tags, "stage": _tag(stage)} if stage is not None else tags
        _incr("customer_sync.failed", int(status == "failed"), failed)
        if duration is not None:
            _timing("customer_sync.duration", float(duration), {**tags, "status": status})
        for name, value in zip(CUSTOMER_COUNTERS, figures, strict=True):
            _incr(name, int(value or 0), tags)
        if dead_lettered:  # list items the merge could not store (stage validate)
            _incr("dead_letters.written", int(dead_lettered), {**tags, "stage": "validate"})
        if stage is not None:  # the failed task's own dead letter
            _incr("dead_letters.written", 1, {**tags, "stage": _tag(stage)})
    except Exception as exc:
        _dropped("customer_sync_ended", exc, conn)


def run_summarized(conn, run_id: str, customers: int, failed: int) -> None:
    """The run's end (its ``summarize`` task): customers, failed customers, the run's duration
    (from its first customer's start), and one ``run.finished`` tagged with the outcome."""
    try:
        if not _enabled():
            return
        _gauge("run.customers", customers)
        _gauge("run.failed_customers", failed)
        _incr("run.finished", 1, {"outcome": "failed" if failed else "success"})
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


def monitor_figures(conn, thresholds) -> None:
    """The monitor's hourly gauges over its window (``thresholds.window_minutes``): customer
    syncs and the failure rate, the slowest sync, 429s, open dead letters, and the queued
    task instances (the seed's queue depth) when an ``airflow_api`` connection is set."""
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
        from zuora.monitor import _queued_task_instances

        queued = _queued_task_instances(thresholds.airflow_api_conn_id)
        if queued is not None:
            _gauge("monitor.queued_task_instances", queued)
    except Exception as exc:
        _dropped("monitor_figures (queued task instances)", exc)


def alert_raised(kind: str) -> None:
    """An alert went out (any channel, or the log), by kind."""
    try:
        _incr("alerts.raised", 1, {"kind": _tag(kind)})
    except Exception as exc:
        _dropped("alert_raised", exc)


# --- the only code that touches Airflow's Stats -------------------------------------------


def _incr(name: str, count: int, tags: dict) -> None:
    _stats().incr(PREFIX + name, count, tags=tags)


def _gauge(name: str, value: float, tags: dict | None = None) -> None:
    _stats().gauge(PREFIX + name, value, tags=tags or {})


def _timing(name: str, seconds: float, tags: dict) -> None:
    _stats().timing(PREFIX + name, timedelta(seconds=seconds), tags=tags)


_initialized_here = False


def _stats():
    """Airflow's task-side Stats. A task process's runner has set it up from ``[metrics]``;
    where nothing has (``dag.test()``, the CLI, the triggerer's deadline callback) it is set
    up here the same way, once, so the same settings reach the same backend."""
    global _initialized_here
    from airflow.sdk.observability import stats

    if not _initialized_here and getattr(_shared_stats(), "_factory", None) is None:
        from airflow.sdk import conf
        from airflow.sdk.observability.metrics import stats_utils

        stats.initialize(
            factory=stats_utils.get_stats_factory(),
            export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=True),
        )
        _initialized_here = True
    return stats


def _enabled() -> bool:
    """False when Airflow's metrics are off (its no-op logger): the figures are not computed."""
    try:
        from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger

        _stats()
        return not isinstance(_shared_stats()._get_backend(), NoStatsLogger)
    except Exception:  # cannot tell: emit, and let the emitting functions catch what fails
        return True


def _shared_stats():
    from airflow.sdk._shared.observability.metrics import stats as shared

    return shared


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
