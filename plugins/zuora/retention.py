"""Retention: how long staging leftovers, resolved dead letters, issues and runs are kept.

The monitor DAG runs ``run`` hourly with the Airflow Variable ``zuora_retention`` (JSON, see
``Retention.from_json``); it also deletes expired OAuth token Variables.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from zuora.staging import sweep_stale_staging
from zuora.token_cache import drop_expired_tokens
from zuora.transactions import committing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    """Ages after which rows are removed; None keeps them forever (history by default)."""

    staging: timedelta = timedelta(days=2)
    resolved_dead_letters: timedelta | None = timedelta(days=90)
    validation_issues: timedelta | None = timedelta(days=90)
    sync_runs: timedelta | None = timedelta(days=400)
    history: timedelta | None = None

    @classmethod
    def from_json(cls, text: str | None) -> "Retention":
        """From JSON like ``{"staging_days": 2, "sync_runs_days": null}``: a number of days
        (>= 0) per part, ``null`` to keep forever (not for staging); other parts keep their
        defaults. Unknown keys and wrong types are a ValueError naming the key."""
        settings = json.loads(text) if text else {}
        if not isinstance(settings, dict):
            raise ValueError("zuora_retention must be a JSON object, e.g. {\"staging_days\": 2}")
        parts = [f.name for f in dataclasses.fields(cls)]
        ages = {}
        for key, days in settings.items():
            part = key.removesuffix("_days")
            if part not in parts or not key.endswith("_days"):
                raise ValueError(f"unknown retention setting {key!r}; "
                                 f"known: {', '.join(p + '_days' for p in parts)}")
            if days is None and part != "staging":
                ages[part] = None
            elif isinstance(days, (int, float)) and not isinstance(days, bool) and days >= 0:
                ages[part] = timedelta(days=days)
            else:
                keep = "" if part == "staging" else " or null (keep forever)"
                raise ValueError(f"retention setting {key!r} must be a number of days >= 0{keep}, "
                                 f"not {json.dumps(days)}")
        return cls(**ages)


def cleanup(conn, retention: Retention = Retention()) -> dict[str, int]:
    """Apply ``retention``; returns how many rows (staging: listings) each part removed."""
    removed = {"staging": sweep_stale_staging(conn, retention.staging)}
    statements = {
        "resolved_dead_letters": ("DELETE FROM zuora.dead_letters WHERE resolved_at < now() - %s",
                                  retention.resolved_dead_letters),
        "validation_issues": ("DELETE FROM zuora.validation_issues WHERE created_at < now() - %s",
                              retention.validation_issues),
        "sync_runs": ("DELETE FROM zuora.sync_runs WHERE started_at < now() - %s "
                      "AND status <> 'running'", retention.sync_runs),
        "history": ("DELETE FROM zuora.workflow_history WHERE changed_at < now() - %s",
                    retention.history),
    }
    with committing(conn):
        for part, (statement, age) in statements.items():
            removed[part] = conn.execute(statement, (age,)).rowcount if age is not None else 0
    return removed


def run(settings: str | None) -> dict[str, int]:
    """The monitor DAG's hourly task: ``cleanup`` of the warehouse with ``settings`` (the
    ``zuora_retention`` Variable), then the expired token Variables; logs one JSON line."""
    from zuora.sync import warehouse_connection  # zuora.sync imports this module

    retention = Retention.from_json(settings)
    with warehouse_connection() as conn:
        removed = cleanup(conn, retention)
    removed["expired_tokens"] = drop_expired_tokens()
    log.info("zuora retention %s", json.dumps(removed, sort_keys=True))
    return removed
