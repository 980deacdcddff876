"""Every setting of the product, in one place: its name and its default.

Environment variables are read when called (the DAG file calls them when it is parsed, so
every scheduler, worker and dag-processor must see the same values). The Configuration table
of docs/operating.md is checked against this module (tests/test_settings.py).
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
    "ZUORA_SYNC_CUSTOMERS_PER_TASK": "1",  # 1: a mapped group per customer; N: batches of N
}


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


def customers_per_task() -> int:
    """Customers synced by one mapped task: 1 keeps one mapped group of four tasks per
    customer; more makes one ``sync_customers`` task per batch of that many. It decides the
    DAG's shape when the file is parsed, so every Airflow component must see the same value."""
    return _positive_int("ZUORA_SYNC_CUSTOMERS_PER_TASK")


def batch_timeout() -> timedelta:
    """A batch task's ``execution_timeout``: an hour, plus two minutes per customer. A try that
    times out keeps the customers it synced; its retry syncs the others."""
    return timedelta(hours=1) + customers_per_task() * timedelta(minutes=2)


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
