"""Workflow versions: ``GET /workflows/{id}/versions`` and the two import POSTs,
``POST /workflows/import`` (a new workflow) and ``POST /workflows/{id}/versions/import``
(a new version of a workflow).

An import's body is an export (``{"workflow", "tasks", "linkages"}``). What the simulator
assigns on import: the workflow id (new workflow only), the version id and number, the
timestamps, new task ids (linkages follow them) and linkages' ``source_workflow_id``;
everything else is stored and exported as sent.

``Idempotency-Key`` (1 to 255 characters, per tenant): a POST repeating a key whose first
request got 200 replays that answer when path (without the tenant prefix), query and body
are the same, and answers 409 otherwise; error answers do not use up a key. A tenant with
``remember_idempotency_keys: false`` forgets every key at once (Zuora does not say how long
it keeps them): each POST runs again. Every request
that reaches an import handler is recorded (``GET /_sim/tenants/{tid}/imports``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from starlette.responses import Response

from . import data, responses
from .state import Tenant

VERSION_NUMBER_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")  # fullmatch: ASCII digits, no trailing newline
MAX_IDEMPOTENCY_KEY = 255
TRIGGERS = ("ondemand_trigger", "callout_trigger", "scheduled_trigger")


@dataclass
class Stored:
    """The first 200 answer given under one Idempotency-Key."""

    fingerprint: str
    status: int
    body: bytes
    record: dict[str, Any]


# --- GET /workflows/{id}/versions -------------------------------------------------------


def list_versions(tenant: Tenant, wid: int | None, raw_id: str) -> Response:
    """Every version of a workflow, oldest (lowest version number) first."""
    wf = tenant.workflows.get(wid) if wid is not None else None
    if wf is None:
        return unknown_workflow(raw_id)
    return responses.json_response({"data": [data.version_item(wf, v) for v in wf.versions()]})


# --- the two imports --------------------------------------------------------------------


def import_workflow(request: Request, tenant: Tenant, raw_body: bytes) -> Response:
    """POST /workflows/import: a new workflow; version ``version`` or 0.0.1."""

    def run(record: dict[str, Any]) -> Response:
        q = request.query_params
        definition_id = q.get("workflow_definition_id")
        if definition_id is not None and not definition_id.isdigit():
            return responses.workflow_error(
                400, f"The input of workflow_definition_id '{definition_id}' is invalid."
            )
        problem = _check_version(q.get("version"), required=False) or _check_activate(q)
        if problem:
            return problem
        parsed = _parse_body(request, raw_body)
        if isinstance(parsed, Response):
            return parsed
        header, content = parsed
        wf = tenant.import_workflow(header, content, q.get("version") or "0.0.1", _activate(q))
        record.update(
            workflow_id=wf.id, version_id=wf.current.version_id, version=wf.current.version, created=True
        )
        return responses.json_response(data.list_item(wf))

    return _idempotent(request, tenant, "workflow", None, raw_body, run)


def import_version(
    request: Request, tenant: Tenant, wid: int | None, raw_id: str, raw_body: bytes
) -> Response:
    """POST /workflows/{id}/versions/import: a new version, above every existing one."""

    def run(record: dict[str, Any]) -> Response:
        q = request.query_params
        wf = tenant.workflows.get(wid) if wid is not None else None
        if wf is None:
            return unknown_workflow(raw_id)
        version = q.get("version")
        problem = _check_version(version, required=True) or _check_activate(q)
        if problem:
            return problem
        parsed = _parse_body(request, raw_body)
        if isinstance(parsed, Response):
            return parsed
        highest = wf.versions()[-1]
        if data.version_key(version) <= highest.key:
            return responses.workflow_error(
                400,
                f"The version '{version}' must be greater than any existing version number "
                f"of workflow {wf.id} (the highest is '{highest.version}').",
            )
        header, content = parsed
        new = tenant.import_version(wf, header, content, version, _activate(q))
        record.update(version_id=new.version_id, version=new.version, created=True)
        return responses.json_response(data.definition_item(wf))

    return _idempotent(request, tenant, "version", wid, raw_body, run)


def _idempotent(
    request: Request,
    tenant: Tenant,
    kind: str,
    target_id: int | None,
    raw_body: bytes,
    run: Callable[[dict[str, Any]], Response],
) -> Response:
    """Check the Idempotency-Key, replay or run, and record the request."""
    q = request.query_params
    key = request.headers.get("idempotency-key")
    record: dict[str, Any] = {
        "kind": kind,
        "workflow_id": target_id,
        "version_id": None,
        "version": q.get("version"),
        "activate": _flag(q.get("activate", "false")),
        "workflow_definition_id": q.get("workflow_definition_id"),
        "idempotency_key": key,
        "replay": False,
        "replay_of": None,
        "created": False,
    }
    stored = tenant.idempotency.get(key) if key and tenant.config.remember_idempotency_keys else None
    fingerprint = _fingerprint(request, raw_body)
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        response = responses.workflow_error(
            400, f"The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} characters long."
        )
    elif stored is not None and stored.fingerprint != fingerprint:
        response = responses.workflow_error(
            409, f"The Idempotency-Key '{key}' was already used for a different request.", code="conflict"
        )
    elif stored is not None:
        response = responses.json_response(stored.body, stored.status)
        record.update(
            {k: stored.record[k] for k in ("workflow_id", "version_id", "version", "activate")},
            replay=True,
            replay_of=stored.record["seq"],
        )
    else:
        response = run(record)
    record = tenant.record_import({**record, "status": response.status_code})
    if key and stored is None and response.status_code == 200:
        tenant.idempotency[key] = Stored(fingerprint, 200, bytes(response.body), record)
    return response


def _fingerprint(request: Request, raw_body: bytes) -> str:
    """Method, path without the tenant prefix, sorted query and (decoded) body."""
    path = re.sub(r"^/t/[^/]+(?=/)", "", request.url.path)
    query = sorted(parse_qsl(request.url.query, keep_blank_values=True))
    body = _decoded(request, raw_body)
    digest = hashlib.sha256(json.dumps([request.method, path, query]).encode())
    digest.update(raw_body if body is None else body)
    return digest.hexdigest()


# --- checks -----------------------------------------------------------------------------


def _check_version(version: str | None, required: bool) -> Response | None:
    if version is None:
        return responses.workflow_error(400, "The version query parameter is required.") if required else None
    if not VERSION_NUMBER_RE.fullmatch(version):
        return responses.workflow_error(
            400, f"The input of version '{version}' is invalid; use a number like 1.0.2."
        )
    return None


def _flag(value: str) -> bool | None:
    return {"true": True, "false": False}.get(value.lower())


def _check_activate(q) -> Response | None:
    if _flag(q.get("activate", "false")) is None:
        return responses.workflow_error(400, f"The input of activate '{q['activate']}' is invalid.")
    return None


def _activate(q) -> bool:
    return bool(_flag(q.get("activate", "false")))


def _decoded(request: Request, raw_body: bytes) -> bytes | None:
    """The body, gunzipped when sent with Content-Encoding: gzip (None if that fails)."""
    if "gzip" not in request.headers.get("content-encoding", "").lower():
        return raw_body
    try:
        return gzip.decompress(raw_body)
    except (OSError, EOFError):
        return None


def _parse_body(request: Request, raw_body: bytes) -> tuple[dict, dict] | Response:
    """(list header, content) from an export-shaped body, or a 400."""

    def bad(title: str) -> Response:
        return responses.workflow_error(400, title)

    body = _decoded(request, raw_body)
    if body is None:
        return bad("The request body is not valid gzip.")
    try:
        doc = json.loads(body)
    except ValueError:
        return bad("The request body is not valid JSON.")
    if not isinstance(doc, dict):
        return bad("The request body must be a JSON object with workflow, tasks and linkages.")
    workflow, tasks, linkages = doc.get("workflow"), doc.get("tasks"), doc.get("linkages", [])
    if not isinstance(workflow, dict):
        return bad("The request body needs a 'workflow' object.")
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        return bad("The request body needs a 'tasks' list of objects.")
    if not isinstance(linkages, list) or not all(isinstance(k, dict) for k in linkages):
        return bad("'linkages' must be a list of objects.")
    if not isinstance(workflow.get("name"), str) or not workflow["name"].strip():
        return bad("workflow.name is required.")
    for key in TRIGGERS:
        if not isinstance(workflow.get(key, False), bool):
            return bad(f"workflow.{key} must be true or false.")
    try:
        data.check_content(tasks, linkages)
    except ValueError as exc:
        return bad(str(exc))
    header = {
        "name": workflow["name"],
        "description": workflow.get("description", ""),
        **{key: workflow.get(key, False) for key in TRIGGERS},
        "interval": workflow.get("interval"),
        "timezone": workflow.get("timezone"),
        "priority": workflow.get("priority", "Medium"),
    }
    return header, {"workflow": workflow, "tasks": tasks, "linkages": linkages}


def unknown_workflow(raw_id: str) -> Response:
    return responses.workflow_error(404, f"Workflow definition '{raw_id}' is not found.", code="not_found")
