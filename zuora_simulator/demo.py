"""The three demo tenants of ``python -m zuora_simulator --demo``.

- ``acme``: a normal tenant with 25 workflows.
- ``globex``: rate limited (10 API requests per 10 s window, so 429s with short Retry-After
  really happen) with 20 workflows; a full sync still ends in well under a minute.
- ``initech``: 8 workflows; the export of one of them always fails with a 500.

Credentials are derived from tenant id and seed (see :func:`demo_tenants`), so they are the
same on every start.
"""

from __future__ import annotations

from typing import Any

from .config import derive_client_id, derive_client_secret
from .data import generate_workflows


def _first_ids(seed: int, count: int) -> list[int]:
    made, _ = generate_workflows(seed, count, 100 + seed % 50)
    return [wf.id for wf in made]


def demo_tenants() -> list[dict[str, Any]]:
    """Tenant configs (with explicit credentials) for the demo."""
    configs = [
        {"tenant_id": "acme", "seed": 101, "workflows": 25},
        {"tenant_id": "globex", "seed": 202, "workflows": 20,
         "limits": {"requests_per_minute": 10, "rate_window_seconds": 10}},
        {"tenant_id": "initech", "seed": 303, "workflows": 8,
         "faults": {"failing_export_ids": [_first_ids(303, 8)[3]]}},
    ]
    for config in configs:
        config["client_id"] = derive_client_id(config["tenant_id"], config["seed"])
        config["client_secret"] = derive_client_secret(config["tenant_id"], config["seed"])
    return configs
