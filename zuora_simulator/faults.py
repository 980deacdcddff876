"""Fault injection: choosing a fault (script first, then seeded random) and acting it out.

Script items are one-shot faults, e.g. ``{"endpoint": "export", "kind": "status", "status": 503,
"count": 3}``. A request takes the first queued item whose ``endpoint`` and optional
``workflow_id`` match it. ``endpoint`` is ``token``, ``list``, ``export``, ``versions``,
``import``, ``versions_import`` or ``any`` (the default), and ``any`` means any Workflow API
call (every endpoint but the token call), so a test can script data-call faults without
caring when its client mints tokens.

Kinds: ``status`` (status, optional retry_after/body; ``performed: true``: the request is
performed first and its answer replaced by the status, a lost answer such as a gateway's 504
after its backend finished an import), ``rate_limit`` (retry_after),
``concurrency_limit`` (retry_after), ``unauthorized`` (revoke: also revoke the token used),
``reset`` (phase ``connect``: the connection is reset before any byte is answered, clients see
a connection error; phase ``body``: headers and half the body, then the connection closes,
clients see a broken body; either way the request was performed first), ``hang`` (seconds,
then the normal answer), ``latency`` (ms extra, then the normal answer), ``malformed`` (200
with truncated JSON).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from . import responses
from .config import ENDPOINTS
from .state import Tenant

KINDS = ("status", "rate_limit", "concurrency_limit", "unauthorized", "reset", "hang", "latency", "malformed")
RAW_SEND_KEY = "zuora_sim.raw_send"


@dataclass
class Fault:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    source: str = "random"


def validate_script(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check and normalise script items (raises ValueError)."""
    clean = []
    for item in items:
        item = dict(item)
        item.setdefault("endpoint", "any")
        item["count"] = int(item.get("count", 1))
        if item.get("kind") not in KINDS:
            raise ValueError(f"script kind must be one of {KINDS}: {item}")
        if item["endpoint"] not in (*ENDPOINTS, "any"):
            raise ValueError(f"script endpoint must be one of {(*ENDPOINTS, 'any')}: {item}")
        if item["kind"] == "status" and "status" not in item:
            raise ValueError(f"a status fault needs a status: {item}")
        if "performed" in item and (item["kind"] != "status" or not isinstance(item["performed"], bool)):
            raise ValueError(f"performed (true or false) goes with a status fault only: {item}")
        if item["kind"] == "reset" and item.get("phase", "connect") not in ("connect", "body"):
            raise ValueError(f"reset phase must be connect or body: {item}")
        clean.append(item)
    return clean


def take_fault(tenant: Tenant, endpoint: str, workflow_id: int | None = None) -> Fault | None:
    """The fault for this request, if any: a matching script item, else a random draw."""
    for item in tenant.script:
        if item["endpoint"] != endpoint and not (item["endpoint"] == "any" and endpoint != "token"):
            continue
        if "workflow_id" in item and item["workflow_id"] != workflow_id:
            continue
        item["count"] -= 1
        if item["count"] <= 0:
            tenant.script.remove(item)
        return Fault(item["kind"], item, "script")
    f = tenant.config.faults
    if endpoint not in f.fault_endpoints:
        return None
    draw = tenant.rng.random()
    for kind, rate in (
        ("status", f.error_rate),
        ("reset", f.reset_rate),
        ("hang", f.hang_rate),
        ("malformed", f.malformed_rate),
        ("rate_limit", f.rate_limit_rate),
    ):
        if draw < rate:
            return _random_fault(tenant, kind)
        draw -= rate
    return None


def _random_fault(tenant: Tenant, kind: str) -> Fault:
    f = tenant.config.faults
    if kind == "status":
        return Fault(kind, {"status": f.error_statuses[tenant.rng.randrange(len(f.error_statuses))]})
    if kind == "reset":
        return Fault(kind, {"phase": "connect" if tenant.rng.random() < 0.5 else "body"})
    if kind == "hang":
        return Fault(kind, {"seconds": f.hang_seconds})
    if kind == "rate_limit":
        return Fault(kind, {"retry_after": f.rate_limit_retry_after})
    return Fault(kind)


def immediate_response(fault: Fault, tenant: Tenant) -> Response | None:
    """The answer for faults that replace the response outright (None for the others)."""
    p = fault.params
    if fault.kind == "status":
        status = int(p["status"])
        if status == 429:
            response = responses.rate_limited(int(p.get("retry_after", 1)))
        elif status == 401:
            response = responses.unauthorized()
        elif "body" in p:
            response = responses.json_response(p["body"], status)
        elif status >= 500:
            response = responses.server_error(status)
        else:
            response = responses.workflow_error(status, f"Simulated error {status}")
        if "retry_after" in p:
            response.headers["Retry-After"] = str(p["retry_after"])
        return response
    if fault.kind == "rate_limit":
        return responses.rate_limited(int(p.get("retry_after", tenant.config.faults.rate_limit_retry_after)))
    if fault.kind == "concurrency_limit":
        return responses.concurrency_limited(
            int(p.get("retry_after", tenant.config.limits.concurrency_retry_after))
        )
    if fault.kind == "unauthorized":
        return responses.unauthorized()
    return None


async def delay(fault: Fault) -> None:
    """Sleep for hang and latency faults."""
    if fault.kind == "hang":
        await asyncio.sleep(float(fault.params.get("seconds", 30)))
    elif fault.kind == "latency":
        await asyncio.sleep(float(fault.params.get("ms", 1000)) / 1000)


def malformed(response: Response) -> Response:
    """A 200 whose JSON body is cut in half."""
    body = response.body or b'{"data":[{"id":1,'
    cut = body[: max(1, len(body) // 2)]
    if cut.rstrip().endswith((b"}", b"]")):
        cut = cut + b',"'
    return Response(cut, status_code=200, media_type="application/json")


class DroppedResponse(Response):
    """Sends nothing: the connection is already gone."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope, receive, send) -> None:
        return None


async def reset_connection(scope: dict, phase: str, body: bytes) -> Response:
    """Abort the client's connection, in one of two phases, and return a DroppedResponse.

    Uses uvicorn's transport, found through the ASGI ``send`` callable that the outermost
    middleware stored in the scope (uvicorn's send is a bound method of its request cycle).
    """
    raw_send = scope.get(RAW_SEND_KEY)
    cycle = getattr(raw_send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if raw_send is None or transport is None:
        raise RuntimeError("simulated reset needs uvicorn's transport")
    if phase == "body":
        await raw_send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await raw_send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        transport.close()  # flush what was sent, then FIN: the body is cut short
    else:
        sock = transport.get_extra_info("socket")
        try:  # linger 0: close() sends RST, the client sees "connection reset by peer"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (AttributeError, OSError):
            pass
        transport.abort()
    for _ in range(200):  # let uvicorn notice, so it does not try to answer on its own
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0.001)
    return DroppedResponse()
