"""The admin API under ``/_sim``: tenants, workflows, scripted faults, tokens, imports and stats.

No authentication; admin calls are not counted in the API stats and get no latency or faults.
Errors answer ``{"error": "..."}`` with 400 (bad input), 404 (unknown tenant or workflow)
or 409 (duplicate).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import JSONResponse, Response

from . import faults
from .config import ConfigError
from .state import Registry, Tenant

router = APIRouter(prefix="/_sim")


def _registry(request: Request) -> Registry:
    return request.app.state.registry


def _tenant(request: Request, tenant_id: str) -> Tenant:
    tenant = _registry(request).tenants.get(tenant_id)
    if tenant is None:
        raise HTTPException(404, f"unknown tenant {tenant_id!r}")
    return tenant


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return await request.json()
    except ValueError as exc:
        raise HTTPException(400, f"body is not JSON: {exc}") from exc


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def tenant_info(request: Request, tenant: Tenant) -> dict[str, Any]:
    """What a caller needs to use a tenant: credentials, base URLs and its config."""
    base = str(request.base_url).rstrip("/")
    return {
        "tenant_id": tenant.tenant_id,
        "client_id": tenant.config.client_id,
        "client_secret": tenant.config.client_secret,
        "base_url": base,
        "scoped_base_url": f"{base}/t/{tenant.tenant_id}",
        "workflow_count": len(tenant.workflows),
        "script_pending": len(tenant.script),
        "config": tenant.config.to_dict(),
    }


@router.get("/health")
async def health(request: Request) -> dict:
    return {"status": "ok", "tenants": len(_registry(request).tenants)}


@router.get("/tenants")
async def list_tenants(request: Request) -> list:
    return [tenant_info(request, t) for t in _registry(request).tenants.values()]


@router.post("/tenants", status_code=201)
async def create_tenant(request: Request):
    try:
        tenant = _registry(request).add_tenant(await _body(request))
    except ConfigError as exc:
        return _error(409 if "exists" in str(exc) or "already" in str(exc) else 400, str(exc))
    return JSONResponse(tenant_info(request, tenant), status_code=201)


@router.get("/tenants/{tenant_id}")
async def get_tenant(request: Request, tenant_id: str) -> dict:
    return tenant_info(request, _tenant(request, tenant_id))


@router.patch("/tenants/{tenant_id}")
async def patch_tenant(request: Request, tenant_id: str):
    tenant = _tenant(request, tenant_id)
    changes = await _body(request)
    if "workflows" in changes:
        return _error(400, "use POST /_sim/tenants/{id}/generate to change workflows")
    try:
        _registry(request).update_tenant(tenant, changes)
    except (ConfigError, TypeError, ValueError) as exc:
        return _error(400, str(exc))
    return tenant_info(request, tenant)


@router.delete("/tenants/{tenant_id}", status_code=204)
async def delete_tenant(request: Request, tenant_id: str) -> Response:
    _tenant(request, tenant_id)
    _registry(request).delete_tenant(tenant_id)
    return Response(status_code=204)


@router.post("/tenants/{tenant_id}/generate")
async def generate(request: Request, tenant_id: str) -> dict:
    """Replace the tenant's workflows with ``count`` generated ones (optional ``seed``)."""
    tenant = _tenant(request, tenant_id)
    body = await _body(request)
    ids = tenant.generate(int(body.get("count", 0)), body.get("seed"))
    return {"count": len(ids), "ids": ids}


@router.post("/tenants/{tenant_id}/revoke_tokens")
async def revoke_tokens(request: Request, tenant_id: str) -> dict:
    _tenant(request, tenant_id)
    return {"revoked": _registry(request).revoke_tokens(tenant_id)}


# --- script -----------------------------------------------------------------------------


@router.get("/tenants/{tenant_id}/script")
async def get_script(request: Request, tenant_id: str) -> list:
    return list(_tenant(request, tenant_id).script)


@router.put("/tenants/{tenant_id}/script")
@router.post("/tenants/{tenant_id}/script")
async def set_script(request: Request, tenant_id: str):
    """PUT replaces the queue, POST appends to it. Body: a list of items or {"faults": [...]}."""
    tenant = _tenant(request, tenant_id)
    body = await _body(request)
    items = body.get("faults", []) if isinstance(body, dict) else body
    try:
        clean = faults.validate_script(items)
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))
    if request.method == "PUT":
        tenant.script.clear()
    tenant.script.extend(clean)
    return list(tenant.script)


@router.delete("/tenants/{tenant_id}/script", status_code=204)
async def clear_script(request: Request, tenant_id: str) -> Response:
    _tenant(request, tenant_id).script.clear()
    return Response(status_code=204)


# --- workflows --------------------------------------------------------------------------


@router.get("/tenants/{tenant_id}/workflows")
async def list_workflows(request: Request, tenant_id: str) -> list:
    tenant = _tenant(request, tenant_id)
    if request.query_params.get("ids_only") in ("1", "true"):
        return sorted(tenant.workflows)
    return [tenant.workflows[i].truth() for i in sorted(tenant.workflows)]


@router.post("/tenants/{tenant_id}/workflows", status_code=201)
async def add_workflow(request: Request, tenant_id: str):
    tenant = _tenant(request, tenant_id)
    try:
        wf = tenant.add_workflow(dict(await _body(request)))
    except (ConfigError, ValueError, TypeError) as exc:
        return _error(409 if "exists" in str(exc) else 400, str(exc))
    return JSONResponse(wf.truth(), status_code=201)


def _workflow(tenant: Tenant, workflow_id: int):
    wf = tenant.workflows.get(workflow_id)
    if wf is None:
        raise HTTPException(404, f"unknown workflow {workflow_id}")
    return wf


@router.get("/tenants/{tenant_id}/workflows/{workflow_id}")
async def get_workflow(request: Request, tenant_id: str, workflow_id: int) -> dict:
    return _workflow(_tenant(request, tenant_id), workflow_id).truth()


@router.patch("/tenants/{tenant_id}/workflows/{workflow_id}")
async def patch_workflow(request: Request, tenant_id: str, workflow_id: int):
    tenant = _tenant(request, tenant_id)
    _workflow(tenant, workflow_id)
    try:
        wf = tenant.update_workflow(workflow_id, dict(await _body(request)))
    except (ConfigError, ValueError, TypeError) as exc:
        return _error(400, str(exc))
    return wf.truth()


@router.delete("/tenants/{tenant_id}/workflows/{workflow_id}", status_code=204)
async def delete_workflow(request: Request, tenant_id: str, workflow_id: int) -> Response:
    tenant = _tenant(request, tenant_id)
    _workflow(tenant, workflow_id)
    del tenant.workflows[workflow_id]
    return Response(status_code=204)


@router.get("/tenants/{tenant_id}/workflows/{workflow_id}/export")
async def expected_export(request: Request, tenant_id: str, workflow_id: int):
    """The export the API would return, without auth, limits, faults or stats."""
    tenant = _tenant(request, tenant_id)
    wf = _workflow(tenant, workflow_id)
    version = wf.version_named(request.query_params.get("version"))
    if version is None:
        return _error(404, "unknown version")
    body = tenant.export_body(wf, version, _registry(request).cache)
    return Response(body, media_type="application/json")


# --- imports ----------------------------------------------------------------------------


@router.get("/tenants/{tenant_id}/imports")
async def list_imports(request: Request, tenant_id: str) -> list:
    """Every request that reached an import endpoint, oldest first (see versions.py)."""
    return list(_tenant(request, tenant_id).imports)


# --- task usage -------------------------------------------------------------------------


@router.get("/tenants/{tenant_id}/usage")
async def expected_usage(request: Request, tenant_id: str):
    """What ``GET /workflows/metrics.json`` would answer now for these ``startDate`` and
    ``endDate`` (``metrics`` defaults to taskCount), without auth, limits, faults, stats or a
    record; 400 as the API for bad parameters. The tenant's ``metrics_status`` is ignored."""
    from .usage import parse_query, tasks

    tenant = _tenant(request, tenant_id)
    parsed = parse_query({"metrics": "taskCount", **request.query_params})
    if isinstance(parsed, Response):
        return parsed
    now = datetime.now(UTC)
    return {
        "metrics": [
            {"date": day.isoformat(), "values": {"taskCount": n}} for day, n in tasks(tenant, *parsed, now)
        ]
    }


@router.get("/tenants/{tenant_id}/usage/requests")
async def usage_requests(request: Request, tenant_id: str) -> list:
    """Every request that reached ``GET /workflows/metrics.json`` (so not 401/403/429 or
    scripted faults, but ``metrics_status`` answers and 400s), oldest first: ``seq``,
    ``query`` (its parameters as sent) and ``status``."""
    return list(_tenant(request, tenant_id).usage_requests)


# --- stats ------------------------------------------------------------------------------


@router.get("/stats")
async def all_stats(request: Request) -> dict:
    return _registry(request).stats()


@router.post("/stats/reset", status_code=204)
async def reset_all_stats(request: Request) -> Response:
    _registry(request).reset_stats()
    return Response(status_code=204)


@router.get("/tenants/{tenant_id}/stats")
async def tenant_stats(request: Request, tenant_id: str) -> dict:
    tenant = _tenant(request, tenant_id)
    return tenant.stats.as_dict(tenant.in_flight)


@router.post("/tenants/{tenant_id}/stats/reset", status_code=204)
async def reset_tenant_stats(request: Request, tenant_id: str) -> Response:
    _registry(request).reset_stats(_tenant(request, tenant_id))
    return Response(status_code=204)
