"""ZuoraHook against the simulator over real HTTP; API usage is counted by the server."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time

import pytest

from zuora.api.credentials import airflow_connection
from zuora.api.errors import (
    ZuoraAuthError,
    ZuoraMalformedResponseError,
    ZuoraNotFoundError,
    ZuoraNotSentError,
    ZuoraTimeoutError,
    ZuoraTransientError,
)
from zuora.api.hook import ZuoraHook, surely_not_performed

FAST_RETRIES = {"max_attempts": 4, "max_retry_wait": 2, "max_retry_time": 20}


@pytest.fixture
def connect(monkeypatch):
    """connect(tenant, **extra) -> a ZuoraHook for an Airflow connection made for the tenant."""
    made = []

    def make(tenant, secret=None, track_id=None, **extra) -> ZuoraHook:
        conn_id = f"zuora_{tenant.tenant_id.replace('-', '_')}_{len(made)}"
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                airflow_connection(
                    tenant.base_url,
                    tenant.client_id,
                    secret or tenant.client_secret,
                    **{"allow_insecure_http": True, **FAST_RETRIES, **extra},
                )
            ),
        )
        made.append(conn_id)
        return ZuoraHook(conn_id, track_id=track_id)

    return make


def api_calls(tenant, endpoint):
    return tenant.stats()["requests"].get(endpoint, 0)


@pytest.mark.parametrize("count, pages", [(0, 1), (1, 1), (50, 1), (51, 2), (137, 3)])
def test_listing_follows_every_page_and_reports_completion(sim_tenant, connect, count, pages):
    tenant = sim_tenant(workflows=count)
    hook = connect(tenant)
    listing = hook.list_workflows()
    assert listing.complete is False
    ids = [item["id"] for item in listing]
    assert sorted(ids) == sorted(tenant.workflow_ids())
    assert len(ids) == len(set(ids)) == count
    assert listing.complete is True
    assert listing.pages == pages == api_calls(tenant, "list")


def test_one_token_serves_a_listing_and_its_exports(sim_tenant, connect):
    tenant = sim_tenant(workflows=60)
    hook = connect(tenant)
    ids = [item["id"] for item in hook.list_workflows()]
    results = list(hook.export_workflows(ids))
    assert sorted(r[0] for r in results) == sorted(ids)
    assert all(export["workflow"]["id"] == wid and error is None for wid, export, error in results)
    stats = tenant.stats()
    assert stats["tokens_minted"] == 1 == hook.stats["token_mints"]
    assert stats["requests"] == {"token": 1, "list": 2, "export": 60}
    # a second hook for the same credentials in this process reuses the token
    connect(tenant).export_workflow(ids[0])
    assert tenant.stats()["tokens_minted"] == 1


def test_token_is_refreshed_before_it_expires(sim_tenant, connect):
    tenant = sim_tenant(workflows=3, token_ttl=2)
    hook = connect(tenant)
    wid = tenant.workflow_ids()[0]
    hook.export_workflow(wid)
    time.sleep(2.0)
    hook.export_workflow(wid)
    stats = tenant.stats()
    assert stats["tokens_minted"] == 2
    assert stats["by_status"].get("401", 0) == 0  # refreshed ahead of expiry, not after a 401


def test_revoked_token_is_reminted_exactly_once(sim_tenant, connect):
    tenant = sim_tenant(workflows=8)
    hook = connect(tenant, max_concurrency=4)
    ids = tenant.workflow_ids()
    hook.export_workflow(ids[0])
    tenant.revoke_tokens()
    results = list(hook.export_workflows(ids))
    assert [error for _, _, error in results] == [None] * len(ids)
    assert tenant.stats()["tokens_minted"] == 2


def test_revoked_credentials_fail_with_a_permanent_auth_error(sim_tenant, connect):
    tenant = sim_tenant(workflows=2)
    hook = connect(tenant)
    assert len(list(hook.list_workflows())) == 2
    tenant.script([{"endpoint": "export", "kind": "unauthorized", "count": 5}])
    with pytest.raises(ZuoraAuthError) as caught:
        hook.export_workflow(tenant.workflow_ids()[0])
    assert not caught.value.transient
    assert "freshly minted token" in str(caught.value)
    # the call with the cached token, then once with a new token: no loop
    assert api_calls(tenant, "export") == 2
    assert tenant.stats()["tokens_minted"] == 2


def test_bad_credentials_fail_fast_with_a_clear_message(sim_tenant, connect, caplog):
    tenant = sim_tenant(workflows=1)
    wrong = "Wr0ng/secret+value-" + "x" * 12
    hook = connect(tenant, secret=wrong)
    with caplog.at_level(logging.DEBUG):
        ok, message = hook.test_connection()
    assert not ok
    assert "refused the client credentials" in message and "connection=" in message
    assert "status=401" in message
    assert wrong not in message and wrong not in caplog.text
    assert tenant.stats()["requests"] == {"token": 1}  # no retries of a permanent error


def test_test_connection_succeeds_with_good_credentials(sim_tenant, connect):
    ok, message = connect(sim_tenant(workflows=1)).test_connection()
    assert ok, message


def test_get_conn_is_an_authenticated_session(sim_tenant, connect):
    """get_conn() is usable as it is: the token is added, and a revoked one replaced once."""
    tenant = sim_tenant(workflows=3)
    hook = connect(tenant)
    session = hook.get_conn()
    first = session.get(tenant.base_url + "/workflows", params={"page_length": 2}, timeout=10)
    assert first.status_code == 200 and len(first.json()["data"]) == 2
    tenant.revoke_tokens()
    again = session.get(tenant.base_url + "/workflows", timeout=10)
    assert again.status_code == 200 and [r.status_code for r in again.history] == [401]
    assert tenant.stats()["tokens_minted"] == 2


def test_the_connection_test_is_one_short_attempt(sim_tenant, connect):
    """The form's Test button: a few seconds at most, not a sync's retry budget."""
    tenant = sim_tenant(workflows=1)
    hook = connect(tenant, max_attempts=6, read_timeout=60)
    tenant.script([{"endpoint": "list", "kind": "status", "status": 503, "count": 5}])
    started = time.monotonic()
    ok, message = hook.test_connection()
    assert not ok and "503" in message
    assert time.monotonic() - started < 5
    assert api_calls(tenant, "list") == 1
    slow = sim_tenant(workflows=1, hang_rate=1.0, hang_seconds=30, fault_endpoints=["list"])
    started = time.monotonic()
    ok, message = connect(slow, read_timeout=60).test_connection()
    assert not ok and "timeout" in message
    assert time.monotonic() - started < 10


def test_proxy_settings_come_from_the_environment(sim_tenant, connect, monkeypatch):
    """Read once per session (not per request), but still honoured: a dead proxy fails the
    call before it reaches Zuora, and NO_PROXY for the host bypasses it."""
    tenant = sim_tenant(workflows=1)
    for name in ("no_proxy", "NO_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # discard port: nothing listens
    ok, message = connect(tenant, max_attempts=1).test_connection()
    assert not ok and "ProxyError" in message
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert tenant.stats()["requests"] == {}
    ok, message = connect(tenant).test_connection()
    assert ok, message


def test_missing_workflow_permission_is_an_auth_error(sim_tenant, connect):
    tenant = sim_tenant(workflows=1, forbidden=True)
    with pytest.raises(ZuoraAuthError, match="Workflow View Access"):
        list(connect(tenant).list_workflows())


def test_retry_after_is_honoured(sim_tenant, connect):
    tenant = sim_tenant(workflows=1)
    hook = connect(tenant)
    tenant.script([{"endpoint": "list", "kind": "rate_limit", "retry_after": 1, "count": 1}])
    started = time.monotonic()
    assert len(list(hook.list_workflows())) == 1
    assert time.monotonic() - started >= 1.0
    assert hook.stats["rate_limited"] == 1 and tenant.stats()["rate_limited"] == 1


def test_concurrency_limit_429_is_retried(sim_tenant, connect):
    tenant = sim_tenant(workflows=1, concurrency_retry_after=1)
    hook = connect(tenant)
    tenant.script([{"endpoint": "export", "kind": "concurrency_limit", "count": 1}])
    assert hook.export_workflow(tenant.workflow_ids()[0])["workflow"]
    assert api_calls(tenant, "export") == 2


def test_server_error_burst_is_recovered(sim_tenant, connect):
    tenant = sim_tenant(workflows=1)
    hook = connect(tenant)
    tenant.script([{"endpoint": "export", "kind": "status", "status": s} for s in (500, 502, 503)])
    assert hook.export_workflow(tenant.workflow_ids()[0])["workflow"]
    assert hook.stats["retries"] == 3 and hook.stats["server_errors"] == 3
    assert api_calls(tenant, "export") == 4


def test_permanent_server_error_gives_up_after_bounded_retries(sim_tenant, connect):
    tenant = sim_tenant(workflows=2)
    failing = tenant.workflow_ids()[0]
    tenant.set_faults(failing_export_ids=[failing])
    hook = connect(tenant, max_attempts=3)
    with pytest.raises(ZuoraTransientError) as caught:
        hook.export_workflow(failing)
    assert caught.value.status == 500 and caught.value.transient
    assert api_calls(tenant, "export") == 3


@pytest.mark.parametrize(
    "lost",
    [
        {"kind": "status", "status": 503},  # maybe done: Zuora does not say
        {"kind": "status", "status": 504, "performed": True},
        {"kind": "reset", "phase": "body"},  # done, the answer cut short
        {"kind": "reset", "phase": "connect"},  # done, the connection reset before the answer
        {"kind": "hang", "seconds": 2},  # done, after the read timeout
    ],
    ids=["503", "504-after-the-import", "reset-body", "reset-connect", "read-timeout"],
)
def test_a_post_whose_answer_may_be_lost_is_never_sent_again(sim_tenant, connect, lost):
    """A timeout, a reset or a 5xx to a POST may come after Zuora performed it: never sent
    again, not even under an Idempotency-Key (how long Zuora keeps keys is unknown)."""
    tenant = sim_tenant(workflows=1, remember_idempotency_keys=False)
    hook = connect(tenant, read_timeout=0.5)
    export = hook.export_workflow(tenant.workflow_ids()[0])
    tenant.script([{"endpoint": "import", **lost}])
    with pytest.raises(ZuoraTransientError) as caught:
        hook.import_workflow(export, activate=False, idempotency_key="k-1")
    assert not surely_not_performed(caught.value)
    assert hook.stats["retries"] == 0
    performed = 0 if lost == {"kind": "status", "status": 503} else 1
    deadline = time.monotonic() + 5  # the server may finish after the client gave up
    while (api_calls(tenant, "import"), len(tenant.imports())) < (
        1,
        performed,
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api_calls(tenant, "import") == 1 and len(tenant.imports()) == performed


def test_a_post_is_retried_when_zuora_surely_did_not_perform_it(sim_tenant, connect):
    """A 429, a token call that failed before the POST, or a connection never opened: nothing
    was done, so the POST is sent again, with or without an Idempotency-Key."""
    tenant = sim_tenant(workflows=1)
    export = tenant.admin.expected_export(tenant.tenant_id, tenant.workflow_ids()[0])
    hook = connect(tenant)
    params = {"activate": "false"}
    tenant.script([{"endpoint": "token", "kind": "status", "status": 503}])  # the first mint fails
    hook._request_json("POST", "/workflows/import", params=params, body=export)
    assert api_calls(tenant, "token") == 2 and api_calls(tenant, "import") == 1

    tenant.script([{"endpoint": "import", "kind": "rate_limit", "retry_after": 0}])
    hook._request_json("POST", "/workflows/import", params=params, body=export)
    assert api_calls(tenant, "import") == 3 and len(tenant.imports()) == 2

    with socket.socket() as closed:  # a port nothing listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    hook._credentials = dataclasses.replace(hook.credentials, base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ZuoraNotSentError) as caught:  # the token is cached: only the POST fails
        hook._request_json("POST", "/workflows/import", params=params, body=export)
    assert surely_not_performed(caught.value) and caught.value.transient
    assert hook.stats["retries"] == 2 + FAST_RETRIES["max_attempts"] - 1


def test_connection_resets_are_retried(sim_tenant, connect):
    tenant = sim_tenant(workflows=1)
    hook = connect(tenant)
    tenant.script(
        [
            {"endpoint": "export", "kind": "reset", "phase": "connect"},
            {"endpoint": "export", "kind": "reset", "phase": "body"},
        ]
    )
    assert hook.export_workflow(tenant.workflow_ids()[0])["workflow"]
    assert hook.stats["connection_errors"] == 2


def test_hang_gives_a_timeout_error(sim_tenant, connect):
    tenant = sim_tenant(workflows=1, hang_rate=1.0, hang_seconds=3, fault_endpoints=["export"])
    hook = connect(tenant, read_timeout=0.5, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(ZuoraTimeoutError) as caught:
        hook.export_workflow(tenant.workflow_ids()[0])
    assert caught.value.transient
    assert time.monotonic() - started < 3
    assert hook.stats["timeouts"] == 2


def test_malformed_json_gives_a_typed_error(sim_tenant, connect):
    tenant = sim_tenant(workflows=1)
    hook = connect(tenant)
    tenant.script([{"endpoint": "list", "kind": "malformed"}])
    with pytest.raises(ZuoraMalformedResponseError, match="not valid JSON"):
        list(hook.list_workflows())


def test_unknown_workflow_export_is_not_found(sim_tenant, connect):
    tenant = sim_tenant(workflows=1)
    with pytest.raises(ZuoraNotFoundError) as caught:
        connect(tenant).export_workflow(999_999)
    error = caught.value
    assert error.status == 404 and len(error.request_id) == 36
    assert "999999" in str(error) and "/workflows/999999/export" in str(error)


def test_failed_export_never_loses_the_others(sim_tenant, connect):
    tenant = sim_tenant(workflows=12)
    ids = tenant.workflow_ids()
    tenant.set_faults(failing_export_ids=[ids[3]])
    results = {
        wid: (export, error)
        for wid, export, error in connect(tenant, max_attempts=2).export_workflows(ids + [999_999])
    }
    assert set(results) == set(ids) | {999_999}
    failed = {wid for wid, (_, error) in results.items() if error is not None}
    assert failed == {ids[3], 999_999}
    assert isinstance(results[999_999][1], ZuoraNotFoundError)


def test_exports_never_exceed_the_concurrency_cap(sim_tenant, connect):
    tenant = sim_tenant(workflows=24, latency_ms=150, fault_endpoints=["export"])
    hook = connect(tenant, max_concurrency=3)
    assert all(error is None for _, _, error in hook.export_workflows(tenant.workflow_ids()))
    assert tenant.stats()["max_in_flight"] == 3


def test_hook_slows_down_before_the_rate_limit(sim_tenant, connect):
    # 35 pages against a budget of 30 calls per 3 s: only pacing avoids a 429
    tenant = sim_tenant(workflows=70, requests_per_minute=30, rate_window_seconds=3)
    hook = connect(tenant, page_length=2, rate_limit_low_water=10)
    assert len(list(hook.list_workflows())) == 70
    assert hook.stats["paced"] > 0
    assert tenant.stats()["rate_limited"] == 0


def test_max_pages_stops_pagination_that_never_ends(sim_tenant, connect):
    tenant = sim_tenant(workflows=137)
    listing = connect(tenant, max_pages=2).list_workflows()
    with pytest.raises(ZuoraMalformedResponseError, match="pagination does not end"):
        list(listing)
    assert listing.complete is False


@pytest.fixture
def broken_zuora(stub_zuora, monkeypatch):
    """broken_zuora({path: (status, body)}) -> a hook for a stub server answering those."""

    def start(pages):
        monkeypatch.setenv(
            "AIRFLOW_CONN_ZUORA_BROKEN",
            json.dumps(
                airflow_connection(
                    stub_zuora(pages), "b64e42ba-7e1a-4bc6-9146-5e1b420306b5", "s", allow_insecure_http=True
                )
            ),
        )
        return ZuoraHook("zuora_broken")

    return start


def test_pagination_that_repeats_a_page_is_refused(broken_zuora):
    hook = broken_zuora(
        {
            "/workflows": (
                200,
                json.dumps(
                    {
                        "data": [{"id": 1}, {"id": 2}],
                        "pagination": {"page": 1, "page_length": 2, "next_page": "http://x/workflows?page=1"},
                    }
                ).encode(),
            )
        }
    )
    listing = hook.list_workflows()
    with pytest.raises(ZuoraMalformedResponseError, match="does not end"):
        list(listing)
    assert not listing.complete


def test_absurdly_nested_export_is_a_malformed_response(broken_zuora):
    deep = '{"workflow": ' + "[" * 100_000 + "]" * 100_000 + "}"
    hook = broken_zuora({"/workflows/1/export": (200, deep.encode())})
    with pytest.raises(ZuoraMalformedResponseError, match="nested too deeply"):
        hook.export_workflow(1)


def test_no_secret_or_token_in_logs_or_errors(sim_tenant, connect, caplog, capsys):
    tenant = sim_tenant(workflows=3)
    hook = connect(tenant, track_id="run:2026-11-29;acme")
    errors = []
    with caplog.at_level(logging.DEBUG):
        ids = [item["id"] for item in hook.list_workflows()]
        tenant.script(
            [
                {"endpoint": "export", "kind": "status", "status": 503},
                {"endpoint": "export", "kind": "unauthorized", "count": 2},
            ]
        )
        errors += [str(e) for _, _, e in hook.export_workflows(ids + [424242]) if e]
        tenant.revoke_tokens()
        hook.export_workflow(ids[0])
        errors.append(connect(tenant, secret=tenant.client_secret[:-1] + "Q").test_connection()[1])
    tokens = {hook._token_cache()._token.value}
    output = caplog.text + "".join(capsys.readouterr()) + "\n".join(errors)
    assert errors and "Zuora server error" in output  # the retry warning was logged
    for secret in {tenant.client_secret, *tokens}:
        assert secret not in output
    assert hook.get_conn().headers["Zuora-Track-Id"] == "run-2026-11-29-acme"
