"""GET /workflows/{id}/versions, POST /workflows/import and POST /workflows/{id}/versions/import
of the simulator: shapes, the content round trip, version rules, permission, Idempotency-Key,
the recorded imports, faults and stats."""

from __future__ import annotations

import gzip
import json
import re

import pytest
import requests

from tests.simulator.test_simulator_workflows import LIST_KEYS

NAIVE_TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
VERSION_KEYS = {
    "id",
    "version",
    "name",
    "description",
    "type",
    "interval",
    "timezone",
    "calloutTrigger",
    "ondemandTrigger",
    "scheduledTrigger",
    "priority",
    "status",
    "createdAt",
    "updatedAt",
}
DEFINITION_KEYS = {
    "id",
    "name",
    "status",
    "active_version",
    "calloutTrigger",
    "ondemandTrigger",
    "scheduledTrigger",
    "interval",
    "timezone",
    "createdAt",
    "updatedAt",
}


class Api:
    """One token; GETs and POSTs with it."""

    def __init__(self, tenant, base_url=None):
        self.base_url = base_url or tenant.base_url
        self.headers = tenant.auth_headers()

    def get(self, path, **params):
        return requests.get(self.base_url + path, headers=self.headers, params=params or None, timeout=30)

    def post(self, path, body=None, key=None, raw=None, headers=None, **params):
        extra = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            extra["Idempotency-Key"] = key
        content = raw if raw is not None else json.dumps(body).encode()
        return requests.post(
            self.base_url + path,
            data=content,
            params=params or None,
            headers={**self.headers, **extra},
            timeout=30,
        )

    def export(self, wid, version=None):
        r = self.get(f"/workflows/{wid}/export", **({"version": version} if version else {}))
        assert r.status_code == 200, r.text
        return r.json()

    def versions(self, wid):
        r = self.get(f"/workflows/{wid}/versions")
        assert r.status_code == 200, r.text
        return r.json()["data"]


def assert_same_except_assigned(a, b, wid, version):
    """``b`` (the export of an import of ``a``) equals ``a`` key by key, except what the
    simulator assigns: workflow.id, workflow.version, task ids (linkages follow them) and
    linkages' source_workflow_id."""
    assert set(b) == set(a) == {"workflow", "tasks", "linkages"}
    assert set(b["workflow"]) == set(a["workflow"]) | {"version"}
    for key, value in a["workflow"].items():
        if key not in ("id", "version"):
            assert b["workflow"][key] == value, key
    assert b["workflow"]["id"] == wid and b["workflow"]["version"] == version
    assert len(b["tasks"]) == len(a["tasks"]) > 0
    new_ids = {}
    for old, new in zip(a["tasks"], b["tasks"], strict=True):
        assert list(new) == list(old)  # same keys, same order
        for key in old:
            if key != "id":
                assert new[key] == old[key], key
        new_ids[old["id"]] = new["id"]
    assert len(set(new_ids.values())) == len(new_ids)
    assert not set(new_ids.values()) & set(new_ids)  # every task got a new id
    assert len(b["linkages"]) == len(a["linkages"]) > 0
    for old, new in zip(a["linkages"], b["linkages"], strict=True):
        assert set(new) == set(old)
        for key in old:
            if key in ("source_task_id", "target_task_id"):
                assert new[key] == (None if old[key] is None else new_ids[old[key]]), key
            elif key == "source_workflow_id":
                assert new[key] == wid
            else:
                assert new[key] == old[key], key


def test_versions_list_after_two_updates(sim_tenant):
    t = sim_tenant()
    wf = t.add_workflow(name="First", size_class="small")
    t.update_workflow(wf["id"], name="Second")
    truth = t.update_workflow(wf["id"], name="Third")
    api = Api(t, t.scoped_base_url)
    items = api.versions(wf["id"])
    assert [v["version"] for v in items] == ["0.0.1", "0.0.2", "0.0.3"]  # oldest first
    assert [v["name"] for v in items] == ["First", "Second", "Third"]
    assert [v["status"] for v in items] == ["Inactive", "Inactive", "Active"]
    assert all(set(v) == VERSION_KEYS and v["type"] == "Workflow::Setup" for v in items)
    assert all(NAIVE_TS.match(v["createdAt"]) and NAIVE_TS.match(v["updatedAt"]) for v in items)
    listed = api.get("/workflows").json()["data"][0]
    assert items[-1]["id"] == listed["active_version"]["id"] == truth["active_version_id"]
    assert [v["id"] for v in reversed(items[:-1])] == [v["id"] for v in listed["latest_inactive_verisons"]]
    assert len({v["id"] for v in items} | {wf["id"]}) == 4  # version ids are their own

    missing = api.get("/workflows/999999/versions")
    assert missing.status_code == 404
    assert (
        missing.json()
        == api.get("/workflows/999999/export").json()
        == {
            "errors": [
                {"status": 404, "code": "not_found", "title": "Workflow definition '999999' is not found."}
            ]
        }
    )
    assert t.stats()["by_endpoint_status"]["versions"] == {"200": 1, "404": 1}


def test_version_import_round_trip(sim_tenant):
    t = sim_tenant(seed=4)
    wid = t.add_workflow(
        name="Source",
        size_class="medium",
        created_at="2020-01-01T00:00:00Z",
        updated_at="2020-02-01T00:00:00Z",
    )["id"]
    old_updated = t.update_workflow(wid, touch_updated_at=False)["updated_at"]
    api = Api(t)
    before = api.get("/workflows").json()["data"][0]
    a = api.export(wid)
    assert a["workflow"]["version"] == "0.0.2"

    r = api.post(f"/workflows/{wid}/versions/import", a, version="0.1.0")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == DEFINITION_KEYS and body["id"] == wid
    assert body["active_version"] == before["active_version"]  # not activated
    assert body["updatedAt"] != before["updatedAt"]
    assert t.admin.get_workflow(t.tenant_id, wid)["updated_at"] > old_updated == "2020-02-01T00:00:00+00:00"
    b = api.export(wid, "0.1.0")
    assert_same_except_assigned(a, b, wid, "0.1.0")
    assert api.export(wid) == a  # the default export is still the active one
    assert api.export(wid, "latest") == b  # latest: the highest version number
    listed = api.get("/workflows").json()["data"][0]
    assert listed["active_version"]["version"] == "0.0.2"
    assert listed["latest_inactive_verisons"][0]["version"] == "0.1.0"
    assert [v["status"] for v in api.versions(wid)] == ["Inactive", "Active", "Inactive"]

    r = api.post(f"/workflows/{wid}/versions/import", b, version="0.2.0", activate="true")
    assert r.status_code == 200 and r.json()["active_version"]["version"] == "0.2.0"
    c = api.export(wid)
    assert_same_except_assigned(b, c, wid, "0.2.0")
    assert {task["id"] for task in c["tasks"]}.isdisjoint(task["id"] for task in b["tasks"])
    assert [v["version"] for v in api.versions(wid)] == ["0.0.1", "0.0.2", "0.1.0", "0.2.0"]
    assert t.admin.get_workflow(t.tenant_id, wid)["versions"][-1] == "0.2.0"
    # an admin change after imports bumps the highest version and keeps imported content
    assert t.update_workflow(wid, change_content=False)["version"] == "0.2.1"
    assert api.export(wid) == {**c, "workflow": {**c["workflow"], "version": "0.2.1"}}


def test_workflow_import_round_trip_and_activate(sim_tenant):
    t = sim_tenant(seed=8)
    source = t.add_workflow(name="Legacy source", size_class="small", legacy=True)["id"]
    api = Api(t)
    a = api.export(source)
    assert "version" not in a["workflow"]  # older exports carry no version

    r = api.post("/workflows/import", a, version="1.2.3", activate="true")
    assert r.status_code == 200, r.text
    item = r.json()
    assert set(item) == LIST_KEYS and item["id"] > source
    assert (item["name"], item["status"]) == ("Legacy source", "Active")
    assert item["active_version"]["version"] == "1.2.3" and item["latest_inactive_verisons"] == []
    assert api.get("/workflows").json()["data"][0] == item
    assert_same_except_assigned(a, api.export(item["id"]), item["id"], "1.2.3")

    gz = gzip.compress(json.dumps(a).encode())
    r = api.post("/workflows/import", raw=gz, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    inactive = r.json()  # activate defaults to false: the new definition is Inactive
    assert inactive["status"] == "Inactive" and inactive["active_version"]["version"] == "0.0.1"
    assert [v["version"] for v in api.versions(inactive["id"])] == ["0.0.1"]
    assert_same_except_assigned(a, api.export(inactive["id"]), inactive["id"], "0.0.1")


def test_version_rules_and_bad_bodies(sim_tenant):
    t = sim_tenant()
    wid = t.add_workflow(name="Rules", size_class="small")["id"]
    t.update_workflow(wid)
    t.update_workflow(wid)  # 0.0.3
    api = Api(t)
    export = api.export(wid)
    path = f"/workflows/{wid}/versions/import"

    def error(r, status=400):
        assert r.status_code == status, r.text
        [err] = r.json()["errors"]
        assert err["status"] == status and err["title"]
        return err["title"]

    assert "greater" in error(api.post(path, export, version="0.0.3"))
    assert "'0.0.3'" in error(api.post(path, export, version="0.0.2"))
    assert "required" in error(api.post(path, export))
    assert "invalid" in error(api.post(path, export, version="1.0"))
    assert "activate" in error(api.post(path, export, version="0.0.4", activate="yes"))
    assert api.post(path, export, version="0.0.10").status_code == 200  # numeric, not text
    assert "greater" in error(api.post(path, export, version="0.0.9"))

    bad_bodies = {
        "not JSON": b"{not json",
        "a list": b"[]",
        "no workflow": json.dumps({"tasks": [], "linkages": []}).encode(),
        "no tasks": json.dumps({"workflow": export["workflow"], "linkages": []}).encode(),
        "tasks not a list": json.dumps({**export, "tasks": {"a": 1}}).encode(),
        "no name": json.dumps({**export, "workflow": {"description": "x"}}).encode(),
        "dangling linkage": json.dumps(
            {**export, "linkages": [{"source_task_id": None, "target_task_id": -5, "linkage_type": "Start"}]}
        ).encode(),
    }
    for raw in bad_bodies.values():
        error(api.post(path, raw=raw, version="0.1.0"))
        error(api.post("/workflows/import", raw=raw))
    assert (
        error(api.post("/workflows/999999/versions/import", export, version="9.0.0"), 404)
        == "Workflow definition '999999' is not found."
    )

    assert [v["version"] for v in api.versions(wid)] == ["0.0.1", "0.0.2", "0.0.3", "0.0.10"]
    assert len(t.workflow_ids()) == 1
    records = t.imports()
    assert len(records) == 7 + 1 + 2 * len(bad_bodies)  # rules, 404, bodies on both POSTs
    assert [r["status"] for r in records].count(200) == 1
    assert t.stats()["by_endpoint_status"]["import"] == {"400": 7}


def test_manage_access_permission(sim_tenant):
    t = sim_tenant(manage_access=False)
    wid = t.add_workflow(name="Locked", size_class="small")["id"]
    api = Api(t)
    export = api.export(wid)
    assert len(api.versions(wid)) == 1 and api.get("/workflows").status_code == 200
    for r in (
        api.post("/workflows/import", export),
        api.post(f"/workflows/{wid}/versions/import", export, version="1.0.0"),
    ):
        assert r.status_code == 403
        assert r.json() == {
            "errors": [
                {
                    "status": 403,
                    "code": "forbidden",
                    "title": "You do not have the 'Workflow Manage Access' permission.",
                }
            ]
        }
    assert t.imports() == [] and t.workflow_ids() == [wid]
    assert t.info["config"]["manage_access"] is False
    assert t.update(manage_access=True)["config"]["manage_access"] is True
    assert api.post("/workflows/import", export).status_code == 200
    with pytest.raises(RuntimeError, match="manage_access"):
        t.update(manage_access="no")


def test_idempotency_key(sim_tenant):
    t, other = sim_tenant(), sim_tenant()
    wid = t.add_workflow(name="Idem", size_class="small")["id"]
    api, scoped = Api(t), Api(t, t.scoped_base_url)
    export = api.export(wid)
    path = f"/workflows/{wid}/versions/import"

    first = api.post(path, export, key="sync-1", version="0.1.0")
    again = scoped.post(path, export, key="sync-1", version="0.1.0")  # same request, other base URL
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert [v["version"] for v in api.versions(wid)] == ["0.0.1", "0.1.0"]

    conflict = api.post(path, export, key="sync-1", version="0.2.0")
    assert conflict.status_code == 409 and conflict.json()["errors"][0]["status"] == 409
    assert api.post(path, {**export, "tasks": []}, key="sync-1", version="0.1.0").status_code == 409
    assert api.post(path, export, key="k" * 256, version="0.2.0").status_code == 400
    assert api.post(path, export, key="k" * 255, version="0.2.0").status_code == 200
    failed = api.post(path, export, key="late", version="0.0.5")  # an error does not use the key
    assert failed.status_code == 400
    assert api.post(path, export, key="late", version="0.3.0").status_code == 200

    made = api.post("/workflows/import", export, key="new-wf")
    assert api.post("/workflows/import", export, key="new-wf").content == made.content
    assert len(t.workflow_ids()) == 2
    # keys are per tenant: the other tenant creates its own workflow
    assert Api(other).post("/workflows/import", export, key="new-wf").status_code == 200
    assert len(other.workflow_ids()) == 1 and other.imports()[0]["replay"] is False


def test_imports_are_recorded(sim_tenant):
    t = sim_tenant()
    wid = t.add_workflow(name="Rec", size_class="small")["id"]
    api = Api(t)
    export = api.export(wid)
    created = api.post(
        f"/workflows/{wid}/versions/import", export, key="a", version="0.5.0", activate="true"
    ).json()
    api.post(f"/workflows/{wid}/versions/import", export, key="a", version="0.5.0", activate="true")
    new = api.post("/workflows/import", export, workflow_definition_id=str(wid)).json()
    api.post(f"/workflows/{wid}/versions/import", export, version="0.4.0")
    first, replay, workflow, refused = t.imports()
    assert first == {
        "seq": 1,
        "kind": "version",
        "workflow_id": wid,
        "version_id": created["active_version"]["id"],
        "version": "0.5.0",
        "activate": True,
        "workflow_definition_id": None,
        "idempotency_key": "a",
        "replay": False,
        "replay_of": None,
        "created": True,
        "status": 200,
    }
    assert replay == {**first, "seq": 2, "replay": True, "replay_of": 1, "created": False}
    assert workflow == {
        "seq": 3,
        "kind": "workflow",
        "workflow_id": new["id"],
        "version_id": new["active_version"]["id"],
        "version": "0.0.1",
        "activate": False,
        "workflow_definition_id": str(wid),
        "idempotency_key": None,
        "replay": False,
        "replay_of": None,
        "created": True,
        "status": 200,
    }
    assert (refused["status"], refused["created"], refused["version_id"]) == (400, False, None)
    assert t.stats()["requests"] == {"token": 1, "export": 1, "versions_import": 3, "import": 1}


def test_fault_scripts_and_reset_after_commit(sim_tenant):
    t = sim_tenant()
    wid = t.add_workflow(name="Faulty", size_class="small")["id"]
    api = Api(t)
    export = api.export(wid)
    path = f"/workflows/{wid}/versions/import"
    t.script(
        [
            {"endpoint": "versions", "kind": "status", "status": 503},
            {"endpoint": "import", "kind": "rate_limit", "retry_after": 1},
            {"endpoint": "versions_import", "workflow_id": wid, "kind": "status", "status": 500},
            {"kind": "concurrency_limit"},
        ]
    )
    assert api.get(f"/workflows/{wid}/versions").status_code == 503
    assert api.post("/workflows/import", export).status_code == 429
    assert api.post(path, export, key="k1", version="0.1.0").status_code == 500
    assert api.post(path, export, key="k1", version="0.1.0").status_code == 429  # "any"
    assert api.post(path, export, key="k1", version="0.1.0").status_code == 200  # key unused so far
    assert t.admin.pending_script(t.tenant_id) == [] and len(t.imports()) == 1

    # the version is created, then the connection breaks; the retry with the key replays
    t.script([{"endpoint": "versions_import", "kind": "reset", "phase": "body"}])
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        api.post(path, export, key="k2", version="0.2.0")
    retry = api.post(path, export, key="k2", version="0.2.0")
    assert retry.status_code == 200
    assert [v["version"] for v in api.versions(wid)] == ["0.0.1", "0.1.0", "0.2.0"]
    assert [r["replay"] for r in t.imports()] == [False, False, True]
    with pytest.raises(RuntimeError, match="script endpoint"):
        t.script([{"endpoint": "imports", "kind": "status", "status": 500}])


@pytest.mark.parametrize("endpoint", ["import", "versions_import"])
def test_a_status_fault_can_come_after_the_import_is_performed(sim_tenant, endpoint):
    """``performed: true``: Zuora does the import, then the answer is a 5xx (a gateway's 504
    after its backend finished): the client sees an error, the tenant holds the import."""
    t = sim_tenant()
    wid = t.add_workflow(name="Lost answer", size_class="small")["id"]
    api = Api(t)
    export = api.export(wid)
    path = "/workflows/import" if endpoint == "import" else f"/workflows/{wid}/versions/import"
    params = {} if endpoint == "import" else {"version": "0.1.0"}
    t.script([{"endpoint": endpoint, "kind": "status", "status": 504, "performed": True}])
    lost = api.post(path, export, key="k1", **params)
    assert lost.status_code == 504 and "Gateway" in lost.text  # the gateway's HTML page
    [done] = t.imports()
    assert (done["status"], done["created"], done["replay"]) == (200, True, False)
    if endpoint == "import":
        assert len(t.workflow_ids()) == 2
    else:
        assert [v["version"] for v in api.versions(wid)] == ["0.0.1", "0.1.0"]
    assert t.stats()["by_endpoint_status"][endpoint] == {"504": 1}
    # without the flag a status fault stays what it was: nothing performed
    t.script([{"endpoint": endpoint, "kind": "status", "status": 504}])
    assert api.post(path, export, key="k2", **({"version": "0.2.0"} if params else {})).status_code == 504
    assert len(t.imports()) == 1
    with pytest.raises(RuntimeError, match="performed"):
        t.script([{"endpoint": endpoint, "kind": "rate_limit", "performed": True}])
