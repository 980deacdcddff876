"""The warehouse's Postgres goes away during a run (crashed mid-stage, down between stages)
and comes back: the failed stage raises an error the retry policy calls transient, and
retrying it finishes the run with nothing lost or doubled.

This test has a Postgres server of its own, so the session's server is never stopped.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from devstack.postgres import EmbeddedPostgres
from tests.reliability.checks import assert_consistent, rows
from tests.reliability.conftest import Env
from zuora import sync
from zuora.retry import is_transient
from zuora.sync import run_customer


@pytest.fixture
def own_postgres(monkeypatch):
    pg = EmbeddedPostgres().start()
    name = f"zws_restart_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(pg.uri, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield pg, Env(f"{pg.uri.rpartition('/')[0]}/{name}", monkeypatch)
    finally:
        pg.destroy()


def retried(stage, *args, **kwargs):
    """Run a stage once more, as Airflow's retry would after a transient error."""
    return stage(*args, **kwargs)


def test_postgres_restarts_during_a_run(own_postgres, sim_tenant):
    pg, env = own_postgres
    tenant = sim_tenant(workflows=24, latency_ms=60)
    acme = env.customer("acme", tenant, max_concurrency=2)
    run_customer(acme, "run-0", stages=("list", "export", "validate", "upsert"))
    tenant.update_workflow(tenant.workflow_ids()[0], name="Changed while the database was down")
    tenant.delete_workflow(tenant.workflow_ids()[1])

    sync.list_stage(acme, "run-1")

    # 1. The server crashes (immediate stop) while the export stage streams exports into it.
    tenant.reset_stats()
    crash = threading.Timer(0.3, pg.stop, kwargs={"mode": "immediate"})
    crash.start()
    with pytest.raises(Exception) as failure:
        sync.export_stage(acme, "run-1", full_refresh=True, lookback=timedelta(days=7))
    crash.join()
    assert is_transient(failure.value), repr(failure.value)
    exported_before_crash = tenant.stats()["requests"]["export"]
    assert 0 < exported_before_crash < 23, "the crash did not happen during the exports"
    pg.start()
    assert rows(env.uri, "SELECT count(*) FROM zuora.staging_exports WHERE run_id = 'run-1'") == [(0,)]
    retried(sync.export_stage, acme, "run-1", full_refresh=True, lookback=timedelta(days=7))

    # 2. The server is down when validation starts, and back for the retry.
    pg.stop()
    with pytest.raises(psycopg.OperationalError) as failure:
        sync.validate_stage(acme, "run-1")
    assert is_transient(failure.value)
    pg.start()
    retried(sync.validate_stage, acme, "run-1")

    # 3. Restarted (fast shutdown) between validation and the merge.
    pg.stop()
    pg.start()
    retried(sync.upsert_stage, acme, "run-1")

    run = assert_consistent(env.uri, "acme", "run-1", tenant=tenant, key=env.key)
    assert run["listed"] == 23
    assert rows(env.uri, "SELECT exported FROM zuora.sync_runs WHERE run_id = 'run-1'") == [(23,)]
    kinds = dict(
        rows(
            env.uri,
            "SELECT change_kind, count(*) FROM zuora.workflow_history WHERE run_id = 'run-1' GROUP BY 1",
        )
    )
    assert kinds == {"update": 1, "delete": 1}
