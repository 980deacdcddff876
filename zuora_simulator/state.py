"""Server state: tenants, their workflows, tokens, rate windows and exact usage counters.

Everything here runs on the server's single event loop and never awaits, so each update is
atomic without locks.
"""

from __future__ import annotations

import itertools
import math
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import data
from .config import ConfigError, TenantConfig, apply_changes, build_config

_serials = itertools.count(1)


@dataclass
class Window:
    """A fixed window that starts at the first request after the previous one ended."""

    started: float = 0.0
    count: int = 0

    def hit(self, length: float, now: float) -> None:
        if now >= self.started + length:
            self.started, self.count = now, 0
        self.count += 1

    def reset_in(self, length: float, now: float) -> float:
        if now >= self.started + length:
            return length
        return self.started + length - now


@dataclass
class Stats:
    """Exact usage counters of one tenant (or of unknown callers)."""

    requests: Counter = field(default_factory=Counter)  # endpoint -> n
    by_status: Counter = field(default_factory=Counter)  # "200" -> n
    by_endpoint_status: dict[str, Counter] = field(default_factory=dict)
    faults: Counter = field(default_factory=Counter)  # injected fault kind -> n
    tokens_minted: int = 0
    rate_limited: int = 0  # 429s sent, any reason
    max_in_flight: int = 0

    def record(self, endpoint: str, status: int | str) -> None:
        self.requests[endpoint] += 1
        self.by_status[str(status)] += 1
        self.by_endpoint_status.setdefault(endpoint, Counter())[str(status)] += 1
        if status == 429:
            self.rate_limited += 1

    def as_dict(self, in_flight: int = 0) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "total_requests": sum(self.requests.values()),
            "by_status": dict(self.by_status),
            "by_endpoint_status": {k: dict(v) for k, v in self.by_endpoint_status.items()},
            "faults": dict(self.faults),
            "tokens_minted": self.tokens_minted,
            "rate_limited": self.rate_limited,
            "in_flight": in_flight,
            "max_in_flight": self.max_in_flight,
        }


class Tenant:
    """One simulated Zuora tenant."""

    def __init__(self, config: TenantConfig):
        self.config = config
        self.serial = next(_serials)  # distinguishes a re-created tenant in caches
        self.workflows: dict[int, data.Workflow] = {}
        self.next_id = 100 + config.seed % 50
        self.script: deque[dict[str, Any]] = deque()
        self.window = Window()
        self.in_flight = 0
        self.stats = Stats()
        self.task_ids = itertools.count(1_000_000_000)  # tasks created by imports
        self.imports: list[dict[str, Any]] = []  # every import request, oldest first
        self.idempotency: dict[str, Any] = {}  # Idempotency-Key -> stored answer
        self.usage_requests: list[dict[str, Any]] = []  # every request that reached metrics.json
        self.reseed_faults()
        if config.workflows:
            self.generate(int(config.workflows), config.seed)

    @property
    def tenant_id(self) -> str:
        return self.config.tenant_id

    def reseed_faults(self) -> None:
        seed = self.config.faults.fault_seed
        self.rng = data.rng_for("faults", self.config.seed if seed is None else seed)

    # --- workflows ---

    def generate(self, count: int, seed: int | None = None) -> list[int]:
        """Replace all workflows with ``count`` generated ones."""
        if seed is not None:
            self.config.seed = int(seed)
        self.config.workflows = count
        self.next_id = 100 + self.config.seed % 50
        made, self.next_id = data.generate_workflows(
            self.config.seed, count, self.next_id, self.config.legacy_share
        )
        self.workflows = {wf.id: wf for wf in made}
        return [wf.id for wf in made]

    def sorted_workflows(self) -> list[data.Workflow]:
        return [self.workflows[i] for i in sorted(self.workflows, reverse=True)]

    def add_workflow(self, fields: dict[str, Any]) -> data.Workflow:
        """A new workflow (version 0.0.1) from admin fields; unspecified ones are generated."""
        wid = int(fields.pop("id", 0) or self._take_id())
        if wid in self.workflows:
            raise ConfigError(f"workflow {wid} exists")
        self.next_id = max(self.next_id, wid + 1)
        rng = data.rng_for("workflow", self.config.seed, wid)
        fmt = fields.pop("ts_format", data.TS_FORMATS[(wid * 3 + self.config.seed) % 4])
        if fmt not in data.TS_FORMATS:
            raise ConfigError(f"ts_format must be one of {data.TS_FORMATS}")
        now = data.truncate_for_format(_parse_time(fields.pop("created_at", None)), fmt)
        updated_raw = fields.pop("updated_at", None)
        updated = data.truncate_for_format(_parse_time(updated_raw), fmt) if updated_raw else now
        header = data.new_header(rng, wid)
        wf = data.Workflow(
            id=wid,
            status="Active",
            ts_format=fmt,
            legacy=bool(fields.pop("legacy", False)),
            size_class=fields.pop("size_class", data.pick_size_class(self.config.seed, wid)),
            created_at=now,
            current=data.Version(1, self._take_id(), 1, header, now, updated),
        )
        self._apply_fields(wf, wf.current, fields)
        self.workflows[wid] = wf
        return wf

    def update_workflow(self, wid: int, fields: dict[str, Any]) -> data.Workflow:
        """Change a workflow. By default a new version (0.0.N+1, new version id, new content)
        and updatedAt = now; ``touch_updated_at: false`` keeps updatedAt, ``bump_version:
        false`` keeps the version number, ``change_content: false`` keeps tasks/linkages."""
        wf = self.workflows[wid]
        wf.record_state(datetime.now(UTC))
        touch = bool(fields.pop("touch_updated_at", True))
        bump = bool(fields.pop("bump_version", True))
        change_content = bool(fields.pop("change_content", True))
        old = wf.current
        updated = data.truncate_for_format(datetime.now(UTC), wf.ts_format) if touch else old.updated_at
        revision = old.revision + 1 if change_content else old.revision
        if bump:
            number, label = wf.next_version()
            new = data.Version(
                number,
                self._take_id(),
                revision,
                dict(old.header),
                updated,
                updated,
                old.tasks if not change_content else None,
                old.linkages if not change_content else None,
                workflow_doc=old.workflow_doc,
                label=label,
            )
            wf.add_version(new, activate=True)
        else:
            old.revision, old.updated_at = revision, updated
            if change_content:
                old.tasks = old.linkages = None
            new = old
        self._apply_fields(wf, new, fields)
        return wf

    def import_workflow(
        self, header: dict[str, Any], content: dict[str, Any], version: str, activate: bool
    ) -> data.Workflow:
        """A new workflow whose first version holds the imported content (checked by
        :func:`data.check_content`). Without ``activate`` the definition is Inactive."""
        wid = self._take_id()
        fmt = data.TS_FORMATS[(wid * 3 + self.config.seed) % 4]
        now = data.truncate_for_format(datetime.now(UTC), fmt)
        wf = data.Workflow(
            id=wid,
            status="Active" if activate else "Inactive",
            ts_format=fmt,
            legacy=False,
            size_class=data.pick_size_class(self.config.seed, wid),
            created_at=now,
            current=self._imported_version(wid, header, content, version, 1, now),
        )
        self.workflows[wid] = wf
        return wf

    def import_version(
        self, wf: data.Workflow, header: dict[str, Any], content: dict[str, Any], version: str, activate: bool
    ) -> data.Version:
        """A new version of ``wf`` (active if ``activate``); updatedAt moves to now."""
        now = data.truncate_for_format(datetime.now(UTC), wf.ts_format)
        revision = max(v.revision for v in wf.versions()) + 1
        new = self._imported_version(wf.id, header, content, version, revision, now)
        if activate:
            wf.record_state(now)
        wf.add_version(new, activate)
        wf.touched_at = now
        return new

    def _imported_version(
        self,
        wid: int,
        header: dict[str, Any],
        content: dict[str, Any],
        version: str,
        revision: int,
        now: datetime,
    ) -> data.Version:
        doc, tasks, linkages = data.imported_content(
            content["workflow"], content["tasks"], content["linkages"], wid, self.task_ids
        )
        return data.Version(
            data.version_key(version)[-1],
            self._take_id(),
            revision,
            header,
            now,
            now,
            tasks,
            linkages,
            workflow_doc=doc,
            label=version,
        )

    def record_import(self, record: dict[str, Any]) -> dict[str, Any]:
        """Keep one import request's record, numbered from 1."""
        record = {"seq": len(self.imports) + 1, **record}
        self.imports.append(record)
        return record

    def _apply_fields(self, wf: data.Workflow, version: data.Version, fields: dict[str, Any]) -> None:
        for key in list(fields):
            if key in data.HEADER_FIELDS:
                version.header[key] = fields.pop(key)
            elif key in ("tasks", "linkages"):
                setattr(version, key, fields.pop(key))
            elif key == "status":
                if fields[key] not in ("Active", "Inactive"):
                    raise ConfigError("status must be Active or Inactive")
                wf.status = fields.pop(key)
        if fields:
            raise ConfigError(f"unknown workflow fields {sorted(fields)}")
        version.etag = next(data.ETAGS)

    def _take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def export_body(self, wf: data.Workflow, version: data.Version, cache: data.ExportCache) -> bytes:
        key = (self.serial, wf.id, version.version_id, version.etag, self.config.avg_export_kb)
        return cache.get_or_render(
            key, lambda: data.render_export(wf, version, self.config.seed, self.config.avg_export_kb)
        )

    # --- limits ---

    def hit_rate_window(self, now: float) -> bool:
        """Count one API request; True if it is over the tenant's budget."""
        self.window.hit(self.config.limits.rate_window_seconds, now)
        return self.window.count > self.config.limits.requests_per_minute

    def rate_headers(self, now: float) -> dict[str, str]:
        lim = self.config.limits
        window = lim.rate_window_seconds
        remaining = (
            max(0, lim.requests_per_minute - self.window.count)
            if now < self.window.started + window
            else lim.requests_per_minute
        )
        reset = max(1, math.ceil(self.window.reset_in(window, now)))
        return {
            "RateLimit-Limit": f"{lim.requests_per_minute}, {lim.requests_per_minute};w={window:g}",
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
        }


def _parse_time(value: Any) -> datetime:
    if not value:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass
class Token:
    tenant_id: str
    tenant_serial: int
    expires_at: float
    revoked: bool = False


class Registry:
    """All tenants, live tokens, the token endpoint's per-IP windows and global counters."""

    def __init__(self, export_cache_mb: int = 64):
        self.tenants: dict[str, Tenant] = {}
        self.tokens: dict[str, Token] = {}
        self.token_windows: dict[tuple[int, str], Window] = {}
        self.unknown_stats = Stats()  # calls that match no tenant
        self.cache = data.ExportCache(export_cache_mb * 1024 * 1024)
        self.started_at = time.time()

    def add_tenant(self, raw: dict[str, Any]) -> Tenant:
        config = build_config(raw)
        if config.tenant_id in self.tenants:
            raise ConfigError(f"tenant {config.tenant_id!r} exists")
        if any(t.config.client_id == config.client_id for t in self.tenants.values()):
            raise ConfigError("client_id already used by another tenant")
        tenant = Tenant(config)
        self.tenants[config.tenant_id] = tenant
        return tenant

    def update_tenant(self, tenant: Tenant, changes: dict[str, Any]) -> None:
        old_seed = tenant.config.faults.fault_seed
        apply_changes(tenant.config, changes)
        if tenant.config.faults.fault_seed != old_seed:
            tenant.reseed_faults()

    def delete_tenant(self, tenant_id: str) -> None:
        self.tenants.pop(tenant_id)
        self.revoke_tokens(tenant_id)

    def by_client_id(self, client_id: str) -> Tenant | None:
        for tenant in self.tenants.values():
            if tenant.config.client_id == client_id:
                return tenant
        return None

    # --- tokens ---

    def mint_token(self, tenant: Tenant, now: float) -> str:
        if len(self.tokens) > 10_000:
            self.tokens = {k: t for k, t in self.tokens.items() if t.expires_at > now and not t.revoked}
        token = secrets.token_hex(16)
        self.tokens[token] = Token(tenant.tenant_id, tenant.serial, now + tenant.config.token_ttl)
        tenant.stats.tokens_minted += 1
        return token

    def lookup_token(self, token: str | None) -> tuple[Token | None, bool]:
        """(token record, valid now)."""
        record = self.tokens.get(token or "")
        if record is None:
            return None, False
        tenant = self.tenants.get(record.tenant_id)
        valid = (
            not record.revoked
            and record.expires_at > time.monotonic()
            and tenant is not None
            and tenant.serial == record.tenant_serial
        )
        return record, valid

    def revoke_tokens(self, tenant_id: str) -> int:
        count = 0
        for record in self.tokens.values():
            if record.tenant_id == tenant_id and not record.revoked:
                record.revoked = True
                count += 1
        return count

    def token_window(self, tenant: Tenant | None, client_ip: str) -> Window:
        key = (tenant.serial if tenant else 0, client_ip)
        return self.token_windows.setdefault(key, Window())

    # --- stats ---

    def stats(self) -> dict[str, Any]:
        total = Stats()
        for tenant in [*self.tenants.values(), None]:
            s = tenant.stats if tenant else self.unknown_stats
            total.requests.update(s.requests)
            total.by_status.update(s.by_status)
            total.faults.update(s.faults)
            for endpoint, counter in s.by_endpoint_status.items():
                total.by_endpoint_status.setdefault(endpoint, Counter()).update(counter)
            total.tokens_minted += s.tokens_minted
            total.rate_limited += s.rate_limited
            total.max_in_flight = max(total.max_in_flight, s.max_in_flight)
        return {
            "total": total.as_dict(sum(t.in_flight for t in self.tenants.values())),
            "unknown": self.unknown_stats.as_dict(),
            "tenants": {t.tenant_id: t.stats.as_dict(t.in_flight) for t in self.tenants.values()},
        }

    def reset_stats(self, tenant: Tenant | None = None) -> None:
        targets = [tenant] if tenant else list(self.tenants.values())
        for t in targets:
            t.stats = Stats(max_in_flight=t.in_flight)
        if tenant is None:
            self.unknown_stats = Stats()
