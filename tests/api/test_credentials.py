"""Connection validation: every bad connection fails before any call, naming the
connection and saying what to fix."""

import json
import logging

import pytest
from airflow.sdk import Connection

from zuora.api.credentials import credentials_from_connection
from zuora.api.errors import ZuoraConfigError

CLIENT_ID = "b64e42ba-7e1a-4bc6-9146-5e1b420306b5"
SECRET = "dOFENLWU193EEoEsWjPZrc/jLKVr5+OrN1HC9Kqg"


def connection(host="https://rest.zuora.com", login=CLIENT_ID, password=SECRET, extra=None, port=None):
    return Connection(
        conn_id="zuora_acme",
        conn_type="zuora",
        host=host,
        login=login,
        password=password,
        port=port,
        extra=json.dumps(extra) if extra else None,
    )


@pytest.mark.parametrize(
    "host, environment, region",
    [
        ("https://rest.zuora.com", "production", "US Cloud 2"),
        ("rest.na.zuora.com", "production", "US Cloud 1"),
        ("https://rest.sandbox.na.zuora.com/", "sandbox", "US Cloud 1 API Sandbox"),
        ("https://rest.apisandbox.zuora.com", "sandbox", "US Cloud 2 API Sandbox"),
        ("https://rest.test.zuora.com", "sandbox", "US Developer & Central Sandbox"),
        ("https://REST.EU.ZUORA.COM", "production", "EU"),
        ("https://rest.sandbox.eu.zuora.com", "sandbox", "EU API Sandbox"),
        ("https://rest.test.eu.zuora.com", "sandbox", "EU Developer & Central Sandbox"),
        ("https://rest.ap.zuora.com", "production", "APAC"),
        ("https://rest.test.ap.zuora.com", "sandbox", "APAC Developer & Central Sandbox"),
    ],
)
def test_documented_hosts_are_classified(host, environment, region):
    credentials = credentials_from_connection(connection(host=host))
    assert (credentials.environment, credentials.region) == (environment, region)
    assert credentials.base_url == "https://" + host.lower().removeprefix("https://").strip("/")


def test_unlisted_zuora_host_is_accepted_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        credentials = credentials_from_connection(connection(host="https://rest.sandbox.ca.zuora.com"))
    assert credentials.environment == "sandbox"
    assert "not one of Zuora's documented REST hosts" in caplog.text


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"host": None}, "has no host"),
        ({"host": "https://example.com"}, "is not a Zuora REST host"),
        ({"host": "http://rest.zuora.com"}, "must use https"),
        ({"host": "http://127.0.0.1:8080"}, "must use https"),
        ({"host": "http://10.0.0.5:8080", "extra": {"allow_insecure_http": True}}, "must use https"),
        ({"host": "https://rest.zuora.com/v1"}, "without a path"),
        ({"host": "ftp://rest.zuora.com"}, "unsupported URL scheme"),
        ({"login": None}, "no client id"),
        ({"login": "not-a-uuid"}, "client id in 'login' is malformed"),
        ({"login": CLIENT_ID[:-1] + "g"}, "is malformed"),
        ({"password": None}, "no client secret"),
        ({"password": SECRET + "\n"}, "whitespace"),
        ({"extra": {"page_length": 51}}, "between 1 and 50"),
        ({"extra": {"max_concurrency": "many"}}, "must be int"),
        ({"extra": {"pagelength": 20}}, "unknown option"),
        ({"extra": {"environment": "prod"}}, "'production' or 'sandbox'"),
    ],
)
def test_bad_connections_fail_with_what_to_fix(changes, fragment):
    with pytest.raises(ZuoraConfigError) as caught:
        credentials_from_connection(connection(**changes))
    message = str(caught.value)
    assert fragment in message
    assert "connection=zuora_acme" in message
    assert SECRET not in message


def test_custom_host_needs_explicit_opt_in():
    credentials = credentials_from_connection(
        connection(
            host="https://zuora-proxy.internal.example",
            extra={"allow_custom_host": True, "environment": "production"},
        )
    )
    assert (credentials.environment, credentials.region) == ("production", "custom host")


def test_loopback_http_is_allowed_only_with_the_flag():
    credentials = credentials_from_connection(
        connection(
            host="http://127.0.0.1", port=8123, extra={"allow_insecure_http": True, "page_length": "20"}
        )
    )
    assert credentials.base_url == "http://127.0.0.1:8123"
    assert credentials.options.page_length == 20
    assert credentials.environment == "unknown"


def test_secret_is_not_in_repr_and_fingerprint_tracks_every_part():
    base = credentials_from_connection(connection())
    assert SECRET not in repr(base)
    rotated = credentials_from_connection(connection(password=SECRET + "x"))
    moved = credentials_from_connection(connection(host="https://rest.eu.zuora.com"))
    assert len({base.fingerprint, rotated.fingerprint, moved.fingerprint}) == 3
    assert SECRET not in base.fingerprint
