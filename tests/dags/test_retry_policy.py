"""Airflow retries only what a later try can fix, 60 s / 300 s / 900 s apart."""

from datetime import timedelta

import psycopg
import pytest
from airflow.sdk import RetryAction

from zuora.api.errors import (
    ZuoraAuthError,
    ZuoraConfigError,
    ZuoraMalformedResponseError,
    ZuoraNotFoundError,
    ZuoraRateLimitError,
    ZuoraTimeoutError,
    ZuoraTransientError,
)
from zuora.retry import CustomersToRetry, TransientErrorRetryPolicy
from zuora.sync import CustomersFailed

POLICY = TransientErrorRetryPolicy()


@pytest.mark.parametrize(
    "error",
    [
        ZuoraTransientError("503"),
        ZuoraTimeoutError("hang"),
        ZuoraRateLimitError("429"),
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.InterfaceError("connection already closed"),
        CustomersToRetry("1 of 3 customers of batch a … c (3) failed transiently", {}),
    ],
)
def test_transient_errors_are_retried_on_the_schedule(error):
    delays = [POLICY.evaluate(error, try_number, 4).retry_delay for try_number in (1, 2, 3)]
    assert delays == [timedelta(seconds=60), timedelta(seconds=300), timedelta(seconds=900)]
    assert POLICY.evaluate(error, 1, 4).action is RetryAction.RETRY


@pytest.mark.parametrize(
    "error",
    [
        ZuoraAuthError("bad credentials"),
        ZuoraConfigError("no host"),
        ZuoraNotFoundError("404"),
        ZuoraMalformedResponseError("not JSON"),
        ValueError("bad data"),
        KeyError("id"),
        psycopg.errors.UniqueViolation("duplicate key"),
        CustomersFailed("1 of 3 customers of batch a … c (3) failed for good: b"),
    ],
)
def test_permanent_errors_fail_at_once(error):
    decision = POLICY.evaluate(error, 1, 4)
    assert decision.action is RetryAction.FAIL
    assert type(error).__name__ in decision.reason


def test_a_long_retry_after_stretches_the_delay():
    error = ZuoraRateLimitError("429", retry_after=600)
    assert POLICY.evaluate(error, 1, 4).retry_delay == timedelta(seconds=600)


def test_the_delays_come_from_the_setting(monkeypatch):
    monkeypatch.setenv("ZUORA_SYNC_RETRY_DELAYS", "5,10")
    delays = [POLICY.evaluate(ZuoraTransientError("503"), n, 3).retry_delay for n in (1, 2, 3)]
    assert delays == [timedelta(seconds=5), timedelta(seconds=10), timedelta(seconds=10)]
