"""Small, realistic Zuora list items and exports (shaped like the API reference's examples)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

from zuora import warehouse

SECRET = "SIM-SECRET-"
BASE_TIME = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def stamp(when: datetime, fmt: str = "iso_z") -> str:
    """``when`` in one of the formats the Workflow API uses."""
    when = when.astimezone(UTC)
    if fmt == "iso_z":
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    if fmt == "iso_offset":
        local = when.astimezone(timezone(timedelta(hours=8)))
        return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}+08:00"
    if fmt == "utc_suffix":
        return when.strftime("%Y-%m-%d %H:%M:%S UTC")
    return when.strftime("%Y-%m-%d %H:%M:%S")


def list_item(
    workflow_id: int,
    *,
    name: str | None = None,
    updated: datetime | None = None,
    version: int = 1,
    status: str = "Active",
    timezone_name: str | None = "Eastern Time (US & Canada)",
    fmt: str = "iso_z",
    **extra,
) -> dict:
    """A GET /workflows item: camelCase, snake_case active_version and the misspelled key."""
    updated = updated or BASE_TIME + timedelta(hours=workflow_id)
    item = {
        "id": workflow_id,
        "name": name or f"Workflow {workflow_id}",
        "description": "",
        "status": status,
        "type": "Workflow::Setup",
        "ondemandTrigger": True,
        "calloutTrigger": False,
        "scheduledTrigger": True,
        "interval": "0 0 3 /1 * *",
        "timezone": timezone_name,
        "createdAt": stamp(BASE_TIME - timedelta(days=30), fmt),
        "updatedAt": stamp(updated, fmt),
        "active_version": {
            "id": workflow_id * 10 + version,
            "description": "",
            "version": f"0.0.{version}",
            "type": "Workflow::Setup",
            "status": "Active",
        },
        "latest_inactive_verisons": [],
    }
    item.update(extra)
    return item


def export(
    workflow_id: int, *, name: str | None = None, version: int = 1, tasks: int = 2, secret_suffix: str = "a1"
) -> dict:
    """A GET /workflows/{id}/export body with credentials in its Callout task."""
    callout = {
        "id": workflow_id * 100 + 1,
        "name": "Notify CRM",
        "action_type": "Callout",
        "parameters": {
            "url": f"https://api.crm-example.com/v2/accounts/{{{{Data.Account.Id}}}}?api_key={SECRET}q-{secret_suffix}&format=json",
            "method": "POST",
            "body_type": "raw",
            "raw_body": "",
            "datas": [{"key": "", "value": ""}],
            "headers": [
                {"key": "Content-Type", "value": "application/json"},
                {"key": "X-API-Key", "value": f"{SECRET}h-{secret_suffix}"},
                {"key": "Authorization", "value": f"Bearer {SECRET}b-{secret_suffix}"},
            ],
            "validation": {"zuora_call": "false", "status_codes": ["", "200"]},
            "retry_rules": {"retry_count": "3", "retry_window": "30", "current_retry_count": "0"},
            "authorization": {
                "type": "basic",
                "username": "svc_sync",
                "password": f"{SECRET}p-{secret_suffix}",
            },
            "strict_variables": "true",
            "validate_response": "false",
            "validation_scheme": "",
            "include_response_code": "true",
        },
        "object": None,
        "object_id": None,
        "call_type": "SOAP",
        "css": {"top": "160px", "left": "470px"},
        "concurrent_limit": 9999999,
        "tags": [""],
        "priority": "Medium",
        "assignment": [],
    }
    query = {
        "id": workflow_id * 100 + 2,
        "name": "Find overdue accounts",
        "action_type": "Query",
        "parameters": {
            "zoql": "select Id, Name from Account where Status = 'Active'",
            "output_format": "json",
            "client_secret": f"{SECRET}c-{secret_suffix}",
        },
        "object": None,
        "css": {"top": "40px", "left": "470px"},
        "priority": "Medium",
    }
    all_tasks = (
        [query, callout][:tasks]
        if tasks <= 2
        else [query, callout]
        + [
            {
                "id": workflow_id * 100 + n,
                "name": f"Delay {n}",
                "action_type": "Delay",
                "parameters": {"amount": "5", "unit": "minutes"},
            }
            for n in range(3, tasks + 1)
        ]
    )
    return {
        "workflow": {
            "id": workflow_id,
            "name": name or f"Workflow {workflow_id}",
            "description": "",
            "parameters": {"fields": []},
            "data": {},
            "original_workflow_id": None,
            "type": "Workflow::Setup",
            "ondemand_trigger": True,
            "callout_trigger": False,
            "scheduled_trigger": True,
            "interval": "0 0 3 /1 * *",
            "timezone": "Eastern Time (US & Canada)",
            "status": None,
            "css": {"top": "40px", "left": "30px"},
            "notifications": {},
            "call_type": "ASYNC",
            "priority": "Medium",
            "sync_trigger": False,
            "delete_ttl": 60,
            "task_summary": {},
            "version": f"0.0.{version}",
        },
        "tasks": copy.deepcopy(all_tasks),
        "linkages": [
            {
                "source_workflow_id": workflow_id,
                "source_task_id": None,
                "target_task_id": all_tasks[0]["id"],
                "linkage_type": "Start",
            }
        ]
        + [
            {
                "source_workflow_id": None,
                "source_task_id": a["id"],
                "target_task_id": b["id"],
                "linkage_type": "Success",
            }
            for a, b in pairwise(all_tasks)
        ],
    }


def sync(
    conn,
    run_id: str,
    customer_id: str,
    items: list[dict],
    *,
    complete: bool = True,
    exports: dict[int, dict] | None = None,
    failures: dict[int, Exception] | None = None,
    full_refresh: bool = False,
    key: bytes | None = None,
) -> dict:
    """One whole customer sync through the warehouse stages, as the DAG runs it.

    Exports come from ``exports`` (default: ``export(id)`` for each id asked for).
    """
    exports = exports or {}
    failures = failures or {}
    warehouse.start_sync_run(conn, run_id, customer_id, conn_id=f"zuora_{customer_id}", environment="sandbox")
    warehouse.stage_listing(conn, run_id, customer_id, items, complete)
    ids = warehouse.workflows_to_export(
        conn, run_id, customer_id, full_refresh=full_refresh, lookback=timedelta(days=7)
    )
    results = (
        (i, None, failures[i]) if i in failures else (i, exports.get(i) or export(i), None) for i in ids
    )
    export_counts = warehouse.stage_exports(conn, run_id, customer_id, results, encryption_key=key)
    warehouse.validate_staged(conn, run_id, customer_id)
    counts = warehouse.merge_customer(
        conn, run_id, customer_id, environment="sandbox", conn_id=f"zuora_{customer_id}"
    )
    warehouse.add_sync_counts(conn, run_id, customer_id, **export_counts)
    warehouse.finish_sync_run(conn, run_id, customer_id, status="success", **counts)
    return {**export_counts, **counts, "to_export": ids}
