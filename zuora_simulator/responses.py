"""Zuora-shaped responses: JSON bodies and the error families of the real API."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

WWW_AUTHENTICATE = "Basic realm=Zuora API, ZSession realm=Zuora API, Bearer realm=Zuora API"
CONCURRENCY_MESSAGE = (
    "The total number of concurrent requests has exceeded the limit allowed by "
    "the system. Please resubmit your request later."
)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status_code=status, headers=headers, media_type="application/json")


def workflow_error(
    status: int,
    title: str,
    *,
    code: str = "invalid",
    body_status: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The Workflow API's error family: {"errors": [{"status", "code", "title"}]}."""
    body = {"errors": [{"status": body_status or status, "code": code, "title": title}]}
    return json_response(body, status, headers)


def unauthorized() -> Response:
    body = {
        "success": False,
        "reasons": [{"code": 90000011, "message": "this resource is protected, please sign in first"}],
    }
    return json_response(body, 401, {"WWW-Authenticate": WWW_AUTHENTICATE})


def forbidden(permission: str = "Workflow View Access") -> Response:
    return workflow_error(403, f"You do not have the '{permission}' permission.", code="forbidden")


def rate_limited(retry_after: int, period: str = "minute") -> Response:
    body = {
        "success": False,
        "reasons": [
            {
                "code": 70,
                "message": f"API Rate limit exceeded for the {period}, retry after {retry_after} seconds",
            }
        ],
    }
    return json_response(body, 429, {"Retry-After": str(retry_after)})


def concurrency_limited(retry_after: int) -> Response:
    body = {"success": False, "reasons": [{"code": 50000070, "message": CONCURRENCY_MESSAGE}]}
    return json_response(body, 429, {"Retry-After": str(retry_after)})


_GATEWAY_TITLES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


def server_error(status: int, detail: str = "Internal Server Error") -> Response:
    """500 answers in the Workflow error family; 502-504 come from the gateway, as HTML."""
    if status in _GATEWAY_TITLES:
        title = _GATEWAY_TITLES[status]
        html = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
        )
        return Response(html, status_code=status, media_type="text/html")
    return workflow_error(status, detail, code="internal_error")
