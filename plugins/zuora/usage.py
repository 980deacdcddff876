"""Each customer's Workflow task usage, read in its list stage (issue 31).

    usage.read_task_usage(conn, hook, run_id, customer_id)   # -> 'read', 'not_needed', ...

One call, ``GET /workflows/metrics.json`` (``ZuoraHook.task_usage``), on the connection, token,
retries and rate limiting the list stage already holds, at most once per customer per UTC
day; which days it asks for and how they are stored: ``zuora.warehouse.usage``. What a run
did is ``sync_runs.task_usage``:

- ``read``: the days were stored (``task_usage_days`` of them);
- ``not_needed``: Zuora answered already this UTC day, no call;
- ``not_available``: Zuora answered 403 (no access) or 404 (an older tenant); logged once,
  kept in ``task_usage_reads`` (``available`` false, the status and Zuora's message), not
  asked again before the next UTC day;
- ``failed``: anything else (a malformed answer, a 429 or 5xx the hook's retries did not get
  through, a bug): logged, and the customer's dead letter ``task_usage`` (stage ``list``)
  says why; the next run asks again.

Reading usage never fails the customer's sync: its definitions are synced whatever happens
here, and another customer's usage is another call in another task.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from zuora.api.errors import ZuoraError
from zuora.api.hook import ZuoraHook
from zuora.warehouse import usage as stored

log = logging.getLogger(__name__)

NOT_AVAILABLE = (403, 404)  # no access to usage, or an older tenant without the endpoint


def read_task_usage(conn, hook: ZuoraHook, run_id: str, customer_id: str) -> str:
    """Read and store the customer's task usage if due; returns the outcome (see above)."""
    now = utcnow()
    try:
        days = stored.days_to_read(conn, customer_id, now)
        if days is None:
            stored.record_not_needed(conn, run_id, customer_id)
            log.info("customer %s: task usage already read today (UTC): no call", customer_id)
            return "not_needed"
        first, last = days
        try:
            answered = hook.task_usage(first, last)
        except ZuoraError as error:
            if error.status not in NOT_AVAILABLE:
                raise
            stored.record_not_available(
                conn, run_id, customer_id, first, last, now, status=error.status, message=str(error)
            )
            log.warning(
                "customer %s: task usage not available (Zuora answered %s to metrics.json: no access, "
                "or an older tenant); its definitions are synced, usage is asked again tomorrow (UTC): %s",
                customer_id,
                error.status,
                error,
            )
            return "not_available"
        read = stored.store_usage(conn, run_id, customer_id, first, last, answered, now)
        log.info("customer %s: task usage of %d days read (%s to %s)", customer_id, read, first, last)
        return "read"
    except Exception as error:  # usage never fails the definitions' sync
        message = f"task usage not stored: {error}; the definitions are synced, the next run asks again"
        log.error("customer %s: %s", customer_id, message)
        try:
            if not conn.autocommit:
                conn.rollback()
            stored.record_failure(conn, run_id, customer_id, error_type=type(error).__name__, message=message)
        except Exception:
            log.exception("customer %s: the failed task usage read could not be recorded", customer_id)
        return "failed"


def utcnow() -> datetime:
    """The clock of usage reading: which UTC day it is."""
    return datetime.now(UTC)
