"""The HTTP app: the Zuora endpoints (/oauth/token, /workflows, /workflows/{id}/export,
/workflows/{id}/versions, POST /workflows/import, POST /workflows/{id}/versions/import,
/workflows/metrics.json), the request pipeline every API call goes through, and the outer
envelope (request ids, gzip).

Each endpoint is served at the root (the tenant is known from the credentials or token, as on
a real Zuora host) and under ``/t/{tenant_id}`` (a per-tenant base URL; another tenant's
credentials or token are unknown there).

Pipeline of an API call: authenticate (401) -> rate window (429 code 70) -> permission (403:
Workflow View Access, or Manage Access for the imports) -> concurrency (429 code 50000070)
-> latency -> scripted/random fault -> handler.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, HTTPException, Request
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response

from . import admin, data, faults, responses, usage, versions
from .config import Limits
from .state import Registry, Tenant

TRACK_ID_RE = re.compile(r"^[\x20-\x7e]{1,64}$")
VERSION_RE = re.compile(r"latest|[0-9]+\.[0-9]+\.[0-9]+")  # fullmatch: no trailing newline


def create_app(registry: Registry) -> Callable:
    """The ASGI app: FastAPI routes wrapped in gzip and the Zuora header envelope."""
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    api.state.registry = registry
    api.include_router(admin.router)
    api.add_exception_handler(HTTPException, _http_error)
    for prefix in ("", "/t/{tenant_id}"):
        api.add_api_route(prefix + "/oauth/token", token_endpoint, methods=["POST"])
        api.add_api_route(prefix + "/workflows", list_endpoint, methods=["GET"])
        api.add_api_route(prefix + "/workflows/metrics.json", metrics_endpoint, methods=["GET"])
        api.add_api_route(prefix + "/workflows/{workflow_id}/export", export_endpoint, methods=["GET"])
        api.add_api_route(prefix + "/workflows/{workflow_id}/versions", versions_endpoint, methods=["GET"])
        api.add_api_route(prefix + "/workflows/import", import_endpoint, methods=["POST"])
        api.add_api_route(
            prefix + "/workflows/{workflow_id}/versions/import", version_import_endpoint, methods=["POST"]
        )
    return EnvelopeMiddleware(GZipMiddleware(api, minimum_size=1000, compresslevel=1))


class EnvelopeMiddleware:
    """Adds Zuora-Request-Id to every response, echoes a valid Zuora-Track-Id, and keeps
    uvicorn's own ``send`` in the scope so a fault can reach the connection."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        scope[faults.RAW_SEND_KEY] = send
        track = next((v for k, v in scope["headers"] if k == b"zuora-track-id"), None)
        if track is not None and (
            not TRACK_ID_RE.match(track.decode("latin-1")) or any(c in track for c in b":;\"'")
        ):
            track = None

        async def send_with_ids(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"Zuora-Request-Id", str(uuid.uuid4()).encode()))
                if track is not None:
                    headers.append((b"Zuora-Track-Id", track))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_ids)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return responses.json_response({"error": exc.detail}, exc.status_code)


def registry_of(request: Request) -> Registry:
    return request.app.state.registry


# --- /oauth/token ---------------------------------------------------------------------


async def token_endpoint(request: Request, tenant_id: str | None = None) -> Response:
    """Client-credentials token. Per-(tenant, client IP) limit with X-RateLimit-*-minute."""
    reg = registry_of(request)
    now = time.monotonic()
    hinted = reg.tenants.get(tenant_id) if tenant_id is not None else None
    if tenant_id is not None and hinted is None:
        return _unknown_tenant(reg, "token")
    form = {
        k: v[0]
        for k, v in parse_qs(
            (await request.body()).decode("utf-8", "replace"), keep_blank_values=True
        ).items()
    }
    tenant = reg.by_client_id(form.get("client_id", ""))
    if hinted is not None and tenant is not hinted:
        tenant = None
    owner = tenant or hinted
    if tenant is not None:
        await _latency(tenant)
    limits = tenant.config.limits if tenant else Limits()
    window = reg.token_window(tenant, request.client.host if request.client else "?")
    window.hit(limits.token_window_seconds, now)
    limit_headers = {
        "X-RateLimit-Limit-minute": str(limits.token_requests_per_minute),
        "X-RateLimit-Remaining-minute": str(max(0, limits.token_requests_per_minute - window.count)),
    }
    if window.count > limits.token_requests_per_minute:
        retry = max(1, math.ceil(window.reset_in(limits.token_window_seconds, now)))
        response = responses.json_response(
            {"message": "API rate limit exceeded"}, 429, {"Retry-After": str(retry)}
        )
    elif "authorization" in request.headers:
        response = responses.json_response(
            {
                "error": "invalid_request",
                "error_description": "Do not send an Authorization header when requesting a token",
            },
            400,
        )
    elif "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        response = responses.json_response(
            {
                "error": "invalid_request",
                "error_description": "Content-Type must be application/x-www-form-urlencoded",
            },
            400,
        )
    elif form.get("grant_type") != "client_credentials":
        response = responses.json_response(
            {
                "error": "unsupported_grant_type",
                "error_description": f"Unsupported grant type: {form.get('grant_type', '')}",
            },
            400,
        )
    elif tenant is None or form.get("client_secret") != tenant.config.client_secret:
        response = responses.json_response(
            {"error": "invalid_client", "error_description": "Bad client credentials"}, 401
        )
    else:
        response = await _faulted(request, tenant, "token", lambda: _mint(reg, tenant, now))
    if not _dropped(response):
        response.headers.update(limit_headers)
    _record(reg, owner, "token", response)
    return response


def _mint(reg: Registry, tenant: Tenant, now: float) -> Response:
    token = reg.mint_token(tenant, now)
    digest = hashlib.sha256(f"scope:{tenant.tenant_id}:{tenant.config.seed}".encode()).hexdigest()
    scope = (
        f"user.{digest[:32]} entity.{uuid.UUID(digest[32:64])} service.workflow.read "
        f"platform.write tenant.{int(digest[:6], 16) % 90000 + 10000}"
    )
    return responses.json_response(
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": tenant.config.token_ttl,
            "scope": scope,
            "jti": token[:31] + format((int(token[31], 16) + 1) % 16, "x"),
        }
    )


# --- /workflows and /workflows/{id}/export -----------------------------------------------


async def list_endpoint(request: Request, tenant_id: str | None = None) -> Response:
    return await serve_api(request, "list", tenant_id, lambda t: list_workflows(request, t))


async def metrics_endpoint(request: Request, tenant_id: str | None = None) -> Response:
    return await serve_api(
        request, "metrics", tenant_id, lambda t: usage.metrics_endpoint(t, request.query_params)
    )


async def export_endpoint(request: Request, workflow_id: str, tenant_id: str | None = None) -> Response:
    wid = int(workflow_id) if workflow_id.isdigit() else None
    return await serve_api(
        request, "export", tenant_id, lambda t: export_workflow(request, t, wid, workflow_id), wid
    )


async def versions_endpoint(request: Request, workflow_id: str, tenant_id: str | None = None) -> Response:
    wid = int(workflow_id) if workflow_id.isdigit() else None
    return await serve_api(
        request, "versions", tenant_id, lambda t: versions.list_versions(t, wid, workflow_id), wid
    )


async def import_endpoint(request: Request, tenant_id: str | None = None) -> Response:
    body = await request.body()
    return await serve_api(
        request, "import", tenant_id, lambda t: versions.import_workflow(request, t, body), manage=True
    )


async def version_import_endpoint(
    request: Request, workflow_id: str, tenant_id: str | None = None
) -> Response:
    wid = int(workflow_id) if workflow_id.isdigit() else None
    body = await request.body()
    return await serve_api(
        request,
        "versions_import",
        tenant_id,
        lambda t: versions.import_version(request, t, wid, workflow_id, body),
        wid,
        manage=True,
    )


def list_workflows(request: Request, tenant: Tenant) -> Response:
    """One page of workflow definitions, newest (highest id) first."""
    q = request.query_params
    limits = tenant.config.limits
    try:
        page = int(q.get("page", 1))
        page_length = int(q.get("page_length", limits.default_page_length))
    except ValueError:
        return responses.workflow_error(400, "The input of page or page_length is invalid.")
    if page < 1 or page_length < 1:
        return responses.workflow_error(400, "page and page_length must be positive integers.")
    if page_length > limits.max_page_length:
        return responses.workflow_error(
            400, f"page_length must be less than or equal to {limits.max_page_length}."
        )
    filters, items = {}, tenant.sorted_workflows()
    for param, key in (
        ("ondemand_trigger", "ondemand_trigger"),
        ("callout_trigger", "callout_trigger"),
        ("scheduled_trigger", "scheduled_trigger"),
    ):
        if param in q:
            wanted = q[param].lower()
            if wanted not in ("true", "false"):
                return responses.workflow_error(400, f"The input of {param} is invalid.")
            filters[param] = wanted
            items = [wf for wf in items if wf.header[key] == (wanted == "true")]
    for param in ("name", "interval"):
        if param in q:
            filters[param] = q[param]
            items = [wf for wf in items if wf.header[param] == q[param]]
    start = (page - 1) * page_length
    pagination = {"page": page, "page_length": page_length}
    if start + page_length < len(items):
        base = str(request.base_url).rstrip("/") + request.url.path
        pagination["next_page"] = f"{base}?" + urlencode(
            {"page": page + 1, "page_length": page_length, **filters}
        )
    body = {
        "data": [data.list_item(wf) for wf in items[start : start + page_length]],
        "pagination": pagination,
    }
    return responses.json_response(body)


def export_workflow(request: Request, tenant: Tenant, wid: int | None, raw_id: str) -> Response:
    """The export of one version (the active one by default; ``version`` = x.y.z, or
    ``latest`` = the highest-numbered one)."""
    if wid in tenant.config.faults.failing_export_ids:
        return responses.server_error(500, f"Failed to export workflow {wid}: Internal Server Error")
    wf = tenant.workflows.get(wid) if wid is not None else None
    if wf is None:
        return versions.unknown_workflow(raw_id)
    wanted = request.query_params.get("version")
    if wanted is not None and not VERSION_RE.fullmatch(wanted):
        return responses.workflow_error(400, f"The input of version '{wanted}' is invalid.")
    version = wf.version_named(wanted)
    if version is None:
        return responses.workflow_error(404, f"Workflow version '{wanted}' is not found.", body_status=400)
    return responses.json_response(tenant.export_body(wf, version, registry_of(request).cache))


async def serve_api(
    request: Request,
    endpoint: str,
    tenant_id: str | None,
    handler: Callable[[Tenant], Response],
    workflow_id: int | None = None,
    manage: bool = False,
) -> Response:
    """Authentication, limits, latency and faults around one API handler; exact stats.
    ``manage``: the call needs Workflow Manage Access (tenant flag ``manage_access``)."""
    reg = registry_of(request)
    hinted = reg.tenants.get(tenant_id) if tenant_id is not None else None
    if tenant_id is not None and hinted is None:
        return _unknown_tenant(reg, endpoint)
    token = _bearer(request)
    record, valid = reg.lookup_token(token)
    tenant = reg.tenants.get(record.tenant_id) if record else None
    if hinted is not None and tenant is not hinted:
        tenant, valid = hinted, False
    if not valid or tenant is None:
        response = responses.unauthorized()
        if tenant is not None:
            response.headers.update(tenant.rate_headers(time.monotonic()))
        _record(reg, tenant, endpoint, response)
        return response
    now = time.monotonic()
    limits = tenant.config.limits
    if tenant.hit_rate_window(now):
        retry = max(1, math.ceil(tenant.window.reset_in(limits.rate_window_seconds, now)))
        response = responses.rate_limited(retry)
    elif tenant.config.forbidden or (manage and not tenant.config.manage_access):
        response = responses.forbidden("Workflow Manage Access" if manage else "Workflow View Access")
    elif tenant.in_flight >= limits.concurrency_limit:
        response = responses.concurrency_limited(limits.concurrency_retry_after)
    else:
        tenant.in_flight += 1
        tenant.stats.max_in_flight = max(tenant.stats.max_in_flight, tenant.in_flight)
        try:
            await _latency(tenant)
            response = await _faulted(request, tenant, endpoint, lambda: handler(tenant), workflow_id, token)
        except BaseException:
            tenant.in_flight -= 1
            raise
        response = InFlightResponse(response, tenant)
    if not _dropped(response):
        response.headers.update(tenant.rate_headers(time.monotonic()))
    _record(reg, tenant, endpoint, response)
    return response


class InFlightResponse(Response):
    """Sends the wrapped response; the request stops being in flight once it is sent."""

    def __init__(self, inner: Response, tenant: Tenant):
        self.inner, self.tenant = inner, tenant
        self.status_code, self.background = inner.status_code, None

    @property
    def headers(self):
        return self.inner.headers

    @property
    def dropped(self) -> bool:
        return isinstance(self.inner, faults.DroppedResponse)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.tenant.in_flight -= 1


async def _faulted(
    request: Request,
    tenant: Tenant,
    endpoint: str,
    handler: Callable[[], Response],
    workflow_id: int | None = None,
    token: str | None = None,
) -> Response:
    """Run the handler, or act out the fault this request draws."""
    fault = faults.take_fault(tenant, endpoint, workflow_id)
    if fault is None:
        return handler()
    tenant.stats.faults[fault.kind] += 1
    if fault.kind == "unauthorized" and fault.params.get("revoke") and token:
        registry_of(request).tokens[token].revoked = True
    if fault.params.get("performed"):
        handler()  # done, and its answer lost
    response = faults.immediate_response(fault, tenant)
    if response is not None:
        return response
    await faults.delay(fault)
    if fault.kind == "reset":
        return await faults.reset_connection(
            request.scope, fault.params.get("phase", "connect"), handler().body
        )
    if fault.kind == "malformed":
        return faults.malformed(handler())
    return handler()


async def _latency(tenant: Tenant) -> None:
    f = tenant.config.faults
    delay_ms = f.latency_ms + (tenant.rng.uniform(0, f.jitter_ms) if f.jitter_ms else 0)
    if delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _dropped(response: Response) -> bool:
    return isinstance(response, faults.DroppedResponse) or getattr(response, "dropped", False)


def _record(reg: Registry, tenant: Tenant | None, endpoint: str, response: Response) -> None:
    status = "reset" if _dropped(response) else response.status_code
    (tenant.stats if tenant else reg.unknown_stats).record(endpoint, status)


def _unknown_tenant(reg: Registry, endpoint: str) -> Response:
    response = responses.workflow_error(404, "Not Found", code="not_found")
    reg.unknown_stats.record(endpoint, 404)
    return response
