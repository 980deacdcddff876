"""Every setting is defined once (zuora.settings), and the Configuration table of
docs/operating.md says the same names and defaults."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
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


def test_auto_keeps_a_group_per_customer_for_a_few_and_batches_the_rest_one_per_export_slot(monkeypatch):
    """$ZUORA_SYNC_CUSTOMERS_PER_TASK=auto (the default): None = one group per customer."""
    monkeypatch.delenv("ZUORA_SYNC_CUSTOMERS_PER_TASK", raising=False)
    assert settings.customers_per_task() is None
    shapes = {n: settings.customers_per_task_for(n) for n in (0, 1, 4, 5, 8, 9, 50, 400, 401, 10_000)}
    # 4 export slots: up to 4 customers a group each (a batch would hold one), then 4 batches
    assert shapes == {0: None, 1: None, 4: None, 5: 2, 8: 2, 9: 3, 50: 13, 400: 100, 401: 100, 10_000: 100}
    assert settings.largest_batch() == settings.AUTO_BATCH_AT_MOST == 100
    assert settings.batch_timeout() == timedelta(hours=1, minutes=200)

    monkeypatch.setenv("ZUORA_SYNC_MAX_CONCURRENT_EXPORTS", "1")
    assert [settings.customers_per_task_for(n) for n in (1, 2, 3)] == [None, 2, 3]
    monkeypatch.setenv("ZUORA_SYNC_MAX_CONCURRENT_EXPORTS", "64")  # groups stop at 18 customers
    assert [settings.customers_per_task_for(n) for n in (18, 19, 64, 65, 130)] == [None, 1, 1, 2, 3]


@pytest.mark.parametrize(
    ("minutes", "largest"),
    [("30", 100), ("0", 100), ("1", 16), ("0.25", 4), ("0.05", 1)],  # 0: no deadline
)
def test_autos_batches_fit_half_the_run_deadline_at_a_daily_customers_pace(monkeypatch, minutes, largest):
    monkeypatch.setenv("ZUORA_SYNC_DEADLINE_MINUTES", minutes)
    assert settings.largest_batch() == largest
    assert settings.customers_per_task_for(1_000) == largest
    assert settings.batch_timeout() == timedelta(hours=1) + largest * timedelta(minutes=2)


def test_a_number_forces_the_shape_whatever_the_run(monkeypatch):
    monkeypatch.setenv("ZUORA_SYNC_CUSTOMERS_PER_TASK", "1")
    assert {settings.customers_per_task_for(n) for n in (1, 5, 50, 5_000)} == {None}
    assert settings.largest_batch() == 1
    monkeypatch.setenv("ZUORA_SYNC_CUSTOMERS_PER_TASK", "25")
    assert {settings.customers_per_task_for(n) for n in (1, 5, 50, 5_000)} == {25}
    assert settings.batch_timeout() == timedelta(hours=1, minutes=50)
    monkeypatch.setenv("ZUORA_SYNC_CUSTOMERS_PER_TASK", " AUTO ")
    assert settings.customers_per_task() is None
    for text in ("0", "-3", "many", "2.5"):
        monkeypatch.setenv("ZUORA_SYNC_CUSTOMERS_PER_TASK", text)
        with pytest.raises(
            ValueError, match=r"\$ZUORA_SYNC_CUSTOMERS_PER_TASK must be auto or a whole number"
        ):
            settings.customers_per_task_for(10)


def test_autos_numbers_are_what_the_scale_model_derives_from_the_measured_units():
    """settings' AUTO_* numbers against benchmarks/scale_model.py's derivation from the units
    SCALE.md is written from (scale_units.json): new units, new numbers."""
    benchmarks = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, benchmarks)
    try:
        import scale_model
    finally:
        sys.path.remove(benchmarks)
    units = scale_model.fit_units(json.loads(scale_model.UNITS_FILE.read_text()))
    derived = scale_model.auto_numbers(units)
    assert (derived["groups_at_most"], derived["customer_seconds"], derived["batch_at_most"]) == (
        settings.AUTO_GROUPS_AT_MOST,
        settings.AUTO_CUSTOMER_SECONDS,
        settings.AUTO_BATCH_AT_MOST,
    )
