"""Limits, fault injection, headers, gzip and exact stats of the simulator."""

from __future__ import annotations

import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from zuora_simulator import running_simulator


def get(tenant, path, headers, timeout=10, **params):
    return requests.get(tenant.base_url + path, headers=headers, params=params or None, timeout=timeout)


def test_rate_limit_window(sim_tenant):
    t = sim_tenant(workflows=3, requests_per_minute=3, rate_window_seconds=2)
    auth = t.auth_headers()
    first = get(t, "/workflows", auth)
    assert first.headers["RateLimit-Limit"] == "3, 3;w=2"
    assert first.headers["RateLimit-Remaining"] == "2"
    assert 1 <= int(first.headers["RateLimit-Reset"]) <= 2
    assert [get(t, "/workflows", auth).status_code for _ in range(2)] == [200, 200]
    r = get(t, "/workflows", auth)
    assert r.status_code == 429
    assert r.headers["RateLimit-Remaining"] == "0"
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    assert r.json() == {
        "success": False,
        "reasons": [
            {
                "code": 70,
                "message": f"API Rate limit exceeded for the minute, retry after {retry_after} seconds",
            }
        ],
    }
    time.sleep(retry_after)
    assert get(t, "/workflows", auth).status_code == 200
    stats = t.stats()
    assert stats["by_endpoint_status"]["list"] == {"200": 4, "429": 1} and stats["rate_limited"] == 1


def test_concurrency_limit_and_max_in_flight(sim_tenant):
    t = sim_tenant(workflows=2, concurrency_limit=2, latency_ms=500)
    auth = t.auth_headers()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: get(t, "/workflows", auth), range(4)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 200, 429, 429]
    for r in answers:
        if r.status_code == 429:
            assert r.headers["Retry-After"] == "120"
            assert r.json()["reasons"][0]["code"] == 50000070
    stats = t.stats()
    assert stats["max_in_flight"] == 2 and stats["in_flight"] == 0
    assert stats["rate_limited"] == 2


def test_latency_does_not_block_other_tenants(sim_tenant):
    slow, fast = sim_tenant(workflows=1, latency_ms=800), sim_tenant(workflows=1)
    slow_auth, fast_auth = slow.auth_headers(), fast.auth_headers()
    with ThreadPoolExecutor(2) as pool:
        pending = pool.submit(get, slow, "/workflows", slow_auth)
        time.sleep(0.1)
        started = time.monotonic()
        assert get(fast, "/workflows", fast_auth).status_code == 200
        assert time.monotonic() - started < 0.6
        assert not pending.done()
        assert pending.result().status_code == 200


def test_scripted_status_rate_limit_and_unauthorized(sim_tenant):
    t = sim_tenant(workflows=2)
    wid = t.workflow_ids()[0]
    t.script(
        [
            {"endpoint": "export", "kind": "status", "status": 503, "count": 2},
            {"endpoint": "list", "kind": "rate_limit", "retry_after": 1},
            {"endpoint": "export", "kind": "unauthorized"},
            {"kind": "concurrency_limit"},
            {"endpoint": "export", "kind": "status", "status": 500},
        ]
    )
    auth = t.auth_headers()
    assert get(t, "/workflows", auth).status_code == 429  # list item, taken out of order
    assert [get(t, f"/workflows/{wid}/export", auth).status_code for _ in range(2)] == [503, 503]
    assert get(t, f"/workflows/{wid}/export", auth).status_code == 401
    r = get(t, "/workflows", auth)
    assert r.status_code == 429 and r.json()["reasons"][0]["code"] == 50000070
    r = get(t, f"/workflows/{wid}/export", auth)
    assert r.status_code == 500 and r.json()["errors"][0]["status"] == 500
    assert get(t, f"/workflows/{wid}/export", auth).status_code == 200
    assert t.admin.pending_script(t.tenant_id) == []
    assert t.stats()["faults"] == {"status": 3, "rate_limit": 1, "unauthorized": 1, "concurrency_limit": 1}


def test_scripted_token_fault_and_revoking_401(sim_tenant):
    t = sim_tenant(workflows=1)
    t.script([{"endpoint": "token", "kind": "status", "status": 503}])
    form = {"client_id": t.client_id, "client_secret": t.client_secret, "grant_type": "client_credentials"}
    assert requests.post(f"{t.base_url}/oauth/token", data=form, timeout=10).status_code == 503
    auth = t.auth_headers()
    t.script([{"endpoint": "list", "kind": "unauthorized", "revoke": True}])
    assert get(t, "/workflows", auth).status_code == 401
    assert get(t, "/workflows", auth).status_code == 401  # the token really is gone
    assert get(t, "/workflows", t.auth_headers()).status_code == 200


@pytest.mark.parametrize("phase", ["connect", "body"])
def test_scripted_reset(sim_tenant, phase):
    t = sim_tenant(workflows=1)
    wid = t.workflow_ids()[0]
    auth = t.auth_headers()
    t.script([{"endpoint": "export", "kind": "reset", "phase": phase}])
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        get(t, f"/workflows/{wid}/export", auth)
    assert get(t, f"/workflows/{wid}/export", auth).status_code == 200
    stats = t.stats()
    assert stats["by_endpoint_status"]["export"] == {"reset": 1, "200": 1}
    assert stats["in_flight"] == 0


def test_scripted_hang_and_malformed(sim_tenant):
    t = sim_tenant(workflows=2)
    auth = t.auth_headers()
    t.script(
        [{"endpoint": "list", "kind": "hang", "seconds": 1.5}, {"endpoint": "list", "kind": "malformed"}]
    )
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(t, "/workflows", auth, timeout=0.5)
    r = get(t, "/workflows", auth)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.content)
    assert get(t, "/workflows", auth).json()["data"]


def test_random_faults_are_seeded(sim_tenant):
    def run():
        t = sim_tenant(
            workflows=1,
            error_rate=0.3,
            malformed_rate=0.2,
            rate_limit_rate=0.1,
            error_statuses=[500, 502, 503, 504],
            fault_seed=77,
        )
        auth = t.auth_headers()
        return [get(t, "/workflows", auth).status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert 200 in first and 429 in first and {500, 502, 503, 504} & set(first)


def test_failing_export_ids(sim_tenant):
    t = sim_tenant(workflows=3)
    bad, good = t.workflow_ids()[:2]
    t.set_faults(failing_export_ids=[bad])
    auth = t.auth_headers()
    for _ in range(2):
        r = get(t, f"/workflows/{bad}/export", auth)
        assert r.status_code == 500 and r.json()["errors"][0]["title"]
    assert get(t, f"/workflows/{good}/export", auth).status_code == 200


def test_stats_are_exact(sim_tenant):
    t = sim_tenant(workflows=5)
    ids = t.workflow_ids()
    auth = t.auth_headers()
    get(t, "/workflows", auth)
    get(t, "/workflows", auth, page=2)
    for wid in ids[:3]:
        get(t, f"/workflows/{wid}/export", auth)
    get(t, "/workflows/1/export", auth)
    stats = t.stats()
    assert stats["requests"] == {"token": 1, "list": 2, "export": 4}
    assert stats["by_status"] == {"200": 6, "404": 1}
    assert stats["tokens_minted"] == 1 and stats["max_in_flight"] == 1
    t.admin.workflows(t.tenant_id)  # admin calls are not counted
    assert t.stats()["total_requests"] == 7
    t.reset_stats()
    assert t.stats()["total_requests"] == 0
    overall = t.admin.stats()
    assert t.tenant_id in overall["tenants"] and "total" in overall


def test_headers_gzip_and_track_id(sim_tenant):
    t = sim_tenant(workflows=20, seed=1)
    auth = t.auth_headers()
    huge = max(t.admin.workflows(t.tenant_id), key=lambda w: w["size_class"] == "huge")["id"]
    r = requests.get(
        f"{t.base_url}/workflows/{huge}/export",
        timeout=10,
        stream=True,
        headers={**auth, "Accept-Encoding": "gzip", "Zuora-Track-Id": "sync-42"},
    )
    raw = r.raw.read()
    assert r.headers["Content-Encoding"] == "gzip"
    assert len(gzip.decompress(raw)) > len(raw)
    assert r.headers["Zuora-Track-Id"] == "sync-42" and len(r.headers["Zuora-Request-Id"]) == 36
    plain = requests.get(
        f"{t.base_url}/workflows/{huge}/export", timeout=10, headers={**auth, "Accept-Encoding": "identity"}
    )
    assert "Content-Encoding" not in plain.headers
    unauthorized = requests.get(f"{t.base_url}/workflows", timeout=10)
    assert len(unauthorized.headers["Zuora-Request-Id"]) == 36
    assert "Zuora-Track-Id" not in unauthorized.headers


def test_cli_demo_and_tenants_file():
    with running_simulator(demo=True) as sim:
        tenants = {t["tenant_id"]: t for t in sim.admin.tenants()}
        assert set(tenants) == {"acme", "globex", "initech"}
        assert tenants["acme"]["workflow_count"] == 25
        assert tenants["globex"]["config"]["limits"]["requests_per_minute"] < 50
        assert len(tenants["initech"]["config"]["faults"]["failing_export_ids"]) == 1
    with running_simulator(tenants=[{"tenant_id": "solo", "workflows": 2}]) as sim:
        assert [t["tenant_id"] for t in sim.admin.tenants()] == ["solo"]
        assert sim.process.poll() is None
    assert sim.process.poll() is not None
