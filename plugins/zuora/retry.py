"""Airflow-level retries: minutes apart, and only for errors that a later try can fix.

Inside the hook, tenacity retries single HTTP calls for seconds. Around a task, Airflow
retries for minutes (60 s, 300 s, 900 s by default, ``$ZUORA_SYNC_RETRY_DELAYS``), through Airflow 3.3's ``retry_policy``, and only
for transient errors: Zuora rate limits, server or network trouble, a lost database
connection, a task timeout. Bad credentials, missing permission and bad data fail at once.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import NamedTuple

from airflow.sdk import RetryDecision, RetryPolicy
from airflow.sdk.exceptions import AirflowTaskTimeout

from zuora import settings
from zuora.api.errors import ZuoraError, ZuoraRateLimitError


class CustomerFailure(NamedTuple):
    """One customer's failure in a batch task: the stage, the error's type and its text."""

    stage: str
    error_type: str
    message: str


class CustomersToRetry(Exception):
    """Customers of a batch task failed transiently (``failures``: customer id ->
    ``CustomerFailure``): the task's retry syncs them, and only the batch's customers whose sync
    in the run is still open (``zuora.batches``)."""

    def __init__(self, message: str, failures: dict[str, CustomerFailure]):
        super().__init__(message)
        self.failures = failures

    def __reduce__(self):  # keep the failures when the error crosses a process boundary
        return (type(self), (str(self), self.failures))


def is_transient(error: BaseException) -> bool:
    """True when the same task may succeed if simply run again later."""
    if isinstance(error, CustomersToRetry):
        return True
    if isinstance(error, ZuoraError):
        return error.transient
    psycopg = sys.modules.get("psycopg")  # not imported: not a psycopg error (and parsing stays cheap)
    if psycopg and isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
        return True  # connection refused, lost or reset: the database may be back soon
    return isinstance(error, (AirflowTaskTimeout, TimeoutError, ConnectionError))


class TransientErrorRetryPolicy(RetryPolicy):
    """Retry transient errors after 60 s, 300 s, 900 s; fail anything else at once."""

    def evaluate(self, exception, try_number, max_tries, context=None) -> RetryDecision:
        name = type(exception).__name__
        if not is_transient(exception):
            return RetryDecision.fail(
                reason=f"{name} is not transient: fix the cause, then clear the task to rerun it"
            )
        delays = settings.retry_delays()
        delay = delays[min(max(try_number, 1), len(delays)) - 1]
        if isinstance(exception, ZuoraRateLimitError) and exception.retry_after:
            delay = max(delay, timedelta(seconds=exception.retry_after))
        return RetryDecision.retry(delay=delay, reason=f"transient {name}; retrying in {delay}")
