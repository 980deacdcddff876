"""Every setting of the product, in one place: its name and its default.

Environment variables are read when called (the DAG file calls most of them when it is
parsed, so every scheduler, worker and dag-processor must see the same values). The
Configuration table of docs/operating.md is checked against this module (tests/test_settings.py).
A customer's own options live in its Airflow connection (``zuora.api.credentials.ZuoraOptions``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from datetime import timedelta

# Airflow connections
WAREHOUSE_CONN_ID = "zuora_warehouse"  # Postgres holding the zuora schema
WAREHOUSE_READER_CONN_ID = "zuora_warehouse_reader"  # the sync page's read-only login; none: the above
ALERT_CONN_ID = "zuora_alerts"  # smtp, slackwebhook or http; none: log only
AIRFLOW_API_CONN_ID = "airflow_api"  # the monitor's queued-task check; none: skipped
CUSTOMER_CONN_PREFIX = "zuora_"  # add-customer names a customer's connection zuora_<id>

# Airflow pool shared by every task that calls Zuora
POOL = "zuora_api"
POOL_SLOTS = 8  # what the demo, the cluster and docker-compose create

# Airflow Variables
ENCRYPTION_KEY_VARIABLE = "zuora_export_encryption_key"
THRESHOLDS_VARIABLE = "zuora_monitor_thresholds"
RETENTION_VARIABLE = "zuora_retention"

# Environment variables: name -> default
ENCRYPTION_KEY_ENV = "ZUORA_EXPORT_ENCRYPTION_KEY"  # beats the Variable; no default
ENVIRONMENT = {
    "ZUORA_SYNC_SCHEDULE": "0 2 * * *",  # cron of the daily sync
    "ZUORA_SYNC_MAX_CONCURRENT_EXPORTS": "4",  # export tasks running at once per run
    "ZUORA_SYNC_LOOKBACK_DAYS": "7",  # re-export each definition once in this many days
    "ZUORA_SYNC_DEADLINE_MINUTES": "30",  # alert when a run is not done; 0 = none
    "ZUORA_SYNC_RETRY_DELAYS": "60,300,900",  # seconds between a task's tries
    "ZUORA_SYNC_HISTORY_CALLS": "100",  # version-history backfill calls per customer per run
    # auto: each run picks (customers_per_task_for); 1: a mapped group per customer; N: batches of N
    "ZUORA_SYNC_CUSTOMERS_PER_TASK": "auto",
}

# What `auto` picks from (`benchmarks/scale_model.py --part auto` derives them from the measured
# units, Zuora answering in 0.5 s a call; benchmarks/SCALE.md "Batches by default"):
# - one group per customer for at most this many customers (and at most
#   $ZUORA_SYNC_MAX_CONCURRENT_EXPORTS): the scheduler's first decision pass over their 55
#   waiting task instances takes 0.28 s, no longer than the rest of a scheduler loop;
AUTO_GROUPS_AT_MOST = 18
# - a daily run's customer (50 workflows, 1 % changed) takes this long in a batch: a batch's
#   expected time is kept within half the run deadline;
AUTO_CUSTOMER_SECONDS = 1.8
# - at most this many customers a batch: 100 first syncs of 50 workflows take 27 minutes,
#   within the default 30-minute deadline.
AUTO_BATCH_AT_MOST = 100


def _env(name: str) -> str:
    return os.environ.get(name) or ENVIRONMENT[name]


def _positive_int(name: str, minimum: int = 1) -> int:
    text = _env(name)
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(f"${name} must be a whole number >= {minimum}, not {text!r}")
    return value


def schedule() -> str:
    return _env("ZUORA_SYNC_SCHEDULE")


def max_concurrent_exports() -> int:
    return _positive_int("ZUORA_SYNC_MAX_CONCURRENT_EXPORTS")


def lookback() -> timedelta:
    return timedelta(days=_positive_int("ZUORA_SYNC_LOOKBACK_DAYS", minimum=0))


def history_calls() -> int:
    """API calls per customer per run for the version-history backfill (0 = none)."""
    return _positive_int("ZUORA_SYNC_HISTORY_CALLS", minimum=0)


def customers_per_task() -> int | None:
    """``$ZUORA_SYNC_CUSTOMERS_PER_TASK`` as a number that forces every run's shape (1: one
    mapped group of four tasks per customer; N: one ``sync_customers`` task per batch of N), or
    None for ``auto``: each run picks its own (``customers_per_task_for``). Read by the run's
    ``list_customers`` task, and for the batch task's ``execution_timeout``; the DAG's tasks are
    the same whatever it says."""
    text = _env("ZUORA_SYNC_CUSTOMERS_PER_TASK")
    if text.strip().lower() == "auto":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"$ZUORA_SYNC_CUSTOMERS_PER_TASK must be auto or a whole number >= 1, not {text!r}")
    return int(text)


def customers_per_task_for(customers: int) -> int | None:
    """The shape of a run of ``customers`` customers: None for one mapped group per customer,
    else the customers of each batch task. ``auto``: groups for at most
    min($ZUORA_SYNC_MAX_CONCURRENT_EXPORTS, 16) customers (a batch would hold one customer: the
    same task processes as a group on an unchanged day); above, about one batch per export slot
    (every slot busy), each at most ``largest_batch()``."""
    forced = customers_per_task()
    if forced is not None:
        return None if forced == 1 else forced
    slots = max_concurrent_exports()
    if customers <= min(slots, AUTO_GROUPS_AT_MOST):
        return None
    return min(-(-customers // slots), largest_batch())


def largest_batch() -> int:
    """The most customers a batch task syncs: the number forced, else ``auto``'s cap, from the
    run deadline: a batch's expected time on a daily run (``AUTO_CUSTOMER_SECONDS`` a customer)
    within half of it, and at most ``AUTO_BATCH_AT_MOST`` (also when there is no deadline)."""
    forced = customers_per_task()
    if forced is not None:
        return forced
    deadline_s = deadline_minutes() * 60
    if not deadline_s:
        return AUTO_BATCH_AT_MOST
    return max(1, min(AUTO_BATCH_AT_MOST, int(deadline_s / 2 / AUTO_CUSTOMER_SECONDS)))


def batch_timeout() -> timedelta:
    """A batch task's ``execution_timeout``: an hour, plus two minutes per customer of the
    largest batch. A try that times out keeps the customers it synced; its retry syncs the
    others."""
    return timedelta(hours=1) + largest_batch() * timedelta(minutes=2)


def deadline_minutes() -> float:
    """Minutes (a fraction allowed, e.g. 0.5) after a run was queued; 0 = no deadline."""
    text = _env("ZUORA_SYNC_DEADLINE_MINUTES")
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not 0 <= minutes < float("inf"):
        raise ValueError(f"$ZUORA_SYNC_DEADLINE_MINUTES must be a number of minutes >= 0, not {text!r}")
    return minutes


def retry_delays() -> tuple[timedelta, ...]:
    """The waits before a task's second, third, ... try; ``retries`` is their number."""
    text = _env("ZUORA_SYNC_RETRY_DELAYS")
    try:
        delays = tuple(timedelta(seconds=float(part)) for part in text.split(","))
    except ValueError:
        delays = ()
    if not delays or min(delays) < timedelta(0):
        raise ValueError(
            f"$ZUORA_SYNC_RETRY_DELAYS must be seconds separated by commas, e.g. 60,300,900, not {text!r}"
        )
    return delays


# Monitor thresholds (Variable zuora_monitor_thresholds overrides them)
# a threshold's type -> how errors name it, the JSON values accepted (bool never: JSON true is not 1)
_JSON_TYPES: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "int": ("an integer", int),
    "float": ("a number", (int, float)),
    "str": ("a string", str),
}


@dataclass(frozen=True)
class Thresholds:
    window_minutes: int = 60  # look-back of every check
    max_failure_rate: float = 0.05  # failed customer syncs / all finished syncs
    max_sync_minutes: float = 30  # one customer's sync, finished or still running
    max_rate_limited: int = 100  # 429s answered to us in the window, all customers
    max_queued_task_instances: int = 1000  # needs the Airflow API connection
    airflow_api_conn_id: str = AIRFLOW_API_CONN_ID

    @classmethod
    def from_json(cls, text: str | None) -> Thresholds:
        overrides = json.loads(text) if text else {}
        if not isinstance(overrides, dict):
            raise ValueError('monitor thresholds must be a JSON object, e.g. {"max_failure_rate": 0.1}')
        types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        unknown = set(overrides) - set(types)
        if unknown:
            raise ValueError(f"unknown monitor thresholds {sorted(unknown)}")
        for key, value in overrides.items():
            expected, allowed = _JSON_TYPES[types[key]]
            if isinstance(value, bool) or not isinstance(value, allowed):
                raise ValueError(f"monitor threshold {key!r} must be {expected}, not {json.dumps(value)}")
        return cls(**overrides)


# Retention (Variable zuora_retention overrides it)
@dataclass(frozen=True)
class Retention:
    """Ages after which rows are removed; None keeps them forever (history by default)."""

    staging: timedelta = timedelta(days=2)
    resolved_dead_letters: timedelta | None = timedelta(days=90)
    validation_issues: timedelta | None = timedelta(days=90)
    sync_runs: timedelta | None = timedelta(days=400)
    history: timedelta | None = None

    @classmethod
    def from_json(cls, text: str | None) -> Retention:
        """From JSON like ``{"staging_days": 2, "sync_runs_days": null}``: a number of days
        (>= 0) per part, ``null`` to keep forever (not for staging); other parts keep their
        defaults. Unknown keys and wrong types are a ValueError naming the key."""
        settings = json.loads(text) if text else {}
        if not isinstance(settings, dict):
            raise ValueError('zuora_retention must be a JSON object, e.g. {"staging_days": 2}')
        parts = [f.name for f in dataclasses.fields(cls)]
        ages: dict[str, timedelta | None] = {}
        for key, days in settings.items():
            part = key.removesuffix("_days")
            if part not in parts or not key.endswith("_days"):
                raise ValueError(
                    f"unknown retention setting {key!r}; known: {', '.join(p + '_days' for p in parts)}"
                )
            if days is None and part != "staging":
                ages[part] = None
            elif isinstance(days, (int, float)) and not isinstance(days, bool) and days >= 0:
                ages[part] = timedelta(days=days)
            else:
                keep = "" if part == "staging" else " or null (keep forever)"
                raise ValueError(
                    f"retention setting {key!r} must be a number of days >= 0{keep}, not {json.dumps(days)}"
                )
        return cls(**ages)  # type: ignore[arg-type]  # None only where the field allows it
