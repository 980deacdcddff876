"""Every setting is defined once (zuora.settings), and the Configuration table of
docs/operating.md says the same names and defaults."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import pytest

from zuora import settings

OPERATING = Path(__file__).resolve().parents[1] / "docs" / "operating.md"  # its Configuration table


def configuration_rows() -> list[str]:
    text = OPERATING.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    return [line for line in section.splitlines() if line.startswith("| ")]


def row_naming(name: str) -> str:
    rows = [row for row in configuration_rows() if f"`{name}`" in row or f"`${name}`" in row]
    assert len(rows) == 1, f"docs/operating.md's Configuration table should have one row for {name}"
    return rows[0]


@pytest.mark.parametrize("name", sorted(settings.ENVIRONMENT))
def test_environment_variables_and_defaults_match_the_readme(name):
    default = row_naming(name).rsplit("|", 2)[-2]
    assert f"`{settings.ENVIRONMENT[name]}`" in default or default.strip() == settings.ENVIRONMENT[name], (
        name,
        default,
    )


def test_connections_variables_and_pool_are_in_the_readme():
    for name in (
        settings.WAREHOUSE_CONN_ID,
        settings.ALERT_CONN_ID,
        settings.ENCRYPTION_KEY_VARIABLE,
        settings.THRESHOLDS_VARIABLE,
        settings.RETENTION_VARIABLE,
    ):
        row_naming(name)
    assert f"{settings.POOL_SLOTS} slots" in row_naming(settings.POOL)


def test_threshold_and_retention_defaults_match_the_readme():
    thresholds = row_naming(settings.THRESHOLDS_VARIABLE).rsplit("|", 2)[-2]
    for field in dataclasses.fields(settings.Thresholds):
        value = field.default
        shown = f"`{value}`" if isinstance(value, str) else f"{value:g}"
        assert re.search(rf"`{field.name}` {re.escape(shown)}(?![\w.])", thresholds), field.name
    retention = row_naming(settings.RETENTION_VARIABLE).rsplit("|", 2)[-2]
    for field in dataclasses.fields(settings.Retention):
        days = "null" if field.default is None else f"{field.default / timedelta(days=1):g}"
        assert f"`{field.name}_days` {days}" in retention, field.name


def test_bad_environment_values_say_what_to_set(monkeypatch):
    monkeypatch.setenv("ZUORA_SYNC_RETRY_DELAYS", "60,soon")
    with pytest.raises(ValueError, match=r"\$ZUORA_SYNC_RETRY_DELAYS must be seconds"):
        settings.retry_delays()
    monkeypatch.setenv("ZUORA_SYNC_RETRY_DELAYS", "5, 10")
    assert settings.retry_delays() == (timedelta(seconds=5), timedelta(seconds=10))
    monkeypatch.setenv("ZUORA_SYNC_MAX_CONCURRENT_EXPORTS", "0")
    with pytest.raises(ValueError, match=r"\$ZUORA_SYNC_MAX_CONCURRENT_EXPORTS must be a whole number >= 1"):
        settings.max_concurrent_exports()
    for text in ("-1", "soon", "nan", "inf"):
        monkeypatch.setenv("ZUORA_SYNC_DEADLINE_MINUTES", text)
        with pytest.raises(ValueError, match=r"\$ZUORA_SYNC_DEADLINE_MINUTES must be a number of minutes"):
            settings.deadline_minutes()
    monkeypatch.setenv("ZUORA_SYNC_DEADLINE_MINUTES", "0.5")
    assert settings.deadline_minutes() == 0.5
