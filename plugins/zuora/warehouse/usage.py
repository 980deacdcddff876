"""Task usage in the warehouse: which days to ask Zuora for, the days it answered, "usage not
available", a usage read that failed, each customer's monthly task allowance, and which
workflow events the monitor alerted about (``mark_events_alerted``).

Tables (migration 0010): ``task_usage`` (customer, day, task_count, read_at, run_id),
``task_usage_reads`` (per customer, the last usage call Zuora answered), the columns
``sync_runs.task_usage``/``task_usage_days`` (what each run did) and
``customers.task_allowance``. The rules (``zuora.usage`` reads, this module decides and
stores):

- **At most one call per customer per UTC day.** No call when Zuora already answered the
  customer's usage call on the current UTC day (with counts, or 403/404: "usage not
  available"). A call that failed (a malformed answer, 429 or 5xx beyond the hook's retries)
  is not an answer: the customer's next run asks again.
- **Which days.** A stored day is *complete* once it was read at or after the end of the day
  after it, UTC (``read_at >= day + 2 days``): by then it is over in every time zone
  (UTC-12 to UTC+14) and yesterday's late revisions are in. A read asks from the day after
  the last complete day stored to today: today (its count grows), yesterday (it may still
  change) and, in the daily steady state, the day before (read last while it was not over
  everywhere) again, plus any day missed since. With no complete day stored (a first read),
  from the first day of the previous month (``LOOKBACK_MONTHS``): this month and the last, so
  the month's projection has a full month before it; never from further back than that.
- **Upsert.** A day Zuora answers replaces what is stored (a day revised upward is updated);
  a day in the asked range that Zuora leaves out is stored as 0 tasks when nothing is stored
  for it yet, and a stored count is never replaced by an absence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from zuora.redaction import redact_text
from zuora.warehouse.transactions import committing
from zuora.warehouse.transform import make_storable

LOOKBACK_MONTHS = 1  # a first read starts on the first day of the month this many months back
DEAD_LETTER_KEY = "task_usage"  # item_key of the customer's open usage dead letter (stage 'list')
OUTCOMES = ("read", "not_needed", "not_available", "failed")


def days_to_read(conn, customer_id: str, now: datetime) -> tuple[date, date] | None:
    """The first and last day to ask Zuora for now, or None when the customer's usage call
    was answered already on this UTC day (see the module's rules)."""
    today = now.astimezone(UTC).date()
    with committing(conn):
        checked = conn.execute(
            "SELECT checked_at FROM zuora.task_usage_reads WHERE customer_id = %s", (customer_id,)
        ).fetchone()
        if checked is not None and checked[0].astimezone(UTC).date() >= today:
            return None
        (last_complete,) = conn.execute(
            "SELECT max(day) FROM zuora.task_usage WHERE customer_id = %s "
            "AND read_at >= ((day + 2)::timestamp AT TIME ZONE 'UTC')",
            (customer_id,),
        ).fetchone()
    earliest = first_read_day(today)
    start = earliest if last_complete is None else max(last_complete + timedelta(days=1), earliest)
    return start, today


def first_read_day(today: date) -> date:
    """The first day a read with no history asks for: the first of the previous month."""
    month = today.year * 12 + today.month - 1 - LOOKBACK_MONTHS
    return date(month // 12, month % 12 + 1, 1)


def store_usage(
    conn,
    run_id: str,
    customer_id: str,
    first: date,
    last: date,
    answered: dict[date, int],
    now: datetime,
) -> int:
    """Store the days Zuora answered for ``first``..``last`` (days outside it are ignored),
    record the answered call and the run's outcome, resolve the customer's usage dead letter;
    returns how many days were stored."""
    in_range = {day: count for day, count in answered.items() if first <= day <= last}
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    with committing(conn):
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO zuora.task_usage AS u (customer_id, day, task_count, read_at, run_id) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (customer_id, day) DO UPDATE "
                "SET task_count = excluded.task_count, read_at = excluded.read_at, run_id = excluded.run_id",
                [(customer_id, day, count, now, run_id) for day, count in in_range.items()],
            )
            cur.executemany(  # a day left out of the answer: 0 tasks, unless a count is stored
                "INSERT INTO zuora.task_usage (customer_id, day, task_count, read_at, run_id) "
                "VALUES (%s, %s, 0, %s, %s) ON CONFLICT (customer_id, day) DO NOTHING",
                [(customer_id, day, now, run_id) for day in days if day not in in_range],
            )
        _answered(conn, run_id, customer_id, first, last, now, available=True, days=len(days))
        _outcome(conn, run_id, customer_id, "read", len(days))
    return len(days)


def record_not_available(
    conn,
    run_id: str,
    customer_id: str,
    first: date,
    last: date,
    now: datetime,
    *,
    status: int | None,
    message: str,
) -> None:
    """Zuora answered the usage call with 403 (no access) or 404 (an older tenant): usage
    not available; not asked again before the next UTC day."""
    with committing(conn):
        _answered(
            conn,
            run_id,
            customer_id,
            first,
            last,
            now,
            available=False,
            days=0,
            status=status,
            message=message,
        )
        _outcome(conn, run_id, customer_id, "not_available", 0)


def record_not_needed(conn, run_id: str, customer_id: str) -> None:
    """No call this run: Zuora answered already today. A run that read (or found usage not
    available) earlier, and runs its list stage again, keeps what it recorded."""
    with committing(conn):
        conn.execute(
            "UPDATE zuora.sync_runs SET task_usage = coalesce(task_usage, 'not_needed'), "
            "task_usage_days = coalesce(task_usage_days, 0) WHERE run_id = %s AND customer_id = %s",
            (run_id, customer_id),
        )


def record_failure(conn, run_id: str, customer_id: str, *, error_type: str, message: str) -> None:
    """A usage read that failed: the run's outcome, and the customer's usage dead letter
    (stage 'list', item_key 'task_usage'; a repeat counts an attempt), resolved by the next
    answered call. The definitions' sync goes on."""
    text = make_storable(redact_text(message))[0][:4000]
    with committing(conn):
        conn.execute(
            "INSERT INTO zuora.dead_letters AS dl (customer_id, run_id, stage, item_key, error_type, "
            "message) VALUES (%s, %s, 'list', %s, %s, %s) "
            "ON CONFLICT (customer_id, stage, item_key) WHERE resolved_at IS NULL DO UPDATE "
            "SET attempts = dl.attempts + 1, last_failed_at = now(), run_id = excluded.run_id, "
            "error_type = excluded.error_type, message = excluded.message",
            (customer_id, run_id, DEAD_LETTER_KEY, error_type, text),
        )
        _outcome(conn, run_id, customer_id, "failed", 0)


def set_task_allowance(conn, customer_id: str, allowance: int | None) -> None:
    """Set the customer's monthly task allowance (None: no allowance); LookupError for a
    customer not in zuora.customers, ValueError for an allowance below 1."""
    if allowance is not None and (isinstance(allowance, bool) or int(allowance) < 1):
        raise ValueError(f"a task allowance is a number of tasks a month of at least 1, not {allowance!r}")
    with committing(conn):
        updated = conn.execute(
            "UPDATE zuora.customers SET task_allowance = %s, updated_at = now() WHERE customer_id = %s "
            "RETURNING 1",
            (allowance, customer_id),
        ).fetchone()
    if updated is None:
        raise LookupError(f"no customer {customer_id!r} in zuora.customers")


def mark_events_alerted(conn, kind: str) -> int:
    """Set ``workflow_events.alerted_at`` of the events an alert of ``kind`` named (its
    ``details``: ``customer_id`` and ``event_id``) and went out, or was going out (its channel
    not ``failed: ...``); returns how many events were marked."""
    with committing(conn):
        return conn.execute(
            "UPDATE zuora.workflow_events e SET alerted_at = now() FROM zuora.alerts a "
            "WHERE e.alerted_at IS NULL AND e.recorded_from = 'sync' AND a.kind = %s "
            "AND e.event_id = (a.details ->> 'event_id')::bigint AND e.customer_id = a.details ->> 'customer_id' "
            "AND a.channel NOT LIKE 'failed%%'",
            (kind,),
        ).rowcount


def _answered(
    conn,
    run_id: str,
    customer_id: str,
    first: date,
    last: date,
    now: datetime,
    *,
    available: bool,
    days: int,
    status: int | None = None,
    message: str | None = None,
) -> None:
    if message is not None:
        message = make_storable(redact_text(message))[0][:1000]
    conn.execute(
        "INSERT INTO zuora.task_usage_reads (customer_id, checked_at, available, first_day, last_day, "
        "days, http_status, message, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (customer_id) DO UPDATE SET checked_at = excluded.checked_at, "
        "available = excluded.available, first_day = excluded.first_day, last_day = excluded.last_day, "
        "days = excluded.days, http_status = excluded.http_status, message = excluded.message, "
        "run_id = excluded.run_id",
        (customer_id, now, available, first, last, days, status, message, run_id),
    )
    conn.execute(  # the call was answered: a failure before it is over
        "UPDATE zuora.dead_letters SET resolved_at = now(), resolved_run_id = %s "
        "WHERE customer_id = %s AND stage = 'list' AND item_key = %s AND resolved_at IS NULL",
        (run_id, customer_id, DEAD_LETTER_KEY),
    )


def _outcome(conn, run_id: str, customer_id: str, outcome: str, days: int) -> None:
    conn.execute(
        "UPDATE zuora.sync_runs SET task_usage = %s, task_usage_days = %s WHERE run_id = %s AND customer_id = %s",
        (outcome, days, run_id, customer_id),
    )
