"""A client for Airflow's REST API v2 as the UI uses it: a JWT from ``/auth/token`` for the
simple auth manager's admin, runs triggered and awaited, task instances and their tries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

SYNC_DAG = "zuora_workflow_sync"


class Api:
    """Airflow's REST API v2 with the admin's JWT (from the cluster's cluster.json)."""

    def __init__(self, info: dict):
        self.base = info["api_url"]
        password = json.loads(Path(info["password_file"]).read_text())["admin"]
        token = requests.post(
            f"{self.base}/auth/token", timeout=30, json={"username": "admin", "password": password}
        )
        token.raise_for_status()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = self.session.request(method, f"{self.base}/api/v2{path}", timeout=60, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else {}

    def trigger(self, conf: dict, dag_id: str = SYNC_DAG) -> str:
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def run(self, run_id: str, dag_id: str = SYNC_DAG) -> dict:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def wait(self, run_id: str, timeout: float = 240, dag_id: str = SYNC_DAG) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run(run_id, dag_id)["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(0.5)
        raise TimeoutError(f"run {run_id} not finished within {timeout} s")

    def task_instances(self, run_id: str, dag_id: str = SYNC_DAG) -> list[dict]:
        found: list[dict] = []
        while True:  # pages of at most [api] maximum_page_limit
            page = self.call(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(found)},
            )
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def tries(self, run_id: str, task_id: str, map_index: int) -> list[dict]:
        return self.call(
            "GET", f"/dags/{SYNC_DAG}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        )["task_instances"]
