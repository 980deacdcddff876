"""Tenant configuration: limits, fault knobs and credentials, with their defaults.

A tenant config is plain JSON on the wire. Keys may be nested (``{"limits": {...},
"faults": {...}}``) or flat (``{"requests_per_minute": 5}``); :func:`apply_changes` routes
each flat key to the dataclass that owns it, so ``update_tenant(tid, latency_ms=200)`` works.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

ENDPOINTS = ("token", "list", "export", "versions", "import", "versions_import", "metrics")
METRICS_STATUSES = (200, 403, 404)  # usage.metrics_status: answered, no access, an older tenant
TENANT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(ValueError):
    """A tenant config or change that cannot be applied."""


@dataclass
class Limits:
    """Rate, concurrency and page limits of one tenant."""

    requests_per_minute: int = 50_000  # API budget per window (list + export calls)
    rate_window_seconds: float = 60.0  # window length; tests use a few seconds
    concurrency_limit: int = 40  # API requests in flight at once
    concurrency_retry_after: int = 120  # Retry-After on the concurrency 429
    token_requests_per_minute: int = 100  # /oauth/token calls per client IP (per tenant)
    token_window_seconds: float = 60.0
    max_page_length: int = 50  # GET /workflows page_length above this: 400
    default_page_length: int = 20


@dataclass
class Faults:
    """Fault injection knobs. Random faults draw from a per-tenant seeded RNG."""

    latency_ms: int = 0  # fixed delay on every API call
    jitter_ms: int = 0  # plus uniform 0..jitter_ms
    error_rate: float = 0.0  # share answered with one of error_statuses
    error_statuses: list[int] = field(default_factory=lambda: [500, 502, 503, 504])
    reset_rate: float = 0.0  # share whose connection is aborted
    hang_rate: float = 0.0  # share that sleep hang_seconds before answering
    hang_seconds: float = 30.0
    malformed_rate: float = 0.0  # share answered 200 with truncated JSON
    rate_limit_rate: float = 0.0  # share answered 429 (code 70)
    rate_limit_retry_after: int = 1
    fault_endpoints: list[str] = field(default_factory=lambda: ["list", "export"])
    failing_export_ids: list[int] = field(default_factory=list)  # export always 500
    fault_seed: int | None = None  # RNG seed; defaults to the tenant seed


@dataclass
class Usage:
    """The tenant's Workflow task usage (``GET /workflows/metrics.json``), from the runs the
    simulator simulates (zuora_simulator.usage)."""

    metrics_status: int = 200  # 403: no access to usage; 404: an older tenant without the endpoint
    runs_per_day: int = 4  # an Active workflow runs 0..runs_per_day times a day (drawn per day)
    tasks_per_day: int | None = None  # set: every whole day counts exactly this many tasks
    # "YYYY-MM-DD" -> tasks added to that day: a day revised upward
    extra_tasks: dict[str, int] = field(default_factory=dict)


@dataclass
class TenantConfig:
    """Everything that defines one simulated tenant."""

    tenant_id: str
    client_id: str = ""  # 36 chars; derived from tenant_id + seed if empty
    client_secret: str = ""  # <= 42 chars, contains '/' and '+'; derived if empty
    seed: int = 1
    workflows: int = 0  # how many workflows to generate at creation
    token_ttl: int = 3599  # expires_in of minted tokens, seconds
    forbidden: bool = False  # every API call answers 403 (no Workflow permission)
    manage_access: bool = True  # False: the import POSTs answer 403 (Manage Access)
    remember_idempotency_keys: bool = (
        True  # False: every import POST runs again (how long Zuora keeps keys is unknown)
    )
    avg_export_kb: float | None = None  # scale generated export sizes (default mix ~39 KB)
    legacy_share: float = 1 / 12  # share of list items without status/active_version
    limits: Limits = field(default_factory=Limits)
    faults: Faults = field(default_factory=Faults)
    usage: Usage = field(default_factory=Usage)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def derive_client_id(tenant_id: str, seed: int) -> str:
    """A UUID-shaped (36 chars) client id, deterministic from tenant id and seed."""
    digest = hashlib.sha256(f"client_id:{tenant_id}:{seed}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def derive_client_secret(tenant_id: str, seed: int) -> str:
    """A 40-char base64 secret with at least one '/' and one '+', deterministic."""
    digest = hashlib.sha256(f"client_secret:{tenant_id}:{seed}".encode()).digest()
    chars = list(base64.b64encode(digest[:30]).decode())
    chars[7], chars[19] = "/", "+"
    return "".join(chars)


_FIELDS = {
    "tenant": {f.name for f in dataclasses.fields(TenantConfig)} - {"limits", "faults", "usage"},
    "limits": {f.name for f in dataclasses.fields(Limits)},
    "faults": {f.name for f in dataclasses.fields(Faults)},
    "usage": {f.name for f in dataclasses.fields(Usage)},
}


def apply_changes(config: TenantConfig, changes: dict[str, Any], *, creating: bool = False) -> None:
    """Apply nested or flat changes to ``config`` in place; raises ConfigError on bad keys."""
    for key, value in changes.items():
        if key in ("limits", "faults", "usage") and isinstance(value, dict):
            target = getattr(config, key)
            for sub_key, sub_value in value.items():
                if sub_key not in _FIELDS[key]:
                    raise ConfigError(f"unknown {key} field {sub_key!r}")
                setattr(target, sub_key, sub_value)
        elif key in _FIELDS["tenant"]:
            if key == "tenant_id" and not creating and value != config.tenant_id:
                raise ConfigError("tenant_id cannot be changed")
            setattr(config, key, value)
        elif key in _FIELDS["limits"]:
            setattr(config.limits, key, value)
        elif key in _FIELDS["faults"]:
            setattr(config.faults, key, value)
        elif key in _FIELDS["usage"]:
            setattr(config.usage, key, value)
        else:
            raise ConfigError(f"unknown config field {key!r}")
    validate(config)


def validate(config: TenantConfig) -> None:
    """Normalise types and reject impossible values."""
    if not TENANT_ID_RE.match(str(config.tenant_id)):
        raise ConfigError(f"bad tenant_id {config.tenant_id!r} (letters, digits, _ . -; max 64)")
    if config.client_id and len(config.client_id) != 36:
        raise ConfigError("client_id must be exactly 36 characters")
    if config.client_secret and len(config.client_secret) > 42:
        raise ConfigError("client_secret must be at most 42 characters")
    for name in ("forbidden", "manage_access", "remember_idempotency_keys"):
        if not isinstance(getattr(config, name), bool):
            raise ConfigError(f"{name} must be true or false")
    f = config.faults
    for name in ("error_rate", "reset_rate", "hang_rate", "malformed_rate", "rate_limit_rate"):
        rate = float(getattr(f, name))
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"{name} must be between 0 and 1")
        setattr(f, name, rate)
    bad = set(f.fault_endpoints) - set(ENDPOINTS)
    if bad:
        raise ConfigError(f"fault_endpoints: unknown {sorted(bad)}; use {list(ENDPOINTS)}")
    f.failing_export_ids = [int(i) for i in f.failing_export_ids]
    f.error_statuses = [int(s) for s in f.error_statuses] or [500]
    lim = config.limits
    if lim.requests_per_minute < 1 or lim.concurrency_limit < 1 or lim.token_requests_per_minute < 1:
        raise ConfigError("limits must be at least 1")
    if lim.rate_window_seconds <= 0 or lim.token_window_seconds <= 0:
        raise ConfigError("window lengths must be positive")
    _validate_usage(config.usage)


def _validate_usage(usage: Usage) -> None:
    if usage.metrics_status not in METRICS_STATUSES:
        raise ConfigError(f"metrics_status must be one of {METRICS_STATUSES}")
    if not _count(usage.runs_per_day):
        raise ConfigError("runs_per_day must be an integer of at least 0")
    if usage.tasks_per_day is not None and not _count(usage.tasks_per_day):
        raise ConfigError("tasks_per_day must be null or an integer of at least 0")
    if not isinstance(usage.extra_tasks, dict):
        raise ConfigError('extra_tasks must be an object {"YYYY-MM-DD": tasks}')
    for day, tasks in usage.extra_tasks.items():
        try:
            date.fromisoformat(day)
        except (TypeError, ValueError):
            raise ConfigError(f"extra_tasks: {day!r} is not a YYYY-MM-DD day") from None
        if not _count(tasks):
            raise ConfigError(f"extra_tasks: the tasks of {day} must be an integer of at least 0")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def build_config(raw: dict[str, Any]) -> TenantConfig:
    """A TenantConfig from a JSON dict, with derived credentials filled in."""
    if "tenant_id" not in raw:
        raise ConfigError("tenant_id is required")
    config = TenantConfig(tenant_id=str(raw["tenant_id"]))
    apply_changes(config, raw, creating=True)
    if not config.client_id:
        config.client_id = derive_client_id(config.tenant_id, config.seed)
    if not config.client_secret:
        config.client_secret = derive_client_secret(config.tenant_id, config.seed)
    return config
