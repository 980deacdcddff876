"""Zuora's version history in the warehouse: a backfill bounded per run that ends with every
version stored, no call for an unchanged tenant, and a changed workflow's new version from
one versions call."""

from __future__ import annotations

from zuora import sync
from zuora.redaction import redact
from zuora.warehouse.fingerprint import summarize as summarize_stored


def summarize(export: dict):
    """The summary of an export as stored: of its redacted definition."""
    return summarize_stored(redact(export))


def versions_in_zuora(tenant) -> dict[int, list[str]]:
    return {
        wid: tenant.admin.get_workflow(tenant.tenant_id, wid)["versions"] for wid in tenant.workflow_ids()
    }


def test_the_history_backfill_spreads_over_runs_within_its_budget(env, sim_tenant):
    tenant = sim_tenant(workflows=4)
    first, second, *_ = tenant.workflow_ids()
    for _ in range(3):
        tenant.update_workflow(first)
    for _ in range(2):
        tenant.update_workflow(second)
    in_zuora = versions_in_zuora(tenant)
    assert sum(map(len, in_zuora.values())) >= 9
    acme = env.customer("acme", tenant)
    env.monkeypatch.setenv("ZUORA_SYNC_HISTORY_CALLS", "3")
    pending = []
    for run in range(1, 10):
        tenant.reset_stats()
        sync.run_customer(acme, f"run-{run}")
        requests = tenant.stats()["requests"]
        current_exports = 4 if run == 1 else 0
        assert requests.get("versions", 0) + requests["export"] - current_exports <= 3, (run, requests)
        pending.append(
            env.query("SELECT versions_pending FROM zuora.sync_runs WHERE run_id = %s", f"run-{run}")[0][0]
        )
        if pending[-1] == 0:
            break
    assert pending[-1] == 0 and len(pending) >= 3 and pending == sorted(pending, reverse=True)
    stored = env.query(
        "SELECT zuora_id, version, fingerprint FROM zuora.workflow_versions ORDER BY zuora_id, version_order"
    )
    assert {wid: [v for w, v, _ in stored if w == wid] for wid in in_zuora} == in_zuora
    for zuora_id, version, fingerprint in stored:
        expected = tenant.admin.expected_export(tenant.tenant_id, zuora_id, version)
        assert fingerprint == summarize(expected).fingerprint, (zuora_id, version)

    # nothing changed: no history call at all
    tenant.reset_stats()
    sync.run_customer(acme, "run-quiet")
    assert tenant.stats()["requests"].get("versions", 0) == 0
    assert tenant.stats()["requests"].get("export", 0) == 0

    # one workflow changed: its versions listed once, its new version from the current export
    changed = tenant.workflow_ids()[2]
    tenant.update_workflow(changed)
    tenant.reset_stats()
    sync.run_customer(acme, "run-changed")
    assert tenant.stats()["requests"]["versions"] == 1
    assert tenant.stats()["requests"]["export"] == 1
    assert env.query(
        "SELECT version, exported FROM zuora.workflow_version_changes "
        "WHERE zuora_id = %s ORDER BY version_order",
        changed,
    ) == [(version, True) for version in versions_in_zuora(tenant)[changed]]


def test_the_version_changes_view_says_what_changed_task_by_task(env, sim_tenant):
    tenant = sim_tenant(workflows=0)
    wid = tenant.add_workflow()["id"]  # version 0.0.1
    tenant.update_workflow(wid)  # new content
    tenant.update_workflow(wid, change_content=False, description="only the settings")
    acme = env.customer("acme", tenant)
    sync.run_customer(acme, "run-1")
    exports = [tenant.admin.expected_export(tenant.tenant_id, wid, v) for v in ("0.0.1", "0.0.2")]
    before, after = (summarize(e).task_hashes for e in exports)
    rows = env.query(
        "SELECT version, previous_version, tasks_added, tasks_removed, tasks_changed, "
        "settings_changed FROM zuora.workflow_version_changes ORDER BY version_order"
    )
    assert rows[0] == ("0.0.1", None, sorted(before), [], [], True)
    assert rows[1][:2] == ("0.0.2", "0.0.1")
    assert rows[1][2] == sorted(after.keys() - before.keys())
    assert rows[1][3] == sorted(before.keys() - after.keys())
    assert rows[1][4] == sorted(k for k in after.keys() & before.keys() if after[k] != before[k])
    assert rows[1][2] or rows[1][3] or rows[1][4]  # the content did change
    assert rows[2] == ("0.0.3", "0.0.2", [], [], [], True)  # only the description
    tasks = env.query("SELECT version, count(*) FROM zuora.workflow_version_tasks GROUP BY 1 ORDER BY 1")
    assert [count for _, count in tasks] == [len(before), len(after), len(after)]


def test_a_failing_history_call_never_fails_the_sync_and_is_tried_again(env, sim_tenant):
    tenant = sim_tenant(workflows=2)
    acme = env.customer("acme", tenant, max_attempts=1)
    tenant.script([{"endpoint": "versions", "kind": "status", "status": 500}])
    sync.run_customer(acme, "run-1")
    assert env.query("SELECT status, stored, versions_failed, versions_pending > 0 FROM zuora.sync_runs") == [
        ("success", 2, 1, True)
    ]
    sync.run_customer(acme, "run-2")
    assert env.query(
        "SELECT status, versions_failed, versions_pending FROM zuora.sync_runs WHERE run_id = 'run-2'"
    ) == [("success", 0, 0)]


def test_an_export_of_another_workflow_fills_no_version(env, sim_tenant):
    """Before validation flags a staged export whose id is not the one asked for, the history
    must not take it: a restore would import workflow B into workflow A."""
    from zuora import warehouse
    from zuora.warehouse import versions
    from zuora.warehouse.connection import warehouse_connection

    tenant = sim_tenant(workflows=2)
    a, b = tenant.workflow_ids()
    acme = env.customer("acme", tenant)
    sync.run_customer(acme, "run-1")
    export_of_b = tenant.admin.expected_export(tenant.tenant_id, b, "0.0.1")
    assert export_of_b["workflow"]["version"] == "0.0.1"  # the same number as A's version
    forget = "UPDATE zuora.workflow_versions SET definition = NULL WHERE zuora_id = %s RETURNING 1"
    same_as_current = (
        "SELECT v.fingerprint = d.fingerprint FROM zuora.workflow_versions v "
        "JOIN zuora.workflow_definitions d USING (customer_id, zuora_id) WHERE v.zuora_id = %s"
    )
    env.query(forget, a)
    with warehouse_connection() as conn:
        # the export stage: A was asked for, B came back; A's version takes A's stored export
        warehouse.stage_exports(conn, "run-2", "acme", [(a, export_of_b, None)], encryption_key=env.key)
        versions.fill_from_current_exports(conn, "run-2", "acme")
    assert env.query(same_as_current, a) == [(True,)]
    env.query(forget, a)
    with warehouse_connection() as conn:
        # the history backfill: version 0.0.1 of A asked for, B came back
        counts = versions.store_version_exports(
            conn, "run-2", "acme", [((a, "0.0.1"), export_of_b, None)], env.key
        )
    assert counts == {"versions_exported": 0, "versions_failed": 1}
    assert env.query(
        "SELECT definition IS NULL, export_error FROM zuora.workflow_versions WHERE zuora_id = %s", a
    ) == [(True, f"ExportIdMismatch: export is of workflow {b} version 0.0.1, not {a} version 0.0.1")]


def test_the_versions_of_a_workflow_whose_exports_name_no_version_are_stored(env, sim_tenant):
    """Older exports carry no ``version`` key (the recorded real exports of the Zuora reference,
    section 4.2): the version asked for is stored, not an ExportIdMismatch tried again every day
    with the customer's history pending for ever. A version key that names another version is
    still refused."""
    from zuora.warehouse import versions
    from zuora.warehouse.connection import warehouse_connection

    tenant = sim_tenant(workflows=0)
    wid = tenant.add_workflow(legacy=True)["id"]
    tenant.update_workflow(wid)
    in_zuora = versions_in_zuora(tenant)[wid]
    exports = {v: tenant.admin.expected_export(tenant.tenant_id, wid, v) for v in in_zuora}
    assert len(in_zuora) == 2 and not any("version" in e["workflow"] for e in exports.values())
    acme = env.customer("acme", tenant)
    sync.run_customer(acme, "run-1")
    assert env.query("SELECT status, versions_failed, versions_pending FROM zuora.sync_runs") == [
        ("success", 0, 0)
    ]
    assert env.query(
        "SELECT version, fingerprint, export_error FROM zuora.workflow_versions ORDER BY version_order"
    ) == [(v, summarize(exports[v]).fingerprint, None) for v in in_zuora]

    newer = {**exports[in_zuora[1]], "workflow": {**exports[in_zuora[1]]["workflow"], "version": in_zuora[1]}}
    with warehouse_connection() as conn:
        counts = versions.store_version_exports(
            conn, "run-2", "acme", [((wid, in_zuora[0]), newer, None)], env.key
        )
    assert counts == {"versions_exported": 0, "versions_failed": 1}


def test_unusable_version_items_are_validation_issues_not_failures(env, sim_tenant):
    from zuora.warehouse import versions
    from zuora.warehouse.connection import warehouse_connection

    items = [
        {"id": True, "version": "0.0.1"},  # JSON true is not an id
        {"id": 2**70, "version": "0.0.2"},  # beyond bigint
        {"id": 7, "version": "1..2"},
        {"id": 8, "version": "1.2"},  # Zuora numbers x.y.z
        "not an object",
        {"id": 9, "version": "0.0.3", "name": "kept"},
        # times beyond Python's datetime once in UTC: the version is kept without them
        {
            "id": 10,
            "version": "0.0.4",
            "createdAt": "0001-01-01T00:00:00+01:00",
            "updatedAt": "9999-12-31T23:59:59-01:00",
        },
    ]
    with warehouse_connection() as conn:
        assert versions.record_versions(conn, "run-1", "acme", 5, "hash", items) == 2
    assert env.query(
        "SELECT version_id, version, zuora_created_at, zuora_updated_at FROM zuora.workflow_versions "
        "ORDER BY version_id"
    ) == [(9, "0.0.3", None, None), (10, "0.0.4", None, None)]
    issues = env.query("SELECT zuora_id, rule, severity FROM zuora.validation_issues")
    assert issues == [(5, "version_item_unusable", "warning")] * 5


def test_originals_kept_without_a_key_are_fetched_again_once_there_is_one(env, sim_tenant):
    tenant = sim_tenant(workflows=0)
    wid = tenant.add_workflow(name="Dunning")["id"]
    tenant.update_workflow(wid)
    acme = env.customer("acme", tenant)
    env.monkeypatch.delenv("ZUORA_EXPORT_ENCRYPTION_KEY")
    sync.run_customer(acme, "run-1")
    without = "SELECT count(*) FILTER (WHERE original_encrypted IS NULL), count(*) FROM zuora.{}"
    assert env.query(without.format("workflow_definitions")) == [(1, 1)]
    assert env.query(without.format("workflow_versions")) == [(2, 2)]
    env.monkeypatch.setenv("ZUORA_EXPORT_ENCRYPTION_KEY", env.key.decode())
    reports = sync.run_customer(acme, "run-2")
    assert reports["export"]["exported"] == 1 and reports["export"]["versions_pending"] == 0
    assert env.query(without.format("workflow_definitions")) == [(0, 1)]
    assert env.query(without.format("workflow_versions")) == [(0, 2)]
    tenant.reset_stats()
    sync.run_customer(acme, "run-3")  # nothing left to fetch: the list call only
    assert tenant.stats()["requests"].get("export", 0) == 0


def test_a_key_that_cannot_be_read_fails_the_task_as_transient_not_as_no_key(monkeypatch):
    """Inside a task the SDK answers "no such Variable" also when the Execution API failed:
    only Airflow's own "not found" may mean "no key". (The task runner's channel to the
    supervisor is the one part replaced: an Execution API outage cannot be made here.)"""
    import pytest
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import ErrorResponse, GetVariable, VariableResult

    from zuora.retry import is_transient
    from zuora.warehouse.secrets_box import EncryptionKeyUnavailable, resolve_encryption_key

    class Supervisor:
        def __init__(self, answer):
            self.answer, self.asked = answer, []

        def send(self, message):
            assert isinstance(message, GetVariable)
            self.asked.append(message.key)
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    monkeypatch.delenv("ZUORA_EXPORT_ENCRYPTION_KEY", raising=False)
    for answer in (ErrorResponse(error=ErrorType.API_SERVER_ERROR), TimeoutError("read timed out")):
        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Supervisor(answer), raising=False)
        with pytest.raises(EncryptionKeyUnavailable) as raised:
            resolve_encryption_key()
        assert is_transient(raised.value)
    monkeypatch.setattr(
        task_runner,
        "SUPERVISOR_COMMS",
        Supervisor(ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND)),
        raising=False,
    )
    assert resolve_encryption_key() is None
    supervisor = Supervisor(VariableResult(key="zuora_export_encryption_key", value="k" * 44))
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", supervisor, raising=False)
    assert resolve_encryption_key() == b"k" * 44


class UnreachableVault:
    """A workers' secrets backend that cannot be reached (Vault cannot run here): the one part
    that stands in for a real system."""

    def _set_connection_class(self, connection_class):
        pass

    def get_variable(self, key, team_name=None):
        raise ConnectionError("vault.internal:8200: connection refused")

    def get_connection(self, conn_id, team_name=None):
        raise ConnectionError("vault.internal:8200: connection refused")


def test_a_secrets_backend_that_cannot_be_asked_is_not_taken_for_no_key(monkeypatch):
    """The key lives in the workers' secrets backend; the SDK logs the backend's error and
    answers "not found" when the Execution API has no such Variable either. That must fail the
    task as transient, not store every original as NULL."""
    import pytest
    from airflow.sdk.configuration import clear_secrets_backends_cache
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import ErrorResponse

    from zuora.retry import is_transient
    from zuora.warehouse.secrets_box import EncryptionKeyUnavailable, resolve_encryption_key

    class Supervisor:  # the Execution API: no such Variable in the metadata DB
        def send(self, message):
            return ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND)

    monkeypatch.delenv("ZUORA_EXPORT_ENCRYPTION_KEY", raising=False)
    monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND", f"{__name__}.UnreachableVault")
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Supervisor(), raising=False)
    clear_secrets_backends_cache()
    try:
        with pytest.raises(EncryptionKeyUnavailable, match="secrets backend UnreachableVault") as raised:
            resolve_encryption_key()
        assert is_transient(raised.value)
    finally:
        clear_secrets_backends_cache()


def test_one_version_number_rule_which_the_simulator_agrees_with():
    """The product reads, orders and makes version numbers by one rule (x.y.z, as Zuora
    numbers them); an import number it makes is one the Zuora simulator accepts."""
    from zuora.warehouse.versions import next_version, version_order
    from zuora_simulator.versions import VERSION_NUMBER_RE

    samples = [
        "0.0.1",
        "1.0.10",
        "10.2.3",
        "1.2",
        "1..2",
        "1.2.3.4",
        "",
        "v1.0.0",
        " 1.0.0",
        "1.0.0\n",
        "١.٢.٣",
    ]
    for sample in samples:
        assert (version_order(sample) is not None) == bool(VERSION_NUMBER_RE.fullmatch(sample)), sample
    listed = [{"version": v} for v in ("0.0.9", "0.0.10", "1..2", "2.0", None)] + ["odd"]
    assert next_version(listed) == "0.0.11" and VERSION_NUMBER_RE.fullmatch(next_version(listed))
    assert next_version([]) == "0.0.1"
    assert sorted(["0.0.10", "0.0.9", "0.1.0"], key=version_order) == ["0.0.9", "0.0.10", "0.1.0"]
