"""Put a stored version of a workflow back into Zuora: restore it into its own workflow, or
promote it into another customer's tenant (sandbox -> production).

    plan = make_plan(conn, "acme", 101, version="0.0.2")          # reads Zuora, changes nothing
    print(plan.describe())                                        # the dry run
    record(conn, plan, requested_by="jane")                       # ... is audited
    apply(conn, plan, requested_by="jane", confirm_production=False)

``run(...)`` does all of it for the CLI (``python -m zuora.cli restore``) and the
``zuora_workflow_restore`` DAG. What is imported is the stored *exact original* export
(decrypted with the export key): a redacted definition cannot be imported, its callout
credentials are gone. An apply is refused unless a dry run of the same restore was recorded
and the target still holds what that dry run showed; every attempt writes a row to
``zuora.restores``. The next sync picks the new version up like any other change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zuora import warehouse
from zuora.api.errors import ZuoraError
from zuora.api.hook import ZuoraHook
from zuora.warehouse.fingerprint import Diff, Summary, diff, summarize
from zuora.warehouse.redaction import redact
from zuora.warehouse.transactions import committing
from zuora.warehouse.transform import parse_zuora_timestamp
from zuora.warehouse.versions import version_order

log = logging.getLogger(__name__)


class RestoreRefused(Exception):
    """The restore cannot or must not be done as asked; the message says what to do."""


@dataclass(frozen=True)
class Plan:
    source_customer: str
    zuora_id: int
    name: str
    version: str
    version_id: int
    version_created_at: datetime | None
    target_customer: str
    target_environment: str
    target_zuora_id: int | None  # None: imported as a new workflow
    target_version: str | None  # what the target has active now
    new_version: str | None  # the version number the import creates
    activate: bool
    target_state: str  # hash of what the target holds now, live from Zuora
    changes: Diff

    @property
    def mode(self) -> str:
        return "new_workflow" if self.target_zuora_id is None else "new_version"

    @property
    def idempotency_key(self) -> str:
        """One key per source version, target and target state: a retried import is never
        performed twice, and a deliberate second restore (after a new dry run) is new."""
        identity = (
            f"{self.source_customer}/{self.zuora_id}/{self.version_id}->"
            f"{self.target_customer}/{self.target_zuora_id or 'new'}/{self.target_state}"
        )
        return "zws-restore-" + hashlib.sha256(identity.encode()).hexdigest()[:48]

    def as_dict(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields["changes"] = self.changes._asdict()
        fields["version_created_at"] = str(self.version_created_at) if self.version_created_at else None
        return {**fields, "mode": self.mode}

    def describe(self) -> str:
        target = (
            f"{self.target_customer} ({self.target_environment}) workflow {self.target_zuora_id}, "
            f"active version {self.target_version}"
            if self.target_zuora_id is not None
            else f"{self.target_customer} ({self.target_environment}), as a new workflow"
        )
        action = (
            f"import as version {self.new_version} of workflow {self.target_zuora_id}"
            if self.target_zuora_id is not None
            else "import as a new workflow"
        )
        changes = self.changes
        lines = [
            f"source:  {self.source_customer} workflow {self.zuora_id} {self.name!r}, version "
            f"{self.version} (created {self.version_created_at or 'unknown'})",
            f"target:  {target}",
            f"action:  {action}, {'activated' if self.activate else 'not activated'}",
            "changes from what the target has now:"
            if self.target_version
            else "changes (the target has no workflow of that name):",
            f"  tasks added:   {', '.join(changes.added) or '-'}",
            f"  tasks removed: {', '.join(changes.removed) or '-'}",
            f"  tasks changed: {', '.join(changes.changed) or '-'}",
            f"  settings:      {'changed' if changes.settings_changed else 'unchanged'}",
        ]
        if changes.same:
            lines.append("  (the same definition as the target's: the import would only add a version)")
        return "\n".join(lines)


def make_plan(
    conn,
    source_customer: str,
    zuora_id: int,
    *,
    version: str | None = None,
    as_of: datetime | None = None,
    to: str | None = None,
    as_new_workflow: bool = False,
    activate: bool = False,
) -> Plan:
    """What a restore would do, with the target read live from Zuora; changes nothing."""
    source = _source_version(conn, source_customer, zuora_id, version, as_of)
    target_customer = to or source_customer
    target = _customer(conn, target_customer)
    hook = ZuoraHook(target["zuora_conn_id"], track_id=f"zws-restore-{target_customer}")
    hook.credentials.check_environment(target["environment"], target_customer)
    if as_new_workflow:
        target_id = _same_name(conn, target_customer, source["name"])  # only to compare with
    elif target_customer == source_customer:
        target_id = zuora_id
    else:
        target_id = _same_name(conn, target_customer, source["name"])
        if target_id is None:
            raise RestoreRefused(
                f"customer {target_customer} has no workflow named {source['name']!r} to add a "
                "version to: import it as a new workflow (--as-new-workflow)"
            )
    current: dict | None = None
    target_version = new_version = None
    if target_id is not None:
        current = hook.export_workflow(target_id)
        target_version = current["workflow"].get("version")
        if not as_new_workflow:
            new_version = _next_version(hook.list_versions(target_id))
    current_summary = summarize(redact(current)) if current else None
    state = hashlib.sha256(
        json.dumps(
            [target_id, target_version, new_version, current_summary.fingerprint if current_summary else None]
        ).encode()
    ).hexdigest()[:16]
    return Plan(
        source_customer=source_customer,
        zuora_id=zuora_id,
        name=source["name"],
        version=source["version"],
        version_id=source["version_id"],
        version_created_at=source["zuora_created_at"],
        target_customer=target_customer,
        target_environment=target["environment"],
        target_zuora_id=None if as_new_workflow else target_id,
        target_version=target_version,
        new_version=new_version,
        activate=activate,
        target_state=state,
        changes=diff(current_summary, source["summary"]),
    )


def record(
    conn,
    plan: Plan,
    *,
    requested_by: str,
    applied: bool = False,
    status: str = "planned",
    zuora_status: int | None = None,
    zuora_response: Any = None,
    message: str | None = None,
) -> int:
    """The audit row of a dry run or an apply; returns its restore_id."""
    with committing(conn):
        return conn.execute(
            "INSERT INTO zuora.restores (requested_by, applied, status, source_customer_id, "
            "source_zuora_id, source_version, source_version_id, target_customer_id, target_zuora_id, "
            "mode, activate, target_state, new_version, idempotency_key, plan, zuora_status, "
            "zuora_response, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s) RETURNING restore_id",
            (
                requested_by,
                applied,
                status,
                plan.source_customer,
                plan.zuora_id,
                plan.version,
                plan.version_id,
                plan.target_customer,
                plan.target_zuora_id,
                plan.mode,
                plan.activate,
                plan.target_state,
                plan.new_version,
                plan.idempotency_key,
                json.dumps(plan.as_dict(), default=str),
                zuora_status,
                json.dumps(redact(zuora_response)) if zuora_response is not None else None,
                message,
            ),
        ).fetchone()[0]


def apply(conn, plan: Plan, *, requested_by: str, confirm_production: bool = False) -> dict:
    """Import the source version's exact original as the plan says; returns Zuora's answer.

    Refused (``RestoreRefused``, audited) without an export key or a stored original, for a
    production target without ``confirm_production``, without a dry run of this restore, or
    when the target changed since that dry run.
    """
    try:
        original = _original(conn, plan)
        if plan.target_environment == "production" and not confirm_production:
            raise RestoreRefused(
                f"the target {plan.target_customer} is a production tenant: "
                "confirm with --confirm-production (param confirm_production)"
            )
        dry_run = _last_dry_run(conn, plan)
        if dry_run is None:
            raise RestoreRefused(
                "no dry run of this restore is recorded: run it without --apply "
                "first and check what it would change"
            )
        if dry_run[0] != plan.target_state:
            raise RestoreRefused(
                f"the target changed since the dry run of {dry_run[1]:%Y-%m-%d %H:%M} "
                f"(it now has version {plan.target_version}): run the dry run again"
            )
    except RestoreRefused as refusal:
        record(conn, plan, requested_by=requested_by, applied=True, status="refused", message=str(refusal))
        raise
    target = _customer(conn, plan.target_customer)
    hook = ZuoraHook(target["zuora_conn_id"], track_id=f"zws-restore-{plan.target_customer}")
    try:
        if plan.target_zuora_id is None:
            answer = hook.import_workflow(
                original, activate=plan.activate, idempotency_key=plan.idempotency_key
            )
        else:
            answer = hook.import_version(
                plan.target_zuora_id,
                original,
                version=plan.new_version or "",
                activate=plan.activate,
                idempotency_key=plan.idempotency_key,
            )
    except ZuoraError as exc:
        record(
            conn,
            plan,
            requested_by=requested_by,
            applied=True,
            status="failed",
            zuora_status=exc.status,
            message=str(exc),
        )
        raise
    record(
        conn,
        plan,
        requested_by=requested_by,
        applied=True,
        status="imported",
        zuora_status=200,
        zuora_response=answer,
    )
    return answer


def run(
    source_customer: str,
    zuora_id: int,
    *,
    version: str | None = None,
    as_of: datetime | None = None,
    to: str | None = None,
    as_new_workflow: bool = False,
    activate: bool = False,
    apply_it: bool = False,
    confirm_production: bool = False,
    requested_by: str,
) -> tuple[str, dict]:
    """The dry run, or the apply; returns the text to show and a small summary."""
    from zuora.warehouse.connection import warehouse_connection

    if (version is None) == (as_of is None):
        raise RestoreRefused("give exactly one of --version and --as-of")
    with warehouse_connection() as conn:
        plan = make_plan(
            conn,
            source_customer,
            int(zuora_id),
            version=version,
            as_of=as_of,
            to=to,
            as_new_workflow=as_new_workflow,
            activate=activate,
        )
        if not apply_it:
            restore_id = record(conn, plan, requested_by=requested_by)
            text = (
                f"Restore plan #{restore_id} (dry run: nothing changed in Zuora)\n"
                f"{plan.describe()}\nTo apply it: the same command with --apply"
                + (" --confirm-production" if plan.target_environment == "production" else "")
            )
            return text, {"restore_id": restore_id, "applied": False, **_brief(plan)}
        answer = apply(conn, plan, requested_by=requested_by, confirm_production=confirm_production)
        created = answer.get("id") if isinstance(answer, dict) else None
        text = (
            f"Imported into Zuora\n{plan.describe()}\nZuora's answer: workflow {created}, "
            f"{'version ' + plan.new_version if plan.new_version else 'a new workflow'}; "
            "the next sync stores it"
        )
        return text, {"applied": True, "zuora_workflow_id": created, **_brief(plan)}


def run_from_params(params: dict, *, requested_by: str) -> dict:
    """``run`` for the zuora_workflow_restore DAG: its params, the text in the task log."""
    text, summary = run(
        params["customer_id"],
        params["zuora_id"],
        version=params.get("version") or None,
        as_of=parse_zuora_timestamp(params.get("as_of")),
        to=params.get("to_customer") or None,
        as_new_workflow=bool(params.get("as_new_workflow")),
        activate=bool(params.get("activate")),
        apply_it=bool(params.get("apply")),
        confirm_production=bool(params.get("confirm_production")),
        requested_by=requested_by,
    )
    log.info("%s", text)
    return summary


def _brief(plan: Plan) -> dict:
    return {
        "source": f"{plan.source_customer}/{plan.zuora_id}@{plan.version}",
        "target": f"{plan.target_customer}/{plan.target_zuora_id or 'new'}",
        "new_version": plan.new_version,
    }


def _source_version(
    conn, customer_id: str, zuora_id: int, version: str | None, as_of: datetime | None
) -> dict:
    with committing(conn):
        rows = conn.execute(
            "SELECT version, version_id, name, zuora_created_at, definition FROM zuora.workflow_versions "
            "WHERE customer_id = %s AND zuora_id = %s AND (%s::text IS NULL OR version = %s) "
            "AND (%s::timestamptz IS NULL OR zuora_created_at <= %s) "
            "ORDER BY version_order DESC LIMIT 1",
            (customer_id, zuora_id, version, version, as_of, as_of),
        ).fetchall()
    if not rows:
        wanted = f"version {version}" if version else f"a version created by {as_of}"
        raise RestoreRefused(
            f"no {wanted} of workflow {zuora_id} of customer {customer_id} is "
            "stored: see zuora.workflow_version_changes for the versions we hold"
        )
    version, version_id, name, created_at, definition = rows[0]
    if definition is None:
        raise RestoreRefused(
            f"version {version} of workflow {zuora_id} is listed but not exported "
            "yet: the history backfill exports it on a later sync run"
        )
    summary: Summary = summarize(definition)
    return {
        "version": version,
        "version_id": version_id,
        "name": name,
        "zuora_created_at": created_at,
        "summary": summary,
    }


def _original(conn, plan: Plan) -> dict:
    key = warehouse.resolve_encryption_key()
    if not key:
        raise RestoreRefused(
            "no export encryption key is configured (Variable "
            "zuora_export_encryption_key or $ZUORA_EXPORT_ENCRYPTION_KEY): "
            "the exact originals cannot be read"
        )
    with committing(conn):
        row = conn.execute(
            "SELECT original_encrypted FROM zuora.workflow_versions "
            "WHERE customer_id = %s AND zuora_id = %s AND version_id = %s",
            (plan.source_customer, plan.zuora_id, plan.version_id),
        ).fetchone()
    if row is None or row[0] is None:
        raise RestoreRefused(
            f"the exact original of version {plan.version} is not stored (it was exported without "
            "an encryption key): a redacted definition cannot be imported, its callout credentials "
            "are gone. Restore another version, or rebuild this one in Zuora by hand"
        )
    try:
        return warehouse.decrypt_export(row[0], key)
    except Exception as exc:  # cryptography's InvalidToken: the key was rotated away
        raise RestoreRefused(
            f"the stored original cannot be decrypted with the configured key "
            f"({type(exc).__name__}): add the key it was written with"
        ) from None


def _last_dry_run(conn, plan: Plan) -> tuple[str, datetime] | None:
    with committing(conn):
        return conn.execute(
            "SELECT target_state, requested_at FROM zuora.restores WHERE NOT applied "
            "AND status = 'planned' AND source_customer_id = %s AND source_zuora_id = %s "
            "AND source_version_id = %s AND target_customer_id = %s "
            "AND target_zuora_id IS NOT DISTINCT FROM %s AND mode = %s AND activate = %s "
            "ORDER BY requested_at DESC LIMIT 1",
            (
                plan.source_customer,
                plan.zuora_id,
                plan.version_id,
                plan.target_customer,
                plan.target_zuora_id,
                plan.mode,
                plan.activate,
            ),
        ).fetchone()


def _customer(conn, customer_id: str) -> dict:
    with committing(conn):
        row = conn.execute(
            "SELECT zuora_conn_id, environment FROM zuora.customers WHERE customer_id = %s", (customer_id,)
        ).fetchone()
    if row is None:
        raise RestoreRefused(f"no customer {customer_id!r} in zuora.customers")
    return {"zuora_conn_id": row[0], "environment": row[1]}


def _same_name(conn, customer_id: str, name: str) -> int | None:
    with committing(conn):
        rows = conn.execute(
            "SELECT zuora_id FROM zuora.current_workflows WHERE customer_id = %s "
            "AND name = %s ORDER BY zuora_id",
            (customer_id, name),
        ).fetchall()
    if len(rows) > 1:
        raise RestoreRefused(
            f"customer {customer_id} has {len(rows)} workflows named {name!r}: "
            "cannot tell which one to compare with or add a version to"
        )
    return rows[0][0] if rows else None


def _next_version(versions: list[dict]) -> str:
    """One above every existing version number (the last part bumped)."""
    numbers = [
        version_order(v["version"])
        for v in versions
        if isinstance(v, dict)
        and isinstance(v.get("version"), str)
        and v["version"].replace(".", "").isdigit()
    ]
    if not numbers:
        return "0.0.1"
    highest = max(numbers)
    return ".".join(map(str, [*highest[:-1], highest[-1] + 1]))
