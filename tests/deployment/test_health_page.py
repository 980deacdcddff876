"""The Zuora sync page in the running cluster: the api-server loads the plugin from the
installed distribution and serves the page and its JSON to a JWT, with the figures of
zuora.sync_runs and links to the customer's task instances (their map index, from Airflow's
metadata in Postgres)."""

from __future__ import annotations

from urllib.parse import quote

import requests

from tests.deployment.conftest import DAG_ID


def test_the_api_server_serves_the_sync_page_to_a_jwt(deployment):
    api = deployment.api
    page = f"{api.base}/zuora-sync"
    ours = [p for p in api.call("GET", "/plugins")["plugins"] if p["name"] == "zuora_sync"]
    assert ours and {v["destination"] for v in ours[0]["external_views"]} == {"nav", "dag"}
    assert requests.get(f"{page}/", timeout=30).status_code == 401
    assert requests.get(f"{page}/", timeout=30, headers={"Authorization": "Bearer x.y.z"}).status_code in (
        401,
        403,
    )

    customers = ["page1", "page2"]
    for customer in customers:
        deployment.add_customer(customer, workflows=3)
    run_id = api.trigger({"customer_ids": customers})
    assert api.wait(run_id) == "success"

    html = api.session.get(f"{page}/", timeout=30)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert '<a href="/zuora-sync/customers/page2">page2</a>' in html.text

    fleet = api.session.get(f"{page}/api/fleet", params={"q": "page"}, timeout=30).json()
    rows = {row["customer_id"]: row for row in fleet["customers"]}
    ledger = {
        customer: (run, status, calls)
        for customer, run, status, calls in deployment.query(
            """SELECT DISTINCT ON (customer_id) customer_id, run_id, status, api_requests
                 FROM zuora.sync_runs WHERE customer_id = ANY(%s)
                ORDER BY customer_id, started_at DESC""",
            customers,
        )
    }
    assert set(rows) == set(customers)
    for customer in customers:
        row = rows[customer]
        assert (row["last_run_id"], row["last_status"], row["last_api_requests"]) == ledger[customer]
        assert ledger[customer][0] == run_id and row["health"] == "ok"

    # the customer's view links to its own task instances in the grid
    tis = {
        ti["rendered_map_index"]: ti["map_index"]
        for ti in api.task_instances(run_id)
        if ti["task_id"] == "customer_sync.list_workflows"
    }
    view = api.session.get(f"{page}/customers/{'page2'}", timeout=30)
    assert view.status_code == 200
    run_link = f"/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"
    assert f"{run_link}/tasks/customer_sync.list_workflows/mapped/{tis['page2']}" in view.text
    synced = api.session.get(f"{page}/api/customers/{'page2'}", timeout=30).json()
    assert synced["syncs"][0]["run_id"] == run_id and synced["syncs"][0]["map_index"] == tis["page2"]
