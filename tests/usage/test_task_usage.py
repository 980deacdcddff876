"""Task usage read by the customer's list stage, against the simulator over real HTTP and the
real warehouse: the first read, incremental reads (once a UTC day, the days since the last
complete day), a day revised upward, 403 and 404 ("usage not available"), a 429 with
Retry-After, malformed answers (a dead letter of the customer's usage, the definitions synced,
no other customer harmed), in both shapes of the DAG (a group's list task, a batch)."""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta

import pytest

from zuora import batches, sync
from zuora.warehouse.usage import first_read_day

D = timedelta(days=1)


def stored(env, customer_id: str = "acme") -> dict[date, int]:
    return dict(env.query("SELECT day, task_count FROM zuora.task_usage WHERE customer_id = %s", customer_id))


def asked(tenant) -> list[tuple[str, str]]:
    """The (startDate, endDate) of each request that reached the simulator's metrics.json."""
    return [(r["query"]["startDate"], r["query"]["endDate"]) for r in tenant.usage_requests()]


def span(first: date, last: date) -> list[date]:
    return [first + n * D for n in range((last - first).days + 1)]


def outcome(env, run_id: str, customer_id: str = "acme") -> tuple:
    return env.query(
        "SELECT status, task_usage, task_usage_days FROM zuora.sync_runs WHERE run_id = %s AND customer_id = %s",
        run_id,
        customer_id,
    )[0]


def truth(tenant, first: date, last: date) -> dict[date, int]:
    answer = tenant.usage(first.isoformat(), last.isoformat())["metrics"]
    return {date.fromisoformat(m["date"]): m["values"]["taskCount"] for m in answer}


def test_first_read_with_no_history_reads_this_month_and_last(env, sim_tenant, clock):
    tenant = sim_tenant(workflows=8, seed=2)
    acme = env.customer("acme", tenant)
    today = clock.today
    listed = sync.list_stage(acme, "run-1")  # a group's list task, as the DAG runs it
    first = (today.replace(day=1) - D).replace(day=1)  # the first day of last month
    assert first_read_day(today) == first
    assert asked(tenant) == [(first.isoformat(), today.isoformat())]
    days = stored(env)
    assert sorted(days) == span(first, today)
    expected = truth(tenant, first, today)
    assert {d: n for d, n in days.items() if d < today} == {d: n for d, n in expected.items() if d < today}
    assert sum(days.values()) > 0 and days[today] <= expected[today]  # today grows
    assert outcome(env, "run-1") == ("running", "read", len(span(first, today)))
    # the call is counted with the listing's in the ledger, and in the task's report
    requests = tenant.stats()["requests"]
    assert requests["metrics"] == 1
    assert listed.report["api_requests"] == tenant.stats()["total_requests"] == 3  # token, list, metrics
    assert env.query("SELECT api_requests FROM zuora.sync_runs WHERE run_id = 'run-1'") == [
        (listed.report["api_requests"],)
    ]
    assert env.query(
        "SELECT available, first_day, last_day, days, http_status FROM zuora.task_usage_reads"
    ) == [(True, first, today, len(span(first, today)), None)]


def test_incremental_reads_once_a_day_the_days_since_the_last_complete_day(env, sim_tenant, clock):
    tenant = sim_tenant(workflows=5, usage={"tasks_per_day": 300})
    acme = env.customer("acme", tenant)
    t = clock.today
    clock.at(t, 10)
    sync.run_customer(acme, "run-1")
    assert asked(tenant) == [(first_read_day(t).isoformat(), t.isoformat())]

    clock.at(t, 15)  # the same UTC day: no call, the definitions synced as always
    tenant.reset_stats()
    reports = sync.run_customer(acme, "run-2")
    assert len(asked(tenant)) == 1 and tenant.stats()["requests"] == {"list": 1}
    assert reports["upsert"]["listed"] == 5 and outcome(env, "run-2") == ("success", "not_needed", 0)

    clock.at(t + D, 3)  # the next day: yesterday and today again, and the new day
    sync.run_customer(acme, "run-3")
    assert asked(tenant)[1:] == [((t - D).isoformat(), (t + D).isoformat())]
    assert outcome(env, "run-3") == ("success", "read", 3)
    days = stored(env)
    assert days[t - D] == 300 and t + D in days  # t + D: the simulator's tomorrow, 0 so far

    clock.at(t + 2 * D, 3)  # the day before yesterday was read after it ended everywhere: final
    sync.run_customer(acme, "run-4")
    assert asked(tenant)[2:] == [(t.isoformat(), (t + 2 * D).isoformat())]

    clock.at(t + 6 * D, 3)  # runs missed: every day since the last complete one
    sync.run_customer(acme, "run-5")
    assert asked(tenant)[3:] == [((t + D).isoformat(), (t + 6 * D).isoformat())]
    assert sorted(stored(env)) == span(first_read_day(t), t + 6 * D)
    assert env.query("SELECT max(read_at) FROM zuora.task_usage")[0][0] == clock.now


def test_a_day_revised_upward_is_updated_a_complete_day_is_not_read_again(env, sim_tenant, clock):
    tenant = sim_tenant(workflows=6, seed=9)
    acme = env.customer("acme", tenant)
    t = clock.today
    clock.at(t, 10)
    sync.list_stage(acme, "run-1")
    before = stored(env)
    tenant.update(usage={"extra_tasks": {(t - D).isoformat(): 500, (t - 3 * D).isoformat(): 70}})

    clock.at(t + D, 3)
    sync.list_stage(acme, "run-2")
    after = stored(env)
    assert after[t - D] == before[t - D] + 500 == truth(tenant, t - D, t - D)[t - D]
    assert after[t - 3 * D] == before[t - 3 * D]  # complete when read at t: not asked again
    assert env.query("SELECT run_id FROM zuora.task_usage WHERE day = %s", t - D) == [("run-2",)]
    assert env.query("SELECT run_id FROM zuora.task_usage WHERE day = %s", t - 3 * D) == [("run-1",)]


@pytest.mark.parametrize("status", [403, 404])
def test_usage_not_available_is_recorded_once_never_fails_the_sync_and_waits_a_day(
    env, sim_tenant, clock, caplog, status
):
    tenant = sim_tenant(workflows=4, usage={"metrics_status": status})
    acme = env.customer("acme", tenant)
    t = clock.today
    clock.at(t, 9)
    with caplog.at_level(logging.INFO, logger="zuora.usage"):
        reports = sync.run_customer(acme, "run-1")
    assert reports["upsert"]["stored"] == 4
    assert outcome(env, "run-1") == ("success", "not_available", 0)
    said = [r for r in caplog.records if "not available" in r.getMessage()]
    assert (
        len(said) == 1 and said[0].levelno == logging.WARNING and f"answered {status}" in said[0].getMessage()
    )
    [(available, http_status, message)] = env.query(
        "SELECT available, http_status, message FROM zuora.task_usage_reads WHERE customer_id = 'acme'"
    )
    assert (available, http_status) == (False, status) and "metrics.json" in message
    assert stored(env) == {} and env.query("SELECT count(*) FROM zuora.dead_letters") == [(0,)]

    clock.at(t, 20)  # not asked again that day
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="zuora.usage"):
        sync.run_customer(acme, "run-2")
    assert len(tenant.usage_requests()) == 1 and outcome(env, "run-2") == ("success", "not_needed", 0)
    assert not [r for r in caplog.records if "not available" in r.getMessage()]

    tenant.update(usage={"metrics_status": 200})  # access granted: read the next day
    clock.at(t + D, 3)
    sync.run_customer(acme, "run-3")
    assert len(tenant.usage_requests()) == 2 and outcome(env, "run-3")[1] == "read"
    assert env.query("SELECT available, http_status FROM zuora.task_usage_reads") == [(True, None)]


def test_a_429_waits_retry_after_within_the_customer_s_retries(env, sim_tenant, clock):
    tenant = sim_tenant(workflows=3)
    acme = env.customer("acme", tenant)
    tenant.script([{"endpoint": "metrics", "kind": "rate_limit", "retry_after": 1}])
    started = time.monotonic()
    sync.list_stage(acme, "run-1")
    assert time.monotonic() - started >= 1.0
    assert tenant.stats()["by_endpoint_status"]["metrics"] == {"429": 1, "200": 1}
    assert env.query("SELECT task_usage, rate_limited, retries FROM zuora.sync_runs") == [("read", 1, 1)]
    assert len(stored(env)) == (clock.today - first_read_day(clock.today)).days + 1


MALFORMED = {
    "truncated JSON": {"kind": "malformed"},
    "no metrics list": {"kind": "status", "status": 200, "body": {"data": []}},
    "not a day": {
        "kind": "status",
        "status": 200,
        "body": {"metrics": [{"date": "2026-02-30", "values": {"taskCount": 3}}]},
    },
    "a negative count": {
        "kind": "status",
        "status": 200,
        "body": {"metrics": [{"date": "2026-02-03", "values": {"taskCount": -1}}]},
    },
    "a count as text": {
        "kind": "status",
        "status": 200,
        "body": {"metrics": [{"date": "2026-02-03", "values": {"taskCount": "12"}}]},
    },
    "a day twice": {
        "kind": "status",
        "status": 200,
        "body": {
            "metrics": [
                {"date": "2026-02-03", "values": {"taskCount": 1}},
                {"date": "2026-02-03", "values": {"taskCount": 2}},
            ]
        },
    },
}
SAID = {
    "truncated JSON": "not valid JSON",
    "no metrics list": "no 'metrics' list",
    "not a day": "metrics[0] has no 'date' of the form YYYY-MM-DD",
    "a negative count": "metrics[0] (2026-02-03) has no whole 'values.taskCount'",
    "a count as text": "metrics[0] (2026-02-03) has no whole 'values.taskCount'",
    "a day twice": "metrics[1]: 2026-02-03 is answered twice",
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_answer_is_the_customer_s_usage_dead_letter_and_harms_nothing_else(
    env, sim_tenant, clock, case
):
    broken, healthy = sim_tenant(workflows=3), sim_tenant(workflows=2)
    customers = [env.customer("acme", broken), env.customer("globex", healthy)]
    broken.script([{"endpoint": "metrics", **MALFORMED[case]}])
    [batch] = batches.make_batches(customers, 2)  # one batch task syncs both (sync.run_customer)
    result = batches.sync_batch(batch, "run-1", map_index=0)
    assert result["succeeded"] == 2 and result["failed"] == 0
    assert outcome(env, "run-1", "acme") == ("success", "failed", 0)
    assert outcome(env, "run-1", "globex")[:2] == ("success", "read")
    assert env.query("SELECT count(*) FROM zuora.workflows WHERE customer_id = 'acme'") == [(3,)]
    assert stored(env, "acme") == {} and len(stored(env, "globex")) > 28
    [(stage, item, error_type, message)] = env.query(
        "SELECT stage, item_key, error_type, message FROM zuora.dead_letters WHERE resolved_at IS NULL"
    )
    assert (stage, item, error_type) == ("list", "task_usage", "ZuoraMalformedResponseError")
    assert SAID[case] in message and "the definitions are synced" in message

    # the next run asks again (a failure is not an answer): failing again, the open letter
    # counts an attempt and does not make the unchanged customer run its other tasks
    broken.script([{"endpoint": "metrics", **MALFORMED[case]}])
    listed = sync.list_stage(customers[0], "run-2", finish_unchanged=True)
    assert listed.finished is not None and outcome(env, "run-2", "acme") == ("success", "failed", 0)
    assert env.query("SELECT attempts FROM zuora.dead_letters WHERE resolved_at IS NULL") == [(2,)]
    # answered the next time: the letter is resolved by that run
    sync.list_stage(customers[0], "run-3", finish_unchanged=True)
    assert broken.stats()["requests"]["metrics"] == 3
    assert outcome(env, "run-3", "acme") == ("success", "read", len(stored(env)))
    assert env.query("SELECT count(*) FROM zuora.dead_letters WHERE resolved_at IS NULL") == [(0,)]
    assert env.query("SELECT resolved_run_id FROM zuora.dead_letters") == [("run-3",)]


def test_a_failure_beyond_the_hook_s_retries_is_a_dead_letter_and_the_sync_goes_on(env, sim_tenant, clock):
    tenant = sim_tenant(workflows=2)
    acme = env.customer("acme", tenant, max_attempts=2)
    tenant.script([{"endpoint": "metrics", "kind": "status", "status": 503, "count": 2}])
    reports = sync.run_customer(acme, "run-1")
    assert reports["upsert"]["stored"] == 2 and outcome(env, "run-1") == ("success", "failed", 0)
    assert env.query("SELECT error_type, attempts FROM zuora.dead_letters WHERE item_key = 'task_usage'") == [
        ("ZuoraTransientError", 1)
    ]


def test_the_hook_s_usage_call_and_its_typed_errors(env, sim_tenant):
    from zuora.api.errors import ZuoraAuthError, ZuoraMalformedResponseError, ZuoraNotFoundError
    from zuora.api.hook import ZuoraHook

    tenant = sim_tenant(workflows=3, usage={"tasks_per_day": 40})
    env.customer("acme", tenant)
    hook = ZuoraHook("zuora_acme")
    assert hook.task_usage(date(2026, 3, 30), date(2026, 4, 2)) == {
        date(2026, 3, 30): 40,
        date(2026, 3, 31): 40,
        date(2026, 4, 1): 40,
        date(2026, 4, 2): 40,
    }
    assert tenant.usage_requests()[0]["query"] == {
        "startDate": "2026-03-30",
        "endDate": "2026-04-02",
        "metrics": "taskCount",
    }
    for status, error in ((403, ZuoraAuthError), (404, ZuoraNotFoundError)):
        tenant.update(usage={"metrics_status": status})
        with pytest.raises(error) as raised:
            hook.task_usage(date(2026, 3, 30), date(2026, 4, 2))
        assert raised.value.status == status and raised.value.endpoint == "/workflows/metrics.json"
        assert len(raised.value.request_id) == 36
    tenant.update(usage={"metrics_status": 200})
    tenant.script(
        [{"endpoint": "metrics", "kind": "status", "status": 200, "body": {"metrics": [{"date": 1}]}}]
    )
    with pytest.raises(ZuoraMalformedResponseError, match="metrics\\[0\\] has no 'date'"):
        hook.task_usage(date(2026, 3, 30), date(2026, 4, 2))
    assert tenant.stats()["by_endpoint_status"]["metrics"] == {"200": 2, "403": 1, "404": 1}  # none retried
