"""Pytest fixtures: ``simulator`` (one subprocess per session) and ``sim_tenant`` (a factory
of fresh, uniquely named tenants, deleted after the test).

Load with ``pytest_plugins = ["zuora_simulator.pytest_plugin"]`` in the top-level conftest.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from .client import AdminClient, Simulator, running_simulator

_numbers = itertools.count(1)


@dataclass
class SimTenant:
    """A tenant created for one test, with shortcuts to the admin API."""

    tenant_id: str
    client_id: str
    client_secret: str
    base_url: str  # the simulator root; the tenant is known from credentials/token
    scoped_base_url: str  # base_url + /t/<tenant_id>; other tenants' tokens are unknown here
    admin: AdminClient = field(repr=False)
    info: dict[str, Any] = field(repr=False, default_factory=dict)

    def token(self, base_url: str | None = None) -> str:
        """Mint a token through the real /oauth/token endpoint."""
        response = requests.post(
            f"{base_url or self.base_url}/oauth/token",
            timeout=10,
            data={
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "grant_type": "client_credentials",
            },
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def stats(self) -> dict:
        return self.admin.stats(self.tenant_id)

    def reset_stats(self) -> None:
        self.admin.reset_stats(self.tenant_id)

    def update(self, **changes) -> dict:
        return self.admin.update_tenant(self.tenant_id, **changes)

    def set_faults(self, **faults) -> dict:
        return self.admin.set_faults(self.tenant_id, **faults)

    def script(self, items: list[dict], append: bool = False) -> list[dict]:
        return self.admin.script(self.tenant_id, items, append)

    def workflow_ids(self) -> list[int]:
        return self.admin.workflow_ids(self.tenant_id)

    def generate(self, count: int, seed: int | None = None) -> list[int]:
        return self.admin.generate(self.tenant_id, count, seed)

    def add_workflow(self, **fields) -> dict:
        return self.admin.add_workflow(self.tenant_id, **fields)

    def update_workflow(self, workflow_id: int, **fields) -> dict:
        return self.admin.update_workflow(self.tenant_id, workflow_id, **fields)

    def delete_workflow(self, workflow_id: int) -> None:
        self.admin.delete_workflow(self.tenant_id, workflow_id)

    def imports(self) -> list[dict]:
        return self.admin.imports(self.tenant_id)

    def revoke_tokens(self) -> int:
        return self.admin.revoke_tokens(self.tenant_id)

    def usage(self, start: str, end: str) -> dict:
        return self.admin.usage(self.tenant_id, start, end)

    def usage_requests(self) -> list[dict]:
        return self.admin.usage_requests(self.tenant_id)


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    """One simulator subprocess for the whole test session."""
    with running_simulator() as sim:
        yield sim


@pytest.fixture
def sim_tenant(simulator: Simulator) -> Iterator[Callable[..., SimTenant]]:
    """Factory: ``sim_tenant(workflows=5, seed=3, requests_per_minute=10, ...)`` -> SimTenant."""
    created: list[str] = []

    def make(prefix: str = "t", **config) -> SimTenant:
        tenant_id = config.pop("tenant_id", None) or f"{prefix}{next(_numbers)}-{uuid.uuid4().hex[:8]}"
        info = simulator.admin.add_tenant(tenant_id, **config)
        created.append(tenant_id)
        return SimTenant(
            tenant_id,
            info["client_id"],
            info["client_secret"],
            info["base_url"],
            info["scoped_base_url"],
            simulator.admin,
            info,
        )

    yield make
    for tenant_id in created:
        try:
            simulator.admin.delete_tenant(tenant_id)
        except Exception:  # the simulator may be gone at session end
            pass
