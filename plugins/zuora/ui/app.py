"""The Zuora sync page's FastAPI app, mounted by Airflow's api-server at ``URL_PREFIX``.

    GET /                          the fleet: one row per customer, failing and stale first
    GET /dag/{dag_id}              the DAG tab: the fleet on the sync DAG, a link on the others
    GET /customers/{customer_id}   one customer's own view
    GET /api/fleet                 the fleet as JSON (same filters, ``page_size`` up to 1,000)
    GET /api/customers/{id}        one customer as JSON

Airflow gives a mounted app no authentication: every route asks for the Airflow user (the
UI's ``_token`` cookie or a Bearer JWT, ``airflow.api_fastapi.core_api.security.get_user``:
anonymous 401) and then, through Airflow's own ``requires_access_dag`` (which names the DAG's
team, if any), the configured auth manager whether that user may read the DAG
``zuora_workflow_sync`` (403 if not). Its data comes from the warehouse only, through
``zuora.ui.reading`` (a read-only login, read-only transactions, a few connections at most;
a customer's map index in a run, for links to the grid, is in ``zuora.sync_runs``), never from
Airflow's metadata database.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote, urlencode

# The api-server's own modules: this app runs there, never in a task (zuora.ui.plugin imports
# it only when the api-server asks for the plugin's FastAPI apps).
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, Response

from zuora.ui import page, queries, reading

log = logging.getLogger(__name__)

DAG_ID = "zuora_workflow_sync"
TASK_GROUP = "customer_sync"
STAGES = ("list_workflows", "export_workflows", "validate", "upsert")
URL_PREFIX = "/zuora-sync"
# The page only shows itself (inline styles, one inline script with a nonce, inline SVG) and
# only inside Airflow's UI (same origin).
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "script-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)


_may_read_the_sync_dag = requires_access_dag(method="GET", param_dag_id=DAG_ID)


def airflow_user(request: Request, user: Annotated[BaseUser, Depends(get_user)]) -> BaseUser:
    """The logged-in Airflow user (401 when anonymous, by ``get_user``) who may read the sync
    DAG, as the configured auth manager says when asked as Airflow's own routes ask it, with
    the DAG's team (403 when not)."""
    try:
        _may_read_the_sync_dag(request, user)
    except HTTPException as refused:
        if refused.status_code != 403:
            raise
        raise HTTPException(status_code=403, detail=f"not allowed to read the DAG {DAG_ID}") from None
    return user


User = Annotated[BaseUser, Depends(airflow_user)]


def create_app() -> FastAPI:
    app = FastAPI(title="Zuora sync", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def errors(request: Request, error: HTTPException) -> Response:
        """The JSON routes answer as FastAPI does; the pages with a page (same status): a
        link to Airflow's login for 401, the reason otherwise."""
        if request.url.path.startswith(_base(request) + "/api/"):
            return await http_exception_handler(request, error)
        login = None
        if error.status_code == 401:
            try:
                login = get_auth_manager().get_url_login()
            except Exception:
                login = f"{_airflow_root(request)}/"
        nonce = secrets.token_urlsafe(16)
        html = page.error_html(error.status_code, str(error.detail), login, nonce)
        response = _html(html, nonce)
        response.status_code = error.status_code
        return response

    # The routes that read the warehouse hand their work to ``reading.run``: a few at a time.
    @app.get("/", response_class=HTMLResponse)
    async def fleet_page(
        request: Request,
        user: User,
        q: str = "",
        environment: str = "",
        health: str = "",
        page_number: Annotated[int, Query(alias="page", ge=1)] = 1,
    ) -> HTMLResponse:
        query = _fleet_query(q, environment, health, page_number, queries.PAGE_SIZE)
        return await reading.run(_fleet_page, request, query)

    @app.get("/dag/{dag_id}", response_class=HTMLResponse)
    async def dag_tab(request: Request, user: User, dag_id: str) -> HTMLResponse:
        """The tab Airflow 3.3 shows on every DAG's page: the fleet on the sync DAG's."""
        if dag_id == DAG_ID:
            return await reading.run(_fleet_page, request, queries.FleetQuery())
        nonce = secrets.token_urlsafe(16)
        link = f"{_airflow_root(request)}/dags/{DAG_ID}/plugin/zuora-sync-dag"
        return _html(page.other_dag_html(dag_id, DAG_ID, link, nonce), nonce)

    @app.get("/customers/{customer_id:path}", response_class=HTMLResponse)
    async def customer_page(request: Request, user: User, customer_id: str) -> HTMLResponse:
        return await reading.run(_customer_page, request, customer_id)

    @app.get("/api/fleet")
    async def fleet_json(
        user: User,
        q: str = "",
        environment: str = "",
        health: str = "",
        page_number: Annotated[int, Query(alias="page", ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=queries.MAX_PAGE_SIZE)] = queries.PAGE_SIZE,
    ) -> Response:
        return await reading.run(_fleet_json, _fleet_query(q, environment, health, page_number, page_size))

    @app.get("/api/customers/{customer_id:path}")
    async def customer_json(request: Request, user: User, customer_id: str) -> Response:
        return await reading.run(_customer_json, request, customer_id)

    return app


def _fleet_query(
    q: str, environment: str, health: str, page_number: int, page_size: int
) -> queries.FleetQuery:
    if environment and environment not in queries.ENVIRONMENTS:
        raise HTTPException(status_code=422, detail=f"environment must be one of {queries.ENVIRONMENTS}")
    if health and health not in queries.HEALTH_ORDER:
        raise HTTPException(status_code=422, detail=f"status must be one of {queries.HEALTH_ORDER}")
    return queries.FleetQuery(
        q=q.strip()[:200], environment=environment, health=health, page=page_number, page_size=page_size
    )


def _fleet_page(request: Request, query: queries.FleetQuery) -> HTMLResponse:
    data, days, usage = _read(lambda conn: _fleet(conn, query))
    for row in data["customers"]:
        row["href"] = _customer_href(request, row["customer_id"])
        row["run_href"] = _run_href(request, row["last_run_id"]) if row["last_run_id"] else None
    for row in usage["top_consumers"] + usage["switched_off"]:
        row["href"] = _customer_href(request, row["customer_id"])
    nonce = secrets.token_urlsafe(16)
    links = _fleet_links(request, query, data["total"])
    return _html(page.fleet_html(data, days, usage, query, links, datetime.now(UTC), nonce), nonce)


def _fleet_json(query: queries.FleetQuery) -> Response:
    data, days, usage = _read(lambda conn: _fleet(conn, query))
    return _json({**data, "page": query.page, "page_size": query.page_size, "days": days, **usage})


def _fleet(conn, query: queries.FleetQuery) -> tuple:
    return queries.fleet(conn, query), queries.fleet_days(conn), queries.fleet_usage(conn)


def _customer_page(request: Request, customer_id: str) -> HTMLResponse:
    data = _customer(request, customer_id)
    nonce = secrets.token_urlsafe(16)
    links = {
        "fleet": _base(request) + "/",
        "json": _base(request) + "/api/customers/" + quote(customer_id, safe=""),
    }
    return _html(page.customer_html(data, links, datetime.now(UTC), nonce), nonce)


def _customer_json(request: Request, customer_id: str) -> Response:
    data = _customer(request, customer_id)
    for sync in data["syncs"]:
        sync.pop("task_hrefs", None)
    return _json(data)


def _customer(request: Request, customer_id: str) -> dict[str, Any]:
    data = _read(lambda conn: queries.customer(conn, customer_id))
    if data is None:
        raise HTTPException(status_code=404, detail="no such customer")
    for sync in data["syncs"]:  # map_index (and task_id): recorded by the customer's list stage
        run = _run_href(request, sync["run_id"])
        sync["run_href"] = run
        sync["task_hrefs"] = _task_hrefs(run, sync["map_index"], sync["task_id"])
    return data


def _task_hrefs(run: str, map_index: int | None, task_id: str | None) -> list[tuple[str, str]]:
    """Links to the customer's task instances in the run: its group's four tasks, or the batch
    task that synced it (``task_id`` set): its log and its details; none when the DAG did not
    sync it. A mapped task instance's page in Airflow 3.3's UI,
    ``/dags/<dag>/runs/<run>/tasks/<task>/mapped/<index>``, opens on its log (the URL Airflow's
    own ``TaskInstance.log_url`` gives, without a try number: the latest try); ``/details``
    is its details tab."""
    if map_index is None:
        return []
    if task_id:
        batch = f"{run}/tasks/{quote(task_id, safe='')}/mapped/{map_index}"
        return [("batch log", batch), ("details", f"{batch}/details")]
    return [(stage.split("_")[0], f"{run}/tasks/{TASK_GROUP}.{stage}/mapped/{map_index}") for stage in STAGES]


def _read(work):
    """``work(conn)`` in one read-only transaction on the warehouse (``reading.connection``);
    503 if it cannot be read (the reason is logged here, never shown)."""
    import psycopg

    try:
        with reading.connection() as conn:
            return work(conn)
    except psycopg.Error:
        log.exception("the Zuora sync page could not read the warehouse")
        raise HTTPException(status_code=503, detail="the warehouse cannot be read now") from None


def _base(request: Request) -> str:
    """This app's path as the browser sees it (the api-server's root path + the prefix)."""
    return request.scope.get("root_path", "").rstrip("/")


def _airflow_root(request: Request) -> str:
    return _base(request).removesuffix(URL_PREFIX)


def _run_href(request: Request, run_id: str) -> str:
    return f"{_airflow_root(request)}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"


def _customer_href(request: Request, customer_id: str) -> str:
    return f"{_base(request)}/customers/{quote(customer_id, safe='')}"


def _fleet_links(request: Request, query: queries.FleetQuery, total: int) -> dict[str, Any]:
    base = _base(request) + "/"
    filters = {"q": query.q, "environment": query.environment, "health": query.health}

    def at(**changes) -> str:
        params = {k: v for k, v in {**filters, **changes}.items() if v not in ("", None, 1)}
        return base + ("?" + urlencode(params) if params else "")

    last_page = max(1, -(-total // query.page_size))
    return {
        "page": base,
        "json": _base(request)
        + "/api/fleet"
        + ("?" + urlencode({k: v for k, v in filters.items() if v}) if any(filters.values()) else ""),
        "dag": f"{_airflow_root(request)}/dags/{DAG_ID}",
        "health": {health: at(health=health, page=1) for health in queries.HEALTH_ORDER},
        "previous": at(page=query.page - 1) if query.page > 1 else None,
        "next": at(page=query.page + 1) if query.page < last_page else None,
    }


def _html(html: str, nonce: str) -> HTMLResponse:
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": CSP.format(nonce=nonce),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        },
    )


def _json(data: Any) -> Response:
    """JSON of the rows as read (timestamps ISO 8601), encoded in one pass."""
    body = json.dumps(data, default=_json_value, ensure_ascii=False, separators=(",", ":"))
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


def _json_value(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
