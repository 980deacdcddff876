"""The usage tests use the reliability suite's ``env`` fixture (a migrated warehouse, customers
whose connections point at simulator tenants) and a clock they move: ``clock.at(day, hour)``
sets the UTC time ``zuora.usage`` reads, so a test can be "the next day" without waiting for it.
The simulator keeps the real clock: days after its today are not in its answers.

The alert tests add ``webhook``, a real HTTP alert channel named by the ``zuora_alerts``
connection, and the metrics suite's StatsD receiver (``statsd``, ``airflow_metrics``)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.metrics.conftest import airflow_metrics, statsd
from tests.metrics.receivers import AlertWebhook
from tests.reliability.conftest import env
from zuora import usage

__all__ = ["env", "clock", "webhook", "statsd", "airflow_metrics"]


class Clock:
    def __init__(self, monkeypatch):
        now = datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        if (midnight - now).total_seconds() < 120:  # the real today must not end during a test
            time.sleep((midnight - now).total_seconds() + 0.5)
        self.today: date = datetime.now(UTC).date()  # the simulator's today, as the test starts
        self.now = datetime.now(UTC)
        monkeypatch.setattr(usage, "utcnow", lambda: self.now)

    def at(self, day: date, hour: int = 10) -> datetime:
        self.now = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def webhook(monkeypatch) -> AlertWebhook:
    receiver = AlertWebhook()
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS", receiver.connection())
    yield receiver
    receiver.close()
