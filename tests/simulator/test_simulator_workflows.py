"""GET /workflows and GET /workflows/{id}/export of the simulator, and admin changes to them."""

from __future__ import annotations

import json
import re

import pytest
import requests

from zuora_simulator import SECRET_MARKER

LIST_KEYS = {
    "id",
    "name",
    "description",
    "status",
    "type",
    "ondemandTrigger",
    "calloutTrigger",
    "scheduledTrigger",
    "interval",
    "timezone",
    "createdAt",
    "updatedAt",
    "active_version",
    "latest_inactive_verisons",
}
TS_PATTERNS = {
    "iso_z": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
    "iso_offset": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$",
    "utc_suffix": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$",
    "naive": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$",
}


class Api:
    """A tiny client: one token, GETs with it."""

    def __init__(self, tenant, base_url=None):
        self.tenant = tenant
        self.base_url = base_url or tenant.base_url
        self.headers = tenant.auth_headers()

    def get(self, path_or_url, **params):
        url = path_or_url if path_or_url.startswith("http") else self.base_url + path_or_url
        return requests.get(url, headers=self.headers, params=params or None, timeout=30)

    def all_items(self, page_length=50):
        items, pages, url = [], [], None
        response = self.get("/workflows", page_length=page_length)
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            pages.append(body["pagination"])
            items += body["data"]
            url = body["pagination"].get("next_page")
            if not url:
                return items, pages
            response = self.get(url)


@pytest.mark.parametrize("count", [0, 1, 50, 51, 137])
def test_pagination(sim_tenant, count):
    t = sim_tenant(workflows=count, seed=count)
    api = Api(t, t.scoped_base_url)
    items, pages = api.all_items(page_length=50)
    assert [i["id"] for i in items] == sorted(t.workflow_ids(), reverse=True)
    assert len(pages) == max(1, -(-count // 50))
    for number, pagination in enumerate(pages, start=1):
        assert pagination["page"] == number and pagination["page_length"] == 50
        if number < len(pages):
            assert pagination["next_page"] == (
                f"{t.scoped_base_url}/workflows?page={number + 1}&page_length=50"
            )
        else:
            assert "next_page" not in pagination
    past = api.get("/workflows", page=len(pages) + 1, page_length=50)
    assert past.status_code == 200
    assert past.json()["data"] == [] and "next_page" not in past.json()["pagination"]


def test_page_length_default_and_max(sim_tenant):
    t = sim_tenant(workflows=25)
    api = Api(t)
    body = api.get("/workflows").json()
    assert len(body["data"]) == 20 and body["pagination"]["page_length"] == 20
    assert body["pagination"]["next_page"] == f"{t.base_url}/workflows?page=2&page_length=20"
    r = api.get("/workflows", page_length=51)
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "invalid" and "50" in r.json()["errors"][0]["title"]
    assert api.get("/workflows", page=0).status_code == 400
    t.update(max_page_length=100)
    assert len(api.get("/workflows", page_length=51).json()["data"]) == 25


def test_list_items_vary_like_real_data(sim_tenant):
    t = sim_tenant(workflows=120, seed=7)
    items, _ = Api(t).all_items()
    legacy = [i for i in items if "active_version" not in i]
    assert legacy and all("status" not in i for i in legacy)
    modern = [i for i in items if "active_version" in i]
    assert all(set(i) == LIST_KEYS for i in modern)
    assert {i["status"] for i in modern} == {"Active", "Inactive"}
    assert all(i["type"] == "Workflow::Setup" for i in items)
    assert all(re.match(r"^0\.0\.\d+$", i["active_version"]["version"]) for i in modern)
    assert any(i["latest_inactive_verisons"] for i in modern)
    formats = {
        name for i in items for name, pattern in TS_PATTERNS.items() if re.match(pattern, i["createdAt"])
    }
    assert formats == set(TS_PATTERNS)
    assert all(any(re.match(p, i["updatedAt"]) for p in TS_PATTERNS.values()) for i in items)
    assert {i["timezone"] for i in items} >= {"Eastern Time (US & Canada)", "Sydney", None}
    intervals = {i["interval"] for i in items}
    assert None in intervals and "" in intervals and "0 0 3 /1 * *" in intervals
    assert any(i["interval"] and not i["scheduledTrigger"] for i in items)


def test_list_filters(sim_tenant):
    t = sim_tenant(workflows=30, seed=3)
    api = Api(t)
    items, _ = api.all_items()
    on_demand = api.get("/workflows", ondemand_trigger="true", page_length=50).json()["data"]
    assert [i["id"] for i in on_demand] == [i["id"] for i in items if i["ondemandTrigger"]]
    named = api.get("/workflows", name=items[3]["name"]).json()["data"]
    assert [i["id"] for i in named] == [items[3]["id"]]


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_export_shape_sizes_and_credentials(sim_tenant):
    t = sim_tenant(workflows=40, seed=11)
    api = Api(t)
    items, _ = api.all_items()
    sizes, linkage_types, actions, auth_styles = [], set(), set(), set()
    for item in items:
        r = api.get(f"/workflows/{item['id']}/export")
        assert r.status_code == 200
        sizes.append(len(r.content))
        export = r.json()
        assert set(export) == {"workflow", "tasks", "linkages"}
        wf = export["workflow"]
        assert (wf["id"], wf["name"], wf["interval"], wf["timezone"]) == (
            item["id"],
            item["name"],
            item["interval"],
            item["timezone"],
        )
        assert (wf["ondemand_trigger"], wf["callout_trigger"], wf["scheduled_trigger"]) == (
            item["ondemandTrigger"],
            item["calloutTrigger"],
            item["scheduledTrigger"],
        )
        if "active_version" in item:
            assert wf["version"] == item["active_version"]["version"]
        else:
            assert "version" not in wf  # older exports carried no version
        task_ids = {task["id"] for task in export["tasks"]}
        for link in export["linkages"]:
            linkage_types.add(link["linkage_type"])
            assert link["target_task_id"] in task_ids
        for task in export["tasks"]:
            actions.add(task["action_type"])
            params = task["parameters"]
            if task["action_type"] == "Callout":
                assert params["strict_variables"] == "true" and params["validate_response"] == "false"
                assert params["validation"]["zuora_call"] == "false"
                auth_styles.add(params["authorization"]["type"])
                for header in params["headers"]:
                    if header["value"].startswith(SECRET_MARKER):
                        auth_styles.add(header["key"])
                    if header["value"].startswith("Bearer " + SECRET_MARKER):
                        auth_styles.add("Authorization header")
                if "api_key=" + SECRET_MARKER in params["url"]:
                    auth_styles.add("query")
        secrets = [s for s in _strings(export) if SECRET_MARKER in s]
        assert all(re.search(SECRET_MARKER + r"[0-9a-f]{16}", s) for s in secrets)
    assert min(sizes) < 8 * 1024 and max(sizes) > 300 * 1024
    assert {"Start", "Success", "Failure", "For Each"} <= linkage_types
    assert {"Callout", "Email", "Logic:Liquid", "Custom Code", "Iterate"} <= actions
    assert {"basic", "bearer", "none", "X-API-Key", "Authorization header", "query"} <= auth_styles


def test_export_versions_and_errors(sim_tenant):
    t = sim_tenant(workflows=30, seed=5)
    api = Api(t)
    truth = [w for w in t.admin.workflows(t.tenant_id) if len(w["versions"]) > 1 and not w["legacy"]][0]
    wid = truth["id"]
    current = api.get(f"/workflows/{wid}/export").json()
    assert api.get(f"/workflows/{wid}/export", version="latest").json() == current
    assert api.get(f"/workflows/{wid}/export", version=truth["version"]).json() == current
    first = api.get(f"/workflows/{wid}/export", version="0.0.1")
    assert first.status_code == 200 and first.json()["workflow"]["version"] == "0.0.1"
    assert first.json()["tasks"] != current["tasks"]

    r = api.get(f"/workflows/{wid}/export", version="9.9.9")
    assert r.status_code == 404
    assert r.json() == {
        "errors": [{"status": 400, "code": "invalid", "title": "Workflow version '9.9.9' is not found."}]
    }
    r = api.get(f"/workflows/{wid}/export", version="1")
    assert r.status_code == 400 and "'1' is invalid" in r.json()["errors"][0]["title"]
    r = api.get("/workflows/999999/export")
    assert r.status_code == 404 and r.json()["errors"][0]["title"]


def test_admin_changes_are_reflected(sim_tenant):
    t = sim_tenant(workflows=3, seed=9)
    api = Api(t)
    added = t.add_workflow(
        name="Brand new", status="Inactive", interval="0 0 3 /1 * *", timezone="Tokyo", scheduled_trigger=True
    )
    top = api.get("/workflows").json()["data"][0]
    assert top["id"] == added["id"] == max(t.workflow_ids())
    assert (top["name"], top["status"], top["timezone"]) == ("Brand new", "Inactive", "Tokyo")
    assert top["active_version"]["version"] == "0.0.1"
    before = api.get(f"/workflows/{added['id']}/export").json()
    assert before["workflow"]["name"] == "Brand new"

    changed = t.update_workflow(added["id"], name="Renamed", description="new text")
    assert changed["version"] == "0.0.2"
    item = api.get("/workflows").json()["data"][0]
    assert item["name"] == "Renamed" and item["active_version"]["version"] == "0.0.2"
    assert item["active_version"]["id"] != top["active_version"]["id"]
    assert item["latest_inactive_verisons"][0]["version"] == "0.0.1"
    after = api.get(f"/workflows/{added['id']}/export").json()
    assert after["workflow"]["name"] == "Renamed" and after["tasks"] != before["tasks"]

    quiet = t.update_workflow(added["id"], touch_updated_at=False)
    assert quiet["updated_at"] == changed["updated_at"] and quiet["version"] == "0.0.3"
    item2 = api.get("/workflows").json()["data"][0]
    assert item2["updatedAt"] == item["updatedAt"]
    assert api.get(f"/workflows/{added['id']}/export").json()["tasks"] != after["tasks"]

    t.delete_workflow(added["id"])
    assert added["id"] not in [i["id"] for i in api.get("/workflows").json()["data"]]
    assert api.get(f"/workflows/{added['id']}/export").status_code == 404
    assert json.loads(json.dumps(t.admin.expected_export(t.tenant_id, t.workflow_ids()[0])))


def test_explicit_content_and_timestamps(sim_tenant):
    t = sim_tenant()
    tasks = [{"id": 1, "name": "Only", "action_type": "Delay", "parameters": {"amount": "1"}}]
    links = [
        {"source_workflow_id": 500, "source_task_id": None, "target_task_id": 1, "linkage_type": "Start"}
    ]
    t.add_workflow(
        id=500,
        name="Fixed",
        tasks=tasks,
        linkages=links,
        ts_format="naive",
        created_at="2014-12-23T11:17:51Z",
        updated_at="2015-01-02T03:04:05Z",
    )
    api = Api(t)
    item = api.get("/workflows").json()["data"][0]
    assert (item["createdAt"], item["updatedAt"]) == ("2014-12-23 11:17:51", "2015-01-02 03:04:05")
    export = api.get("/workflows/500/export").json()
    assert export["tasks"] == tasks and export["linkages"] == links


def test_same_seed_same_data(sim_tenant):
    a, b, c = (
        sim_tenant(workflows=12, seed=42),
        sim_tenant(workflows=12, seed=42),
        sim_tenant(workflows=12, seed=43),
    )
    api_a, api_b = Api(a), Api(b)
    items_a, items_b = api_a.all_items()[0], api_b.all_items()[0]
    assert items_a == items_b
    for item in items_a[:6]:
        path = f"/workflows/{item['id']}/export"
        assert api_a.get(path).content == api_b.get(path).content
    assert Api(c).all_items()[0] != items_a
