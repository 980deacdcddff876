"""A task opens one warehouse connection and one Zuora hook, whatever it runs: an unchanged
customer's list task finishing the sync (export, validate, upsert) included."""

from __future__ import annotations

from datetime import timedelta

import pytest

from zuora import sync
from zuora.api.hook import ZuoraHook


@pytest.fixture
def opened(monkeypatch):
    """How many warehouse connections and hooks the code under test opened."""
    counts = {"connections": 0, "hooks": 0}
    connect, init = sync.warehouse_connection, ZuoraHook.__init__

    def counting_connection(*args, **kwargs):
        counts["connections"] += 1
        return connect(*args, **kwargs)

    def counting_init(self, *args, **kwargs):
        counts["hooks"] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(sync, "warehouse_connection", counting_connection)
    monkeypatch.setattr(ZuoraHook, "__init__", counting_init)

    def take():
        taken = dict(counts)
        counts.update(connections=0, hooks=0)
        return taken

    return take


def test_each_stage_task_opens_one_connection_and_one_hook(env, sim_tenant, opened):
    tenant = sim_tenant(workflows=3)
    acme = env.customer("acme", tenant)
    for stage, call in (
        ("list", lambda: sync.list_stage(acme, "run-1")),
        ("export", lambda: sync.export_stage(acme, "run-1")),
        ("validate", lambda: sync.validate_stage(acme, "run-1")),
        ("upsert", lambda: sync.upsert_stage(acme, "run-1")),
    ):
        call()
        uses_zuora = stage in ("list", "export")
        assert opened() == {"connections": 1, "hooks": int(uses_zuora)}, stage
    # unchanged, with every definition due for the lookback re-export: still one of each
    env.query("UPDATE zuora.workflow_definitions SET exported_at = now() - interval '8 days' RETURNING 1")
    tenant.reset_stats()
    listed = sync.list_stage(acme, "run-2", finish_unchanged=True, lookback=timedelta(days=7))
    assert listed.finished is not None and listed.finished["export"]["exported"] == 3
    assert opened() == {"connections": 1, "hooks": 1}
    assert tenant.stats()["requests"] == {"list": 1, "export": 3}
    api = env.query("SELECT api_requests, status FROM zuora.sync_runs WHERE run_id = 'run-2'")
    assert api == [(4, "success")]  # the list call and three exports, each counted once
