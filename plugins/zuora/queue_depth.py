"""The seed's queue depth: the task instances queued across Airflow, read from its REST API
through the ``airflow_api`` connection (``Thresholds.airflow_api_conn_id``). The monitor's
``queue_backlog`` check and its ``monitor.queued_task_instances`` gauge both read it here."""

from __future__ import annotations

import requests


def queued_task_instances(conn_id: str) -> int | None:
    """Queued task instances across Airflow; None when the connection is not configured."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:
        return None
    host = conn.host or ""
    base = host.rstrip("/") if "://" in host else f"http://{host}:{conn.port or 8080}"
    token = requests.post(
        f"{base}/auth/token", json={"username": conn.login, "password": conn.password}, timeout=10
    )
    token.raise_for_status()
    response = requests.get(
        f"{base}/api/v2/dags/~/dagRuns/~/taskInstances",
        params={"state": "queued", "limit": "1"},
        timeout=10,
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    response.raise_for_status()
    return int(response.json()["total_entries"])
