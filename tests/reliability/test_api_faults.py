"""Zuora misbehaving during a run: a 429 storm, 5xx answers with connection resets and hangs,
a token revoked in the middle of the exports. Every run finishes with every workflow stored
and every stored export equal to what Zuora serves; the server's own counters show the
faults really happened."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from itertools import pairwise

import pytest

from tests.reliability.checks import assert_consistent, ledger
from zuora.api.hook import ZuoraHook
from zuora.sync import run_customer


@pytest.fixture
def http_log(monkeypatch):
    """Every HTTP answer the hooks get: (request key, monotonic time sent, status, Retry-After)."""
    log = []
    lock = threading.Lock()
    send = ZuoraHook._send

    def recording_send(self, url, endpoint, params, **request):
        sent = time.monotonic()
        response = send(self, url, endpoint, params, **request)
        with lock:
            log.append(
                (
                    (endpoint, tuple(sorted((params or {}).items()))),
                    sent,
                    response.status_code,
                    response.headers.get("Retry-After"),
                )
            )
        return response

    monkeypatch.setattr(ZuoraHook, "_send", recording_send)
    return log


def test_429_storm_is_waited_out_honouring_retry_after(env, sim_tenant, http_log):
    tenant = sim_tenant(workflows=30, fault_seed=7, rate_limit_retry_after=1)
    acme = env.customer("acme", tenant, max_attempts=10, max_retry_wait=5, max_concurrency=8)
    env.monkeypatch.setenv("ZUORA_SYNC_HISTORY_CALLS", "0")  # counts current exports only
    tenant.script([{"endpoint": "list", "kind": "rate_limit", "retry_after": 1, "count": 2}])
    run_customer(acme, "run-1", stages=("list",))
    # the storm: for 2.5 s, 90% of the calls are refused with Retry-After: 1
    tenant.set_faults(rate_limit_rate=0.9)
    started = time.monotonic()
    storm_over = threading.Timer(2.5, tenant.set_faults, kwargs={"rate_limit_rate": 0.0})
    storm_over.start()
    try:
        run_customer(acme, "run-1", stages=("export", "validate", "upsert"))
    finally:
        storm_over.cancel()
    elapsed = time.monotonic() - started

    stats = tenant.stats()
    answered = stats["by_endpoint_status"]
    assert (answered["list"]["200"], answered["export"]["200"]) == (1, 30)  # each got through once
    during_storm = [status for _, sent, status, _ in http_log if started < sent < started + 2.4]
    assert len(during_storm) >= 10 and during_storm.count(429) >= 0.75 * len(during_storm), during_storm
    run = assert_consistent(env.uri, "acme", "run-1", tenant=tenant, key=env.key)
    assert run["rate_limited"] == stats["rate_limited"]  # the ledger counts every 429
    # Retry-After honoured: after each 429, the same request is not sent again before it said
    by_request = defaultdict(list)
    for key, sent, status, retry_after in http_log:
        by_request[key].append((sent, status, retry_after))
    waits = 0
    for attempts in by_request.values():
        attempts.sort()
        for (sent, status, retry_after), (next_sent, _, _) in pairwise(attempts):
            if status == 429:
                assert next_sent - sent >= float(retry_after) - 0.05, (sent, next_sent, retry_after)
                waits += 1
    assert waits == stats["rate_limited"]
    assert elapsed < 10


def test_server_errors_resets_and_hangs(env, sim_tenant):
    tenant = sim_tenant(
        workflows=40, fault_seed=11, error_rate=0.10, reset_rate=0.03, hang_rate=0.03, hang_seconds=3
    )
    # on top of the random faults, at least one of each kind of reset and hang
    tenant.script(
        [
            {"endpoint": "list", "kind": "reset", "phase": "connect"},
            {"endpoint": "list", "kind": "hang", "seconds": 3},
            {"endpoint": "export", "kind": "reset", "phase": "body"},
            {"endpoint": "export", "kind": "reset", "phase": "connect"},
            {"endpoint": "export", "kind": "hang", "seconds": 3},
        ]
    )
    acme = env.customer("acme", tenant, read_timeout=0.5, max_retry_wait=0.5, max_concurrency=6)
    started = time.monotonic()
    run_customer(acme, "run-1")
    elapsed = time.monotonic() - started

    stats = tenant.stats()
    statuses = stats["by_status"]
    assert {"500", "502", "503", "504"} <= set(statuses), statuses
    assert stats["faults"].get("reset", 0) >= 3 and stats["faults"].get("hang", 0) >= 2, stats
    assert statuses.get("reset", 0) >= 3
    assert statuses["200"] >= 41
    run = assert_consistent(env.uri, "acme", "run-1", tenant=tenant, key=env.key)
    assert run["exports_failed"] == 0
    assert elapsed < 20
    # a rerun with the faults still on changes nothing (nothing changed at Zuora)
    run_customer(acme, "run-2")
    assert_consistent(env.uri, "acme", "run-2", tenant=tenant, key=env.key)
    assert ledger(env.uri, "run-2", "acme")["listed"] == 40


def test_token_revoked_in_the_middle_of_exports(env, sim_tenant):
    # one export at a time so the revocations land at known points (the hook's own tests
    # cover revocation under concurrency)
    tenant = sim_tenant(workflows=40)
    acme = env.customer("acme", tenant, max_concurrency=1)
    run_customer(acme, "run-1", stages=("list",))
    assert tenant.stats()["tokens_minted"] == 1
    # the 9th and the 20th export find their token revoked
    tenant.script(
        [
            {"endpoint": "export", "kind": "latency", "ms": 1, "count": 8},
            {"endpoint": "export", "kind": "unauthorized", "revoke": True},
            {"endpoint": "export", "kind": "latency", "ms": 1, "count": 10},
            {"endpoint": "export", "kind": "unauthorized", "revoke": True},
        ]
    )
    run_customer(acme, "run-1", stages=("export", "validate", "upsert"))

    stats = tenant.stats()
    assert stats["tokens_minted"] == 3  # one per revocation, no more
    assert stats["by_status"].get("401", 0) == 2, stats
    run = assert_consistent(env.uri, "acme", "run-1", tenant=tenant, key=env.key)
    assert run["exports_failed"] == 0
