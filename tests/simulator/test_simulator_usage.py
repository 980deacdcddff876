"""GET /workflows/metrics.json of the simulator: the shape and parameters of reference §3.7,
400s, the usage model (runs of Active workflows, a fixed tasks_per_day, a day revised upward,
today growing), 403/404 for a tenant without usage, and the tenant's auth, limits, faults and
stats around it."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from zuora_simulator import data
from zuora_simulator.config import build_config
from zuora_simulator.state import Tenant
from zuora_simulator.usage import tasks, tasks_per_run

PATH = "/workflows/metrics.json"


def usage(tenant, headers, **params):
    return requests.get(tenant.base_url + PATH, headers=headers, params=params, timeout=10)


def day(offset: int = 0) -> str:
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


@pytest.fixture(autouse=True)
def not_at_midnight():
    """A test's days are those of one UTC day: one starting in its last minute waits for the next."""
    now = datetime.now(UTC)
    left = (now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1) - now).total_seconds()
    if left < 60:
        time.sleep(left + 0.5)


def test_one_entry_per_day_up_to_today_as_the_spec_shows(sim_tenant):
    t = sim_tenant(workflows=12, seed=3)
    answer = usage(t, t.auth_headers(), startDate=day(-40), endDate=day(5), metrics="taskCount")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert len(answer.headers["Zuora-Request-Id"]) == 36 and "RateLimit-Remaining" in answer.headers
    metrics = answer.json()["metrics"]
    assert [m["date"] for m in metrics] == [day(n) for n in range(-40, 1)]  # no day after today
    assert all(set(m) == {"date", "values"} and set(m["values"]) == {"taskCount"} for m in metrics)
    counts = [m["values"]["taskCount"] for m in metrics]
    assert all(isinstance(n, int) and n >= 0 for n in counts) and sum(counts[:-1]) > 0
    assert len(set(counts[:-1])) > 5  # runs vary from day to day
    truth = t.usage(day(-40), day(-1))["metrics"]
    assert truth == metrics[:-1]  # past days are final: the admin view agrees
    again = usage(t, t.auth_headers(), startDate=day(-40), endDate=day(-1), metrics="taskCount").json()
    assert again["metrics"] == metrics[:-1]  # deterministic
    other_seed = sim_tenant(workflows=12, seed=4).usage(day(-40), day(-1))["metrics"]
    assert other_seed != truth
    assert t.usage_requests() == [
        {
            "seq": 1,
            "query": {"startDate": day(-40), "endDate": day(5), "metrics": "taskCount"},
            "status": 200,
        },
        {
            "seq": 2,
            "query": {"startDate": day(-40), "endDate": day(-1), "metrics": "taskCount"},
            "status": 200,
        },
    ]
    assert t.stats()["requests"] == {"token": 2, "metrics": 2}


@pytest.mark.parametrize(
    "params, title",
    [
        ({"endDate": "2026-01-31", "metrics": "taskCount"}, "startDate is required (YYYY-MM-DD)."),
        ({"startDate": "2026-01-01", "metrics": "taskCount"}, "endDate is required (YYYY-MM-DD)."),
        ({"startDate": "2026-01-01", "endDate": "2026-01-31"}, "metrics is required (taskCount)."),
        (
            {"startDate": "2026-1-01", "endDate": "2026-01-31", "metrics": "taskCount"},
            "The input of startDate '2026-1-01' is invalid: use YYYY-MM-DD.",
        ),
        (
            {"startDate": "2026-01-01", "endDate": "2026-02-30", "metrics": "taskCount"},
            "The input of endDate '2026-02-30' is invalid: use YYYY-MM-DD.",
        ),
        (
            {"startDate": "2026-01-01T00:00", "endDate": "2026-01-31", "metrics": "taskCount"},
            "The input of startDate '2026-01-01T00:00' is invalid: use YYYY-MM-DD.",
        ),
        (
            {"startDate": "2026-01-01", "endDate": "2026-01-31", "metrics": "runCount"},
            "The input of metrics 'runCount' is invalid: use taskCount.",
        ),
        (
            {"startDate": "2026-02-01", "endDate": "2026-01-31", "metrics": "taskCount"},
            "startDate must not be after endDate.",
        ),
    ],
)
def test_missing_or_malformed_parameters_are_400(sim_tenant, params, title):
    t = sim_tenant(workflows=2)
    answer = usage(t, t.auth_headers(), **params)
    assert answer.status_code == 400
    assert answer.json() == {"errors": [{"status": 400, "code": "invalid", "title": title}]}
    assert t.usage_requests()[0]["status"] == 400


def test_tasks_per_day_today_growing_and_a_day_revised_upward(sim_tenant):
    t = sim_tenant(workflows=3, usage={"tasks_per_day": 1000})
    auth = t.auth_headers()
    before = usage(t, auth, startDate=day(-3), endDate=day(0), metrics="taskCount").json()["metrics"]
    now = datetime.now(UTC)
    gone = (now - now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds() / 86400
    assert [m["values"]["taskCount"] for m in before[:-1]] == [1000, 1000, 1000]
    assert abs(before[-1]["values"]["taskCount"] - 1000 * gone) <= 2  # the share of today gone so far
    t.update(usage={"tasks_per_day": 1000, "extra_tasks": {day(-2): 250}})
    after = usage(t, auth, startDate=day(-3), endDate=day(-1), metrics="taskCount").json()["metrics"]
    assert [m["values"]["taskCount"] for m in after] == [1000, 1250, 1000]


def test_a_tenant_without_usage_answers_403_or_404_and_keeps_its_other_calls(sim_tenant):
    no_access = sim_tenant(workflows=2, usage={"metrics_status": 403})
    older = sim_tenant(workflows=2, metrics_status=404)  # flat keys work too
    params = {"startDate": day(-1), "endDate": day(0), "metrics": "taskCount"}
    refused = usage(no_access, no_access.auth_headers(), **params)
    assert refused.status_code == 403
    assert refused.json() == {
        "errors": [
            {
                "status": 403,
                "code": "forbidden",
                "title": "You do not have access to the workflow usage metrics.",
            }
        ]
    }
    missing = usage(older, older.auth_headers(), **params)
    assert missing.status_code == 404
    assert missing.json() == {"errors": [{"status": 404, "code": "not_found", "title": "Not Found"}]}
    for t in (no_access, older):
        assert (
            requests.get(t.base_url + "/workflows", headers=t.auth_headers(), timeout=10).status_code == 200
        )
    assert no_access.stats()["by_endpoint_status"]["metrics"] == {"403": 1}
    assert older.usage_requests()[0]["status"] == 404
    with pytest.raises(RuntimeError, match="metrics_status must be one of"):
        older.update(usage={"metrics_status": 500})


def test_auth_rate_limits_faults_and_the_tenant_prefix_apply(sim_tenant):
    t = sim_tenant(workflows=2, requests_per_minute=2, rate_window_seconds=30)
    params = {"startDate": day(-1), "endDate": day(0), "metrics": "taskCount"}
    assert usage(t, {}, **params).status_code == 401
    auth = t.auth_headers()
    t.script([{"endpoint": "metrics", "kind": "malformed"}])
    cut = usage(t, auth, **params)
    assert cut.status_code == 200
    with pytest.raises(ValueError):
        cut.json()
    scoped = requests.get(t.scoped_base_url + PATH, headers=auth, params=params, timeout=10)
    assert scoped.status_code == 200 and [m["date"] for m in scoped.json()["metrics"]] == [day(-1), day(0)]
    limited = usage(t, auth, **params)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["reasons"][0]["code"] == 70
    stats = t.stats()
    assert stats["by_endpoint_status"]["metrics"] == {"200": 2, "429": 1}  # the 401: no tenant known
    assert stats["faults"] == {"malformed": 1}
    forbidden = sim_tenant(workflows=1, forbidden=True)
    assert usage(forbidden, forbidden.auth_headers(), **params).status_code == 403


def test_the_run_model_follows_each_workflow_s_status_and_active_version():
    tenant = Tenant(build_config({"tenant_id": "model", "seed": 5, "workflows": 6}))
    now = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
    start = date(2026, 5, 1)
    active = [wf for wf in tenant.workflows.values() if wf.status == "Active"]
    assert active and len(active) < len(tenant.workflows)
    counts = dict(tasks(tenant, start, date(2026, 5, 31), now))
    assert sorted(counts) == [start + timedelta(days=n) for n in range(20)]  # up to today
    # each day: the runs of the Active workflows, times the tasks of their active version
    per_run = {wf.id: tasks_per_run(5, wf, wf.current) for wf in active}
    for counted in counts.values():
        assert counted <= sum(per_run.values()) * 4
    assert any(counted > 0 for counted in counts.values())
    # today at noon: half of what the whole day counts once it is over
    whole = tasks(tenant, date(2026, 5, 20), date(2026, 5, 20), datetime(2026, 5, 21, tzinfo=UTC))[0][1]
    assert whole > 1 and counts[date(2026, 5, 20)] == int(whole * 0.5)

    # switched off on the 10th (before it, the state it had): the 10th on runs nothing
    busiest = max(active, key=lambda wf: per_run[wf.id])
    busiest.record_state(datetime(2026, 5, 10, 8, 0, tzinfo=UTC))
    busiest.status = "Inactive"
    after = dict(tasks(tenant, start, date(2026, 5, 31), now))
    assert {d: after[d] for d in counts if d < date(2026, 5, 10)} == {
        d: counts[d] for d in counts if d < date(2026, 5, 10)
    }
    assert all(after[d] <= counts[d] for d in counts) and sum(after.values()) < sum(counts.values())

    # a new active version with twice the tasks, from the 15th: those days run the new version
    other = next(wf for wf in active if wf is not busiest)
    other.record_state(datetime(2026, 5, 15, 8, 0, tzinfo=UTC))
    doubled = [{"id": n, "name": f"t{n}"} for n in range(2 * per_run[other.id])]
    other.add_version(data.Version(99, 9999, 99, dict(other.header), now, now, doubled, []), activate=True)
    assert tasks_per_run(5, other, other.current) == 2 * per_run[other.id]
    final = dict(tasks(tenant, start, date(2026, 5, 31), now))
    assert {d: final[d] for d in counts if d < date(2026, 5, 15)} == {
        d: after[d] for d in counts if d < date(2026, 5, 15)
    }
    assert sum(final[d] for d in counts if d >= date(2026, 5, 15)) > sum(
        after[d] for d in counts if d >= date(2026, 5, 15)
    )
