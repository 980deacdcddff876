"""``GET /workflows/metrics.json?startDate=&endDate=&metrics=taskCount``: the tenant's Workflow
task usage per day (reference §3.7), computed from the runs the simulator simulates.

The run model, deterministic per tenant (its seed) and day:

- an Active workflow runs ``0..runs_per_day`` times a day (a draw per workflow and day), and
  each run runs as many tasks as its active version has (a version's explicit tasks, or a
  number drawn in its size class's range per content revision: a new version may run more);
- the status and active version that count for a day are the workflow's at the end of that
  day (``Workflow.state_at``): a workflow switched off on a day runs nothing that day, one
  whose new version was activated runs the new version's tasks that day;
- ``tasks_per_day`` (tenant config ``usage``) replaces the model: every whole day counts
  exactly that many tasks;
- today (UTC) counts the share of the day gone so far (it grows through the day); days after
  today are not answered;
- ``extra_tasks`` ``{"YYYY-MM-DD": N}`` adds N tasks to a day: a day revised upward after it
  was read;
- ``metrics_status`` 403 (no access to usage) or 404 (an older tenant without the endpoint)
  answers that status instead, as Zuora's Workflow error.

Every answer has one entry per day from ``startDate`` to ``endDate`` (or today), oldest first,
zero days included. Required parameters, all three: ``startDate`` and ``endDate``
(``YYYY-MM-DD``, start not after end) and ``metrics=taskCount`` (the only metric); else 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from starlette.responses import Response

from . import data, responses
from .state import Tenant

DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # fullmatch
METRICS = ("taskCount",)
_MASK = (1 << 64) - 1


def metrics_endpoint(tenant: Tenant, query: Mapping[str, str], now: datetime | None = None) -> Response:
    """The API answer to one request (authentication, limits and faults are the caller's)."""
    record: dict[str, Any] = {"seq": len(tenant.usage_requests) + 1, "query": dict(query)}
    tenant.usage_requests.append(record)
    response = _answer(tenant, query, now or datetime.now(UTC))
    record["status"] = response.status_code
    return response


def _answer(tenant: Tenant, query: Mapping[str, str], now: datetime) -> Response:
    status = tenant.config.usage.metrics_status
    if status == 403:
        return responses.workflow_error(
            403, "You do not have access to the workflow usage metrics.", code="forbidden"
        )
    if status == 404:
        return responses.workflow_error(404, "Not Found", code="not_found")
    parsed = parse_query(query)
    if isinstance(parsed, Response):
        return parsed
    start, end = parsed
    return responses.json_response(
        {
            "metrics": [
                {"date": day.isoformat(), "values": {"taskCount": n}}
                for day, n in tasks(tenant, start, end, now)
            ]
        }
    )


def parse_query(query: Mapping[str, str]) -> tuple[date, date] | Response:
    """(startDate, endDate), or the 400 answer saying which parameter is missing or wrong."""
    days = []
    for name in ("startDate", "endDate"):
        value = query.get(name)
        if not value:
            return responses.workflow_error(400, f"{name} is required (YYYY-MM-DD).")
        try:
            if not DAY_RE.fullmatch(value):
                raise ValueError(value)
            days.append(date.fromisoformat(value))
        except ValueError:
            return responses.workflow_error(400, f"The input of {name} '{value}' is invalid: use YYYY-MM-DD.")
    metric = query.get("metrics")
    if not metric:
        return responses.workflow_error(400, "metrics is required (taskCount).")
    if metric not in METRICS:
        return responses.workflow_error(400, f"The input of metrics '{metric}' is invalid: use taskCount.")
    start, end = days
    if start > end:
        return responses.workflow_error(400, "startDate must not be after endDate.")
    return start, end


def tasks(tenant: Tenant, start: date, end: date, now: datetime) -> list[tuple[date, int]]:
    """The tasks of each day from ``start`` to ``end`` (at most today, UTC), as answered now."""
    usage = tenant.config.usage
    today = now.astimezone(UTC).date()
    day_gone = (now - datetime.combine(today, time(), UTC)).total_seconds() / 86400
    answered = []
    day = start
    while day <= min(end, today):
        moment = min(datetime.combine(day + timedelta(days=1), time(), UTC), now)
        full = usage.tasks_per_day if usage.tasks_per_day is not None else _tasks_of_runs(tenant, day, moment)
        count = full if day < today else int(full * day_gone)
        answered.append((day, count + int(usage.extra_tasks.get(day.isoformat(), 0))))
        day += timedelta(days=1)
    return answered


def _tasks_of_runs(tenant: Tenant, day: date, moment: datetime) -> int:
    """The tasks the tenant's Active workflows ran on ``day``, in their state at ``moment``."""
    seed, most = tenant.config.seed, tenant.config.usage.runs_per_day
    total = 0
    for wf in tenant.workflows.values():
        if wf.created_at > moment:
            continue
        status, version = wf.state_at(moment)
        if status != "Active":
            continue
        runs = _mix(seed, wf.id, day.toordinal()) % (most + 1)
        total += runs * tasks_per_run(seed, wf, version)
    return total


def tasks_per_run(seed: int, wf: data.Workflow, version: data.Version) -> int:
    """The tasks one run of ``version`` runs: its explicit tasks, or a number in its size
    class's range, drawn per content revision."""
    if version.tasks is not None:
        return len(version.tasks)
    _, _, least, most = data.SIZE_CLASSES[wf.size_class]
    return least + _mix(seed, wf.id, version.revision, 7) % (most - least + 1)


def _mix(*parts: int) -> int:
    """A well-spread 64-bit hash of integers (splitmix64 steps), cheap enough per workflow and day."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = ((h ^ (part & _MASK)) * 0xBF58476D1CE4E5B9) & _MASK
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _MASK
        h ^= h >> 29
    return h
