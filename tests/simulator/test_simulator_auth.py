"""The simulator's /oauth/token endpoint and bearer authentication, over real HTTP."""

from __future__ import annotations

import re
import time

import requests

HEX32 = re.compile(r"^[0-9a-f]{32}$")
WWW_AUTH = "Basic realm=Zuora API, ZSession realm=Zuora API, Bearer realm=Zuora API"


def post_token(base_url, client_id, client_secret, grant_type="client_credentials", **kwargs):
    form = {"client_id": client_id, "client_secret": client_secret}
    if grant_type is not None:
        form["grant_type"] = grant_type
    return requests.post(f"{base_url}/oauth/token", data=form, timeout=10, **kwargs)


def assert_unauthorized(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == WWW_AUTH
    assert response.json() == {
        "success": False,
        "reasons": [{"code": 90000011, "message": "this resource is protected, please sign in first"}],
    }


def test_token_happy_path_and_shapes(sim_tenant):
    t = sim_tenant()
    assert len(t.client_id) == 36
    assert len(t.client_secret) <= 42 and "/" in t.client_secret and "+" in t.client_secret
    r = post_token(t.base_url, t.client_id, t.client_secret, headers={"Zuora-Track-Id": "trk-1"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "jti"}
    assert HEX32.match(body["access_token"]) and HEX32.match(body["jti"])
    assert body["token_type"] == "bearer" and body["expires_in"] == 3599
    assert "tenant." in body["scope"]
    assert len(r.headers["Zuora-Request-Id"]) == 36
    assert r.headers["Zuora-Track-Id"] == "trk-1"
    assert r.headers["X-RateLimit-Limit-minute"] == "100"
    assert r.headers["X-RateLimit-Remaining-minute"] == "99"
    # the scoped base URL takes the same credentials
    assert post_token(t.scoped_base_url, t.client_id, t.client_secret).status_code == 200
    assert t.stats()["tokens_minted"] == 2


def test_token_bad_credentials_and_grant(sim_tenant):
    t = sim_tenant()
    bad = {"error": "invalid_client", "error_description": "Bad client credentials"}
    r = post_token(t.base_url, t.client_id, t.client_secret + "x")
    assert r.status_code == 401 and r.json() == bad
    assert post_token(t.base_url, "0" * 36, t.client_secret).json() == bad
    other = sim_tenant()  # right credentials, wrong tenant base URL
    assert post_token(t.scoped_base_url, other.client_id, other.client_secret).status_code == 401

    r = post_token(t.base_url, t.client_id, t.client_secret, grant_type="password")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    assert post_token(t.base_url, t.client_id, t.client_secret, grant_type=None).status_code == 400
    r = post_token(t.base_url, t.client_id, t.client_secret, headers={"Authorization": "Bearer x"})
    assert r.status_code == 400
    assert t.stats()["by_endpoint_status"]["token"] == {"401": 2, "400": 3}  # incl. scoped call
    assert t.stats()["tokens_minted"] == 0


def test_token_per_ip_limit(sim_tenant):
    t = sim_tenant(token_requests_per_minute=3)
    remaining = [
        post_token(t.base_url, t.client_id, t.client_secret).headers["X-RateLimit-Remaining-minute"]
        for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]
    r = post_token(t.base_url, t.client_id, t.client_secret)
    assert r.status_code == 429
    assert r.headers["X-RateLimit-Limit-minute"] == "3"
    assert r.headers["X-RateLimit-Remaining-minute"] == "0"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert t.stats()["rate_limited"] == 1


def test_401_variants(sim_tenant):
    t = sim_tenant(workflows=2, token_ttl=1)
    other = sim_tenant(workflows=2)
    url = f"{t.scoped_base_url}/workflows"
    assert_unauthorized(requests.get(url, timeout=10))  # missing
    assert_unauthorized(requests.get(url, headers={"Authorization": "Bearer " + "0" * 32}, timeout=10))
    assert_unauthorized(requests.get(url, headers={"Authorization": "Basic dXNlcjpwdw=="}, timeout=10))
    assert_unauthorized(requests.get(url, headers=other.auth_headers(), timeout=10))  # other tenant

    token = post_token(t.base_url, t.client_id, t.client_secret).json()
    assert token["expires_in"] == 1
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    time.sleep(1.2)
    assert_unauthorized(requests.get(url, headers=headers, timeout=10))  # expired

    t.update(token_ttl=3599)
    headers = t.auth_headers()
    assert requests.get(f"{t.base_url}/workflows", headers=headers, timeout=10).status_code == 200
    assert t.revoke_tokens() >= 1
    assert_unauthorized(requests.get(f"{t.base_url}/workflows", headers=headers, timeout=10))  # revoked
    assert t.stats()["by_endpoint_status"]["list"] == {"401": 6, "200": 2}


def test_forbidden_tenant(sim_tenant):
    t = sim_tenant(workflows=1, forbidden=True)
    r = requests.get(f"{t.base_url}/workflows", headers=t.auth_headers(), timeout=10)
    assert r.status_code == 403
    assert r.json()["errors"][0]["status"] == 403
