"""What ``zuora.metrics`` assumes of Airflow's Stats, checked against the installed Airflow so
that an upgrade that changes it fails here, loudly, instead of dropping every series:

- metrics are on exactly when Airflow makes a real backend (its own choice:
  ``stats_utils.get_stats_factory``) for the ``[metrics]`` switches ``metrics._enabled`` reads
  through the public ``airflow.sdk.conf``;
- the one internal the module reads (``_airflow_set_stats_up``: has a runner given Stats its
  backend?) tells a process no runner set up from one a runner did;
- the public ``airflow.sdk.observability.stats`` has what the module calls, with tags."""

from __future__ import annotations

import inspect

import pytest

from zuora import metrics

SETTINGS = {
    "off": {},
    "statsd": {"statsd_on": True, "statsd_host": "127.0.0.1"},
    "datadog": {"statsd_datadog_enabled": True, "statsd_host": "127.0.0.1"},
    "otel": {"otel_on": True},
    "statsd off": {"statsd_on": False, "otel_on": False},
}


@pytest.mark.parametrize("backend", list(SETTINGS))
def test_metrics_are_on_exactly_when_airflow_makes_a_backend(backend, monkeypatch):
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.observability.metrics import stats_utils

    for switch in metrics.BACKEND_SWITCHES:
        monkeypatch.delenv(f"AIRFLOW__METRICS__{switch.upper()}", raising=False)
    for key, value in SETTINGS[backend].items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key.upper()}", str(value))
    airflow_makes_one = stats_utils.get_stats_factory() is not NoStatsLogger
    assert metrics._enabled() is airflow_makes_one
    assert airflow_makes_one is (backend not in ("off", "statsd off"))


def test_every_backend_switch_airflow_reads_is_one_the_module_reads():
    """A backend Airflow adds (a new ``conf.getboolean("metrics", ...)`` switch in its
    factory) would have its metrics dropped by ``metrics._enabled``: fail here instead."""
    import re

    from airflow.sdk.observability.metrics import stats_utils

    source = inspect.getsource(stats_utils.get_stats_factory)
    assert set(re.findall(r'getboolean\("metrics", "(\w+)"\)', source)) == set(metrics.BACKEND_SWITCHES)


def test_the_adapter_tells_whether_a_runner_set_stats_up(airflow_metrics):
    from airflow.sdk.observability import stats

    stats.initialize(factory=None, export_legacy_names=True)  # a process no runner set up
    assert metrics._airflow_set_stats_up() is False
    airflow_metrics(statsd_on=True, statsd_host="127.0.0.1")  # as task_runner.main() does
    assert metrics._airflow_set_stats_up() is True
    assert not metrics._unknown_warned  # it could tell both times


def test_the_public_stats_module_has_what_the_module_calls():
    from airflow.sdk.observability import stats

    for name in ("incr", "gauge", "timing", "initialize"):
        assert "tags" in inspect.signature(getattr(stats, name)).parameters or name == "initialize"
    assert set(inspect.signature(stats.initialize).parameters) == {"factory", "export_legacy_names"}


def test_if_airflow_moves_its_internals_a_task_processs_series_still_go_out(
    statsd, airflow_metrics, monkeypatch, caplog
):
    """An upgrade that moves the internal the adapter reads costs a warning, not the series:
    a task process's runner set Stats up, and the module emits through the public module."""
    import sys

    import airflow.sdk._shared.observability.metrics as shared_metrics

    airflow_metrics(statsd_on=True, statsd_host="127.0.0.1", statsd_port=statsd.port)
    monkeypatch.delattr(shared_metrics, "stats")
    monkeypatch.setitem(sys.modules, "airflow.sdk._shared.observability.metrics.stats", None)
    monkeypatch.setattr(metrics, "_unknown_warned", False, raising=False)
    metrics.alert_raised("probe")
    assert statsd.samples() and statsd.lines == ["airflow.zuora_sync.alerts.raised:1|c"]
    assert "cannot tell whether Airflow's Stats is set up" in caplog.text
