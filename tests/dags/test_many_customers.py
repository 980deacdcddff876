"""More customers than Airflow maps ([core] max_map_length): list_customers fails first, with
a message saying how many, the limit and what to change, and no customer is synced."""

from __future__ import annotations

import logging

import psycopg
import pytest

from zuora import batches, sync

LIMIT = 5


@pytest.fixture
def map_limit(monkeypatch):
    """[core] max_map_length lowered to LIMIT for this test (Airflow reads env vars per call)."""
    from airflow.sdk import conf

    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", str(LIMIT))
    assert conf.getint("core", "max_map_length") == LIMIT
    return LIMIT


def sync_runs(uri) -> int:
    with psycopg.connect(uri) as conn:
        return conn.execute("SELECT count(*) FROM zuora.sync_runs").fetchone()[0]


def test_more_customers_than_max_map_length_fail_list_customers_clearly(
    sync_dag, sync_env, map_limit, caplog, monkeypatch
):
    monkeypatch.setenv("ZUORA_SYNC_CUSTOMERS_PER_TASK", "1")  # a group each (auto: 4 batches)
    for n in range(map_limit + 2):
        sync_env(f"c{n}", workflows=1)

    with caplog.at_level(logging.WARNING, logger="zuora.alerts"):
        result = sync_dag.test(run_conf={"customer_ids": [], "full_refresh": False})

    assert result.state == "failed"
    assert result.get_task_instance("list_customers").state == "failed"
    # the failure alert carries the task's error: how many, the limit, what to change
    assert "list_customers failed" in caplog.text
    for part in (
        "7 customers to sync",
        "at most 5",
        "max_map_length",
        "AIRFLOW__CORE__MAX_MAP_LENGTH=7",
        "customer_ids",
    ):
        assert part in caplog.text
    assert sync_runs(sync_env.uri) == 0  # no customer was synced


def test_max_map_length_customers_are_allowed_and_customer_ids_get_under_it(sync_env, map_limit):
    for n in range(map_limit + 2):
        sync_env(f"c{n}", workflows=1)

    with pytest.raises(ValueError) as error:
        sync.customers_to_sync(None)
    assert str(error.value).startswith("7 customers to sync, but Airflow maps at most 5 per task")
    # at the limit: fine
    chosen = [f"c{n}" for n in range(map_limit)]
    assert [c["customer_id"] for c in sync.customers_to_sync(chosen)] == chosen


def test_in_batches_the_limit_is_on_the_number_of_batches(sync_env, map_limit, monkeypatch):
    monkeypatch.setenv("ZUORA_SYNC_CUSTOMERS_PER_TASK", "2")
    for n in range(2 * map_limit + 1):
        sync_env(f"c{n:02}", workflows=1)

    made = batches.batches_to_sync(None, 3)  # 11 customers: 4 batches
    assert [len(batch["customers"]) for batch in made] == [3, 3, 3, 2]
    assert made[0]["label"] == "c00 … c02 (3)"
    with pytest.raises(ValueError) as error:
        batches.batches_to_sync(None, 2)  # 6 batches
    message = str(error.value)
    assert message.startswith("11 customers to sync in 6 batches of 2, but Airflow maps at most 5 per task")
    assert "AIRFLOW__CORE__MAX_MAP_LENGTH=6" in message and "$ZUORA_SYNC_CUSTOMERS_PER_TASK, now 2" in message
    # auto batches within the limit, down to batches of one under a short deadline
    monkeypatch.setenv("ZUORA_SYNC_CUSTOMERS_PER_TASK", "auto")
    assert [len(batch["customers"]) for batch in batches.shape_run(None).batches] == [3, 3, 3, 2]
    monkeypatch.setenv("ZUORA_SYNC_DEADLINE_MINUTES", "0.05")
    with pytest.raises(ValueError, match=r"CUSTOMERS_PER_TASK, now auto, at most 1 a batch\)"):
        batches.shape_run(None)
