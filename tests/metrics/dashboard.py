"""The shipped monitoring files as the tests read them: the metric names the Grafana
dashboard's PromQL queries, the Prometheus name statsd-exporter gives an emitted StatsD
series (applying monitoring/statsd-exporter/mapping.yml as the exporter does), and the series the
"Metrics" table of docs/operating.md names."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "zuora-workflow-sync.json"
MAPPING = MONITORING / "statsd-exporter" / "mapping.yml"
STATSD_PREFIX = "airflow."
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
TYPES = {"counter": "counter", "gauge": "gauge", "timer": "observer"}


def panels(dashboard: dict | None = None) -> list[dict]:
    dashboard = dashboard or json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found += panel.get("panels", [])  # collapsed rows hold theirs
    return found


def prometheus_queries() -> list[str]:
    return [
        target["expr"]
        for panel in panels()
        for target in panel.get("targets", [])
        if target.get("datasource", panel.get("datasource", {})).get("type") == "prometheus"
    ]


def queried_metrics() -> set[str]:
    """Metric names (histogram suffixes removed) in the dashboard's PromQL."""
    names = set()
    for expr in prometheus_queries():
        expr = re.sub(r'"[^"]*"', '""', expr)  # label values are not metric names
        for name in re.findall(r"\b((?:zuora_sync|airflow)_[a-z0-9_]+)\b", expr):
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and name.endswith("_seconds" + suffix):
                    name = name.removesuffix(suffix)
            names.add(name)
    return names


@functools.cache
def _mappings() -> list[tuple[str | None, re.Pattern, dict]]:
    """(metric type or None for any, the match as a regex, the mapping), in file order."""
    return [
        (
            mapping.get("match_metric_type"),
            re.compile("^" + re.escape(mapping["match"]).replace(r"\*", "([^.]*)") + "$"),
            mapping,
        )
        for mapping in yaml.safe_load(MAPPING.read_text())["mappings"]
    ]


@functools.cache  # a cluster's samples name a few hundred series many thousand times
def mapped(name: str, kind: str) -> tuple[str, dict]:
    """What statsd-exporter calls the StatsD series ``name`` (without Airflow's prefix), and
    the mapping that names it (``{}`` when none does)."""
    full = STATSD_PREFIX + name
    for metric_type, pattern, mapping in _mappings():
        if metric_type not in (None, TYPES[kind]):
            continue
        if match := pattern.match(full):
            return re.sub(r"\$\{(\d+)\}", lambda m: match.group(int(m.group(1))), mapping["name"]), mapping
    return re.sub(r"[^a-zA-Z0-9_]", "_", full), {}  # the exporter's default


def prometheus_name(name: str, kind: str) -> str:
    """What statsd-exporter calls the StatsD series ``name`` (without Airflow's prefix)."""
    return mapped(name, kind)[0]


def histogram_buckets() -> list[float]:
    return yaml.safe_load(MAPPING.read_text())["defaults"]["histogram_options"]["buckets"]


def readme_series() -> set[str]:
    """The names (after ``zuora_sync.``) in the "Metrics" table of docs/operating.md."""
    text = (ROOT / "docs" / "operating.md").read_text()
    return set(re.findall(r"^\| `zuora_sync\.([a-z0-9_.]+)`", text, re.MULTILINE))
