"""The three demo tenants of ``python -m zuora_simulator --demo``.

- ``acme``: a normal tenant with 25 workflows.
- ``globex``: rate limited (10 API requests per 10 s window, so 429s with short Retry-After
  really happen) with 20 workflows; a full sync still ends in well under a minute.
- ``initech``: 8 workflows; the export of one of them always fails with a 500.

Credentials are derived from tenant id and seed (see :func:`demo_tenants`), so they are the
same on every start.

``make demo`` adds a company with two environments (not part of ``--demo``):
:func:`umbrella_tenants` (``umbrella_sbx`` and ``umbrella_prod``, 12 identical workflows)
and :func:`make_umbrella_drift`, which makes the sandbox differ in exactly two workflows.
"""

from __future__ import annotations

from typing import Any

from .client import AdminClient
from .config import derive_client_id, derive_client_secret
from .data import HEADER_FIELDS, generate_workflows


def _first_ids(seed: int, count: int) -> list[int]:
    made, _ = generate_workflows(seed, count, 100 + seed % 50)
    return [wf.id for wf in made]


# How the demo's customers are named in zuora.customers (`make demo`, the compose demo).
CUSTOMER_NAMES = {
    "acme": "Acme Corp",
    "globex": "Globex (rate limited)",
    "initech": "Initech (one export always fails)",
}


def demo_tenants() -> list[dict[str, Any]]:
    """Tenant configs (with explicit credentials) for the demo."""
    configs = [
        {"tenant_id": "acme", "seed": 101, "workflows": 25},
        {
            "tenant_id": "globex",
            "seed": 202,
            "workflows": 20,
            "limits": {"requests_per_minute": 10, "rate_window_seconds": 10},
        },
        {
            "tenant_id": "initech",
            "seed": 303,
            "workflows": 8,
            "faults": {"failing_export_ids": [_first_ids(303, 8)[3]]},
        },
    ]
    for config in configs:
        config["client_id"] = derive_client_id(config["tenant_id"], config["seed"])
        config["client_secret"] = derive_client_secret(config["tenant_id"], config["seed"])
    return configs


# Umbrella's sandbox and production: one seed, so the same workflows (ids, names, content).
UMBRELLA_SEED = 404
UMBRELLA_WORKFLOWS = 12
UMBRELLA_SANDBOX, UMBRELLA_PRODUCTION = "umbrella_sbx", "umbrella_prod"
# Umbrella's two customers in zuora.customers, one tenant group: id -> (name, environment)
UMBRELLA_GROUP = "umbrella"
UMBRELLA_CUSTOMERS = {
    UMBRELLA_SANDBOX: ("Umbrella Corp (sandbox)", "sandbox"),
    UMBRELLA_PRODUCTION: ("Umbrella Corp", "production"),
}
# After every generated updatedAt (2025-09-30 at the latest): the sandbox's edits are newer.
UMBRELLA_EDITED_AT = "2025-10-01T09:30:00Z"
UMBRELLA_NEW_WORKFLOW = "Usage Overage Alert (draft)"


def umbrella_tenants() -> list[dict[str, Any]]:
    """Tenant configs of Umbrella's sandbox and production (the same 12 workflows)."""
    return [
        {
            "tenant_id": tenant_id,
            "seed": UMBRELLA_SEED,
            "workflows": UMBRELLA_WORKFLOWS,
            "client_id": derive_client_id(tenant_id, UMBRELLA_SEED),
            "client_secret": derive_client_secret(tenant_id, UMBRELLA_SEED),
        }
        for tenant_id in (UMBRELLA_SANDBOX, UMBRELLA_PRODUCTION)
    ]


def make_umbrella_drift(admin: AdminClient) -> dict[str, Any]:
    """Make Umbrella's sandbox differ from production in exactly two workflows, the same way
    on every start (fixed timestamps, so a second demo run exports nothing new):

    - the third workflow is edited in the sandbox: its second task's notes change, and it
      was saved on UMBRELLA_EDITED_AT, after production's copy;
    - a new workflow, UMBRELLA_NEW_WORKFLOW, exists only in the sandbox.

    Returns ``{"changed": (workflow id, name, task name), "added": (id, name)}``.
    """
    ids = admin.workflow_ids(UMBRELLA_SANDBOX)
    changed = ids[2]
    truth = admin.get_workflow(UMBRELLA_SANDBOX, changed)
    export = admin.expected_export(UMBRELLA_SANDBOX, changed)
    tasks = export["tasks"]
    tasks[1]["notes"] = "Edited in sandbox: retry twice before failing"
    # re-created under its id with the edited content: the admin API's update would stamp now
    admin.delete_workflow(UMBRELLA_SANDBOX, changed)
    admin.add_workflow(
        UMBRELLA_SANDBOX,
        id=changed,
        **{k: truth[k] for k in HEADER_FIELDS},
        status=truth["status"],
        legacy=truth["legacy"],
        ts_format=truth["ts_format"],
        size_class=truth["size_class"],
        created_at=truth["created_at"],
        updated_at=UMBRELLA_EDITED_AT,
        tasks=tasks,
        linkages=export["linkages"],
    )
    added = admin.add_workflow(
        UMBRELLA_SANDBOX,
        name=UMBRELLA_NEW_WORKFLOW,
        created_at=UMBRELLA_EDITED_AT,
        updated_at=UMBRELLA_EDITED_AT,
    )
    return {"changed": (changed, truth["name"], tasks[1]["name"]), "added": (added["id"], added["name"])}


def add_umbrella_tenants(admin: AdminClient) -> None:
    """Umbrella's sandbox and production tenants in a running simulator, the sandbox made to
    differ in two workflows (`make demo`, the compose demo)."""
    for config in umbrella_tenants():
        admin.add_tenant(**config)
    make_umbrella_drift(admin)
