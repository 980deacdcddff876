"""The DAG files load, and are shaped as operators expect."""

import os
from datetime import timedelta
from itertools import pairwise

import pytest
from airflow.dag_processing.dagbag import DagBag

from zuora import settings, sync
from zuora.callbacks import dead_letter_failed_task
from zuora.notifications.alerts import ZuoraAlertNotifier
from zuora.retry import TransientErrorRetryPolicy


@pytest.fixture(scope="module")
def dagbag():
    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def test_dags_load_without_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"zuora_workflow_sync", "zuora_sync_monitor", "zuora_workflow_restore"} <= set(dagbag.dag_ids)


def test_no_task_spreads_its_result_over_many_xcom_rows(dagbag):
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert not getattr(task, "multiple_outputs", False), (dag.dag_id, task.task_id)


def test_restore_dag_offers_the_cli_choices_and_is_a_dry_run_by_default(dagbag):
    dag = dagbag.dags["zuora_workflow_restore"]
    assert dag.schedule is None or dag.timetable.summary == "None"
    params = dag.params
    assert set(params.keys()) == {
        "customer_id",
        "zuora_id",
        "version",
        "as_of",
        "to_customer",
        "into_another_company",
        "as_new_workflow",
        "activate",
        "apply",
        "confirm_production",
    }
    assert params["apply"] is False and params["confirm_production"] is False
    assert params["into_another_company"] is False  # another company's tenant: only when asked
    assert [t.retries for t in dag.tasks] == [0] and dag.max_active_runs == 1
    assert [type(c).__name__ for t in dag.tasks for c in t.on_failure_callback] == ["ZuoraAlertNotifier"]


def test_sync_dag_shape(dagbag):
    dag = dagbag.dags["zuora_workflow_sync"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert set(dag.params.keys()) == {"customer_ids", "full_refresh"}
    group = "customer_sync"
    stages = [f"{group}.{name}" for name in sync.STAGE_TASKS]  # what callbacks map to stages
    assert {t.task_id for t in dag.tasks if t.task_id.startswith(group)} == set(stages)
    for upstream, downstream in pairwise(stages):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    for task in dag.tasks:
        assert task.execution_timeout is not None, task.task_id
        assert task.retries == len(settings.retry_delays()) or task.task_id == "summarize", task.task_id
        if task.task_id in stages:
            assert task.map_index_template, task.task_id
    assert [dag.get_task(stage).pool for stage in stages] == [
        settings.POOL,
        settings.POOL,
        "default_pool",
        "default_pool",
    ]
    assert dag.get_task(stages[1]).max_active_tis_per_dagrun == settings.max_concurrent_exports() == 4
    assert dag.schedule == settings.schedule() == "0 2 * * *"
    assert dag.deadline is not None
    for task in dag.tasks:
        assert isinstance(task.retry_policy, TransientErrorRetryPolicy), task.task_id
        callbacks = task.on_failure_callback
        assert any(isinstance(c, ZuoraAlertNotifier) for c in callbacks), task.task_id
        # what finally failed lands in dead_letters; the run summary is not a customer's task
        assert (dead_letter_failed_task in callbacks) is (task.task_id != "summarize"), task.task_id


def test_monitor_dag_is_hourly_and_alerts_when_it_fails(dagbag):
    dag = dagbag.dags["zuora_sync_monitor"]
    assert (dag.schedule, dag.max_active_runs, dag.catchup) == ("@hourly", 1, False)
    assert {t.task_id: t.downstream_task_ids for t in dag.tasks} == {
        "check_sync_health": set(),  # independent: a failed check never stops retention
        "apply_retention": set(),
    }
    for task in dag.tasks:
        assert (task.retries, task.retry_delay, task.execution_timeout) == (
            1,
            timedelta(minutes=5),
            timedelta(minutes=10),
        ), task.task_id
        assert isinstance(task.retry_policy, TransientErrorRetryPolicy), task.task_id
        assert [type(c) for c in task.on_failure_callback] == [ZuoraAlertNotifier], task.task_id
