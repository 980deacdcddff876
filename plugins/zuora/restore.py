"""Put a stored version of a workflow back into Zuora: restore it into its own workflow,
promote it into the other environment of the same company (its tenant group), or, only when
asked for by name, copy it into another company's tenant.

    plan = make_plan(conn, "acme", 101, version="0.0.2")          # reads Zuora, changes nothing
    print(plan.describe())                                        # the dry run
    record(conn, plan, requested_by="jane")                       # ... is audited
    apply(conn, plan, requested_by="jane", confirm_production=False)

``run(...)`` does all of it for the CLI (``python -m zuora.cli restore``) and the
``zuora_workflow_restore`` DAG. The rules a user can rely on:

- What is imported is the stored *exact original* export (decrypted with the export key): a
  redacted definition cannot be imported, its callout credentials are gone.
- A promotion goes only between customers of one ``tenant_group`` (one company's sandbox and
  production). Into any other customer's tenant it is a *cross-company copy*: refused unless
  ``--into-another-company`` (param ``into_another_company``) is given, and named so in the
  dry run and in ``zuora.restores.scope``.
- An apply needs a recorded dry run of the same restore, at most ``DRY_RUN_VALID`` old, whose
  target (read live from Zuora again, the same-name workflows included) and source (its stored
  original's hash) are unchanged. One dry run allows one apply: the apply claims it before
  calling Zuora (a unique index), so a second apply, concurrent or later, is refused and
  needs a new dry run, which sees what the first one imported. The database also refuses a
  second ``imported`` row for one Idempotency-Key.
- An import is sent once. It is sent again only when Zuora surely did not perform it (a 429, a
  connection never opened: ``zuora.api.hook.surely_not_performed``); after a timeout, a reset or
  a 5xx (the answer lost, maybe after Zuora imported) the apply is recorded ``unknown``, with
  what is known, and raises ``RestoreOutcomeUnknown``. No apply into that customer is accepted
  until the next dry run, which reads the target live, *settles* it: the version (or a new
  workflow of that name) holding the content the import sent is there (``imported``) or not
  (``not_imported``), and the dry run says which.
- A production target needs ``--confirm-production``.
- Every attempt is a row of ``zuora.restores``: dry runs, refusals (while planning too),
  imports, failures and unknown outcomes, with who asked, the scope, and Zuora's (redacted)
  answer.

The next sync picks the imported version up like any other change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from zuora import warehouse
from zuora.api.errors import ZuoraError, ZuoraNotFoundError
from zuora.api.hook import ZuoraHook, surely_not_performed
from zuora.redaction import redact, redact_text
from zuora.warehouse.connection import warehouse_connection
from zuora.warehouse.fingerprint import Diff, Summary, diff, summarize
from zuora.warehouse.transactions import committing
from zuora.warehouse.transform import make_storable
from zuora.warehouse.versions import next_version, version_order

log = logging.getLogger(__name__)

DRY_RUN_VALID = timedelta(hours=24)  # an apply needs a dry run at most this old
# An apply still 'applying' after this was cut short (a killed worker): its outcome is unknown.
APPLY_CUT_SHORT = timedelta(hours=1)
SCOPES = {
    "restore": "restore into the same customer",
    "promotion": "promotion within the tenant group",
    "cross_company_copy": "COPY INTO ANOTHER COMPANY'S TENANT",
}


class RestoreRefused(Exception):
    """The restore cannot or must not be done as asked; the message says what to do."""


class RestoreOutcomeUnknown(Exception):
    """Zuora may or may not have performed the import (its answer was lost); the audit row
    ``restore_id`` says ``unknown`` until the next dry run settles it. The message says what
    to do."""

    def __init__(self, message: str, restore_id: int):
        super().__init__(message)
        self.restore_id = restore_id


@dataclass(frozen=True)
class Plan:
    source_customer: str
    zuora_id: int
    name: str
    version: str
    version_id: int
    version_created_at: datetime | None
    scope: str  # a key of SCOPES
    target_customer: str
    target_environment: str
    target_zuora_id: int | None  # None: imported as a new workflow
    target_same_name: tuple[int, ...]  # the target's workflows of that name, live
    target_version: str | None  # what the target has active now
    new_version: str | None  # the version number the import creates
    activate: bool
    target_state: str  # hash of the source's original and what the target holds, live from Zuora
    changes: Diff

    @property
    def mode(self) -> str:
        return "new_workflow" if self.target_zuora_id is None else "new_version"

    @property
    def idempotency_key(self) -> str:
        """One key per source version, target and state: a retried import is never performed
        twice, and a deliberate second restore (after a new dry run) is new."""
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
            f"scope:   {SCOPES[self.scope]}",
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
    into_another_company: bool = False,
) -> Plan:
    """What a restore would do, with the target read live from Zuora; changes nothing."""
    source = _source_version(conn, source_customer, zuora_id, version, as_of)
    target_customer = to or source_customer
    target = _customer(conn, target_customer)
    group = _customer(conn, source_customer)["tenant_group"]
    scope = _scope(source_customer, target_customer, group, target["tenant_group"])
    if scope == "cross_company_copy" and not into_another_company:
        raise RestoreRefused(
            f"{target_customer} is not in the tenant group of {source_customer} "
            f"({group or 'none'}): a promotion goes only "
            "between one company's environments. To copy the workflow into another company's tenant "
            "on purpose (a template), add --into-another-company (param into_another_company)"
        )
    hook = ZuoraHook(target["zuora_conn_id"], track_id=f"zws-restore-{target_customer}")
    hook.credentials.check_environment(target["environment"], target_customer)
    same_name = _same_name_live(hook, target_customer, source["name"])
    if as_new_workflow:
        target_id = same_name[0] if len(same_name) == 1 else None  # only to compare with
    elif scope == "restore":
        target_id = zuora_id
    elif not same_name:
        raise RestoreRefused(
            f"customer {target_customer} has no workflow named {source['name']!r} to add a "
            "version to: import it as a new workflow (--as-new-workflow)"
        )
    elif len(same_name) > 1:
        raise RestoreRefused(
            f"customer {target_customer} has {len(same_name)} workflows named {source['name']!r} "
            f"({', '.join(map(str, same_name))}): cannot tell which one to add a version to"
        )
    else:
        target_id = same_name[0]
    current: dict | None = None
    target_version = new_version = None
    if target_id is not None:
        current = hook.export_workflow(target_id)
        target_version = current["workflow"].get("version")
        if not as_new_workflow:
            new_version = next_version(hook.list_versions(target_id))
    current_summary = summarize(redact(current)) if current else None
    state = json.dumps(
        [
            source["original_hash"],
            scope,
            target_id,
            same_name,
            target_version,
            new_version,
            current_summary.fingerprint if current_summary else None,
        ]
    )
    return Plan(
        source_customer=source_customer,
        zuora_id=zuora_id,
        name=source["name"],
        version=source["version"],
        version_id=source["version_id"],
        version_created_at=source["zuora_created_at"],
        scope=scope,
        target_customer=target_customer,
        target_environment=target["environment"],
        target_zuora_id=None if as_new_workflow else target_id,
        target_same_name=tuple(same_name),
        target_version=target_version,
        new_version=new_version,
        activate=activate,
        target_state=hashlib.sha256(state.encode()).hexdigest()[:16],
        changes=diff(current_summary, source["summary"]),
    )


def record(
    conn,
    plan: Plan,
    *,
    requested_by: str,
    applied: bool = False,
    status: str = "planned",
    dry_run_id: int | None = None,
    message: str | None = None,
    sent_fingerprint: str | None = None,
) -> int:
    """The audit row of a dry run or an apply; returns its restore_id. An apply row claims
    its dry run: a second claim of one dry run violates a unique index (``RestoreRefused``);
    it keeps the fingerprint of the content it sends, to settle a lost answer with."""
    try:
        with committing(conn):
            return conn.execute(
                "INSERT INTO zuora.restores (requested_by, applied, status, scope, dry_run_id, "
                "source_customer_id, source_zuora_id, source_version, source_version_id, "
                "target_customer_id, target_zuora_id, mode, activate, target_state, new_version, "
                "idempotency_key, plan, message, sent_fingerprint) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING restore_id",
                (
                    requested_by,
                    applied,
                    status,
                    plan.scope,
                    dry_run_id,
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
                    _storable(message),
                    sent_fingerprint,
                ),
            ).fetchone()[0]
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name != "restores_one_apply_per_dry_run":
            raise
        raise RestoreRefused(
            f"dry run #{dry_run_id} was used by another apply a moment ago: run the dry run again"
        ) from None


def _finish(
    conn,
    restore_id: int,
    *,
    status: str,
    zuora_status: int | None,
    answer: Any = None,
    message: str | None = None,
    request_id: str | None = None,
) -> str:
    """An apply's outcome on its audit row; returns the status stored. A second ``imported``
    row for one Idempotency-Key is refused by the database: Zuora's 200 is then a replay of an
    earlier import or, if Zuora forgot the key, a second one, and the row says ``unknown``."""
    update = (
        "UPDATE zuora.restores SET status = %s, zuora_status = %s, zuora_response = %s, "
        "message = %s, zuora_request_id = %s WHERE restore_id = %s"
    )
    response = json.dumps(redact(answer)) if answer is not None else None
    try:
        with committing(conn):
            conn.execute(update, (status, zuora_status, response, _storable(message), request_id, restore_id))
        return status
    except psycopg.errors.UniqueViolation:
        pass
    with committing(conn):
        (earlier,) = conn.execute(
            "SELECT min(e.restore_id) FROM zuora.restores e, zuora.restores r WHERE r.restore_id = %s "
            "AND e.idempotency_key = r.idempotency_key AND e.status = 'imported'",
            (restore_id,),
        ).fetchone()
        conn.execute(
            update,
            (
                "unknown",
                zuora_status,
                response,
                f"Zuora answered 200 under the Idempotency-Key restore #{earlier} already imported "
                "with: a replay of that import (nothing new), or a second import if Zuora forgot "
                "the key",
                request_id,
                restore_id,
            ),
        )
    return "unknown"


def apply(conn, plan: Plan, *, requested_by: str, confirm_production: bool = False) -> dict:
    """Import the source version's exact original as the plan says; returns Zuora's answer.

    Refused (``RestoreRefused``, audited) without an export key or a stored original, for a
    production target without ``confirm_production``, while an earlier apply into the target
    is unsettled, without a usable dry run of this restore (recorded, unused, recent, its target
    and source unchanged). The import is sent once: an answer that may be lost is recorded
    ``unknown`` and raised as ``RestoreOutcomeUnknown``; any other error is recorded ``failed``.
    """
    try:
        original = _original(conn, plan)
        if plan.target_environment == "production" and not confirm_production:
            raise RestoreRefused(
                f"the target {plan.target_customer} is a production tenant: "
                "confirm with --confirm-production (param confirm_production)"
            )
        _refuse_while_unsettled(conn, plan.target_customer)
        dry_run_id = _usable_dry_run(conn, plan)
        attempt = record(
            conn,
            plan,
            requested_by=requested_by,
            applied=True,
            status="applying",
            dry_run_id=dry_run_id,
            sent_fingerprint=_fingerprint(original),
        )
    except RestoreRefused as refusal:
        record(conn, plan, requested_by=requested_by, applied=True, status="refused", message=str(refusal))
        raise
    sending = False
    try:
        target = _customer(conn, plan.target_customer)
        hook = ZuoraHook(target["zuora_conn_id"], track_id=f"zws-restore-{attempt}")
        hook.credentials.check_environment(target["environment"], plan.target_customer)
        sending = True
        answer = _import(hook, plan, original)
    except BaseException as exc:  # whatever went wrong is audited, then raised
        status = exc.status if isinstance(exc, ZuoraError) else None
        request_id = exc.request_id if isinstance(exc, ZuoraError) else None
        error = f"{type(exc).__name__}: {exc}"
        if not sending or surely_not_performed(exc):
            _finish(conn, attempt, status="failed", zuora_status=status, message=error, request_id=request_id)
            raise
        _finish(conn, attempt, status="unknown", zuora_status=status, message=error, request_id=request_id)
        if not isinstance(exc, Exception):  # the task is being stopped: let it stop
            raise
        raise RestoreOutcomeUnknown(
            _unknown(plan, attempt, f"the answer was lost: {error}"), attempt
        ) from exc
    if _finish(conn, attempt, status="imported", zuora_status=200, answer=answer) != "imported":
        raise RestoreOutcomeUnknown(
            _unknown(
                plan, attempt, "Zuora answered under an Idempotency-Key an earlier restore imported with"
            ),
            attempt,
        )
    return answer


def _import(hook: ZuoraHook, plan: Plan, original: dict) -> dict:
    if plan.target_zuora_id is None:
        return hook.import_workflow(original, activate=plan.activate, idempotency_key=plan.idempotency_key)
    assert plan.new_version is not None  # make_plan numbers every import into a workflow
    return hook.import_version(
        plan.target_zuora_id,
        original,
        version=plan.new_version,
        activate=plan.activate,
        idempotency_key=plan.idempotency_key,
    )


def _unknown(plan: Plan, restore_id: int, why: str) -> str:
    return (
        f"restore #{restore_id}: Zuora may or may not have imported it ({why}); it was not sent "
        f"again, and is recorded as 'unknown' (Zuora-Track-Id zws-restore-{restore_id}). Do not "
        "apply it again blindly: run the same dry run (without --apply, param apply off). It reads "
        f"{plan.target_customer} live, records whether the import is there ('imported' or "
        "'not_imported'), says so, and shows what an apply would do now"
    )


def run(
    source_customer: str,
    zuora_id: int,
    *,
    version: str | None = None,
    as_of: datetime | None = None,
    to: str | None = None,
    as_new_workflow: bool = False,
    activate: bool = False,
    into_another_company: bool = False,
    apply_it: bool = False,
    confirm_production: bool = False,
    requested_by: str,
) -> tuple[str, dict]:
    """The dry run (which first settles earlier applies into the target whose outcome is
    unknown), or the apply; returns the text to show and a small summary. A request refused or
    failed before its plan is made is audited too."""
    choice: dict[str, Any] = dict(
        version=version,
        as_of=as_of,
        to=to,
        as_new_workflow=as_new_workflow,
        activate=activate,
        into_another_company=into_another_company,
    )
    with warehouse_connection() as conn:
        try:
            if (version is None) == (as_of is None):
                raise RestoreRefused("give exactly one of --version and --as-of")
            settled = [] if apply_it else settle(conn, to or source_customer)
            plan = make_plan(conn, source_customer, int(zuora_id), **choice)
        except Exception as exc:
            _record_request(
                conn,
                source_customer,
                zuora_id,
                choice,
                requested_by=requested_by,
                applied=apply_it,
                error=exc,
            )
            raise
        if not apply_it:
            restore_id = record(conn, plan, requested_by=requested_by)
            text = "".join(line + "\n" for line in settled) + (
                f"Restore plan #{restore_id} (dry run: nothing changed in Zuora)\n"
                f"{plan.describe()}\nTo apply it (once, within {_hours(DRY_RUN_VALID)}): the same "
                "command with --apply"
                + (" --confirm-production" if plan.target_environment == "production" else "")
            )
            return text, {"restore_id": restore_id, "applied": False, "settled": len(settled), **_brief(plan)}
        answer = apply(conn, plan, requested_by=requested_by, confirm_production=confirm_production)
        created = answer.get("id") if isinstance(answer, dict) else None
        text = (
            f"Imported into Zuora\n{plan.describe()}\nZuora's answer: workflow {created}, "
            f"{'version ' + plan.new_version if plan.new_version else 'a new workflow'}; "
            "the next sync stores it"
        )
        return text, {"applied": True, "zuora_workflow_id": created, **_brief(plan)}


def settle(conn, customer_id: str) -> list[str]:
    """Settle every apply into ``customer_id`` whose outcome is unknown (its answer lost, or
    its row left ``applying`` for longer than ``APPLY_CUT_SHORT``) by reading Zuora live: the
    version the import made (or a workflow of that name the target did not have), holding the
    content the import sent, is there (``imported``) or not (``not_imported``). Returns one
    line per settled apply, for the dry run to show."""
    with committing(conn):
        rows = conn.execute(
            "SELECT r.restore_id, r.requested_at, r.requested_by, r.mode, r.target_zuora_id, "
            "       r.new_version, r.plan, coalesce(r.sent_fingerprint, v.fingerprint) "
            "  FROM zuora.restores r LEFT JOIN zuora.workflow_versions v "
            "    ON v.customer_id = r.source_customer_id AND v.zuora_id = r.source_zuora_id "
            "   AND v.version_id = r.source_version_id "
            " WHERE r.applied AND r.target_customer_id = %s AND (r.status = 'unknown' "
            "    OR (r.status = 'applying' AND r.requested_at < now() - %s)) ORDER BY r.restore_id",
            (customer_id, APPLY_CUT_SHORT),
        ).fetchall()
    if not rows:
        return []
    hook = ZuoraHook(_customer(conn, customer_id)["zuora_conn_id"], track_id=f"zws-restore-{customer_id}")
    lines = []
    for restore_id, requested_at, requested_by, mode, workflow_id, new_version, plan, sent in rows:
        if mode == "new_version":
            imported, found = _version_there(hook, workflow_id, new_version, sent)
        else:
            imported, found = _new_workflow_there(hook, customer_id, plan, sent)
        status = "imported" if imported else "not_imported"
        line = (
            f"Settled restore #{restore_id} (applied {requested_at:%Y-%m-%d %H:%M} by {requested_by}, "
            f"outcome unknown until now): {status.replace('_', ' ').upper()}: {found}"
        )
        with committing(conn):
            conn.execute(
                "UPDATE zuora.restores SET status = %s, settled_at = now(), "
                "message = coalesce(message || ' | ', '') || %s WHERE restore_id = %s",
                (status, _storable(f"settled by a dry run reading Zuora: {found}"), restore_id),
            )
        log.info("%s", line)
        lines.append(line)
    return lines


def _version_there(hook: ZuoraHook, workflow_id: int, version: str, sent: str | None) -> tuple[bool, str]:
    try:
        versions = [item.get("version") for item in hook.list_versions(workflow_id) if isinstance(item, dict)]
    except ZuoraNotFoundError:
        return False, f"workflow {workflow_id} is no longer in Zuora"
    if version not in versions:
        return False, f"workflow {workflow_id} has no version {version}"
    if _fingerprint(hook.export_workflow(workflow_id, version)) != sent:
        return (
            False,
            f"version {version} of workflow {workflow_id} holds other content (imported by someone else)",
        )
    return True, f"version {version} of workflow {workflow_id} holds the content the import sent"


def _new_workflow_there(hook: ZuoraHook, customer_id: str, plan: dict, sent: str | None) -> tuple[bool, str]:
    name = plan["name"]
    known = set(plan.get("target_same_name") or ())
    new = [
        workflow_id for workflow_id in _same_name_live(hook, customer_id, name) if workflow_id not in known
    ]
    holding = [workflow_id for workflow_id in new if _fingerprint(_first_version(hook, workflow_id)) == sent]
    if not holding:
        return (
            False,
            f"no workflow named {name!r} that {customer_id} did not have holds the content the import sent",
        )
    return True, (
        f"workflow {', '.join(map(str, holding))} named {name!r} holds the content the import sent"
        + (" (more than one: check them)" if len(holding) > 1 else "")
    )


def _first_version(hook: ZuoraHook, workflow_id: int) -> dict:
    """The export of a workflow's first version: what the import that created it sent."""
    numbers = [item.get("version") for item in hook.list_versions(workflow_id) if isinstance(item, dict)]
    ordered = sorted((order, number) for number in numbers if (order := version_order(number)) is not None)
    return hook.export_workflow(workflow_id, ordered[0][1] if ordered else None)


def _fingerprint(export: dict) -> str:
    """The id-free fingerprint of an export, secrets redacted (what the import sent, or a
    version found in Zuora)."""
    return summarize(redact(export)).fingerprint


def run_from_params(params: dict, *, requested_by: str) -> dict:
    """``run`` for the zuora_workflow_restore DAG: its params, the text in the task log."""
    text, summary = run(
        params["customer_id"],
        params["zuora_id"],
        version=params.get("version") or None,
        as_of=parse_as_of(params["as_of"]) if params.get("as_of") else None,
        to=params.get("to_customer") or None,
        as_new_workflow=bool(params.get("as_new_workflow")),
        activate=bool(params.get("activate")),
        into_another_company=bool(params.get("into_another_company")),
        apply_it=bool(params.get("apply")),
        confirm_production=bool(params.get("confirm_production")),
        requested_by=requested_by,
    )
    log.info("%s", text)
    return summary


def parse_as_of(text: str) -> datetime:
    """An ISO 8601 time with its zone (``2026-03-01T09:00:00+01:00``, ``...Z``), for the CLI
    and the DAG alike; a time without a zone is refused, never guessed."""
    try:
        value = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise RestoreRefused(f"as-of {text!r} is not an ISO 8601 time, e.g. 2026-03-01T09:00:00Z") from None
    if value.tzinfo is None:
        raise RestoreRefused(
            f"as-of {text!r} has no time zone: add one, e.g. {value.isoformat()}Z for UTC "
            f"or {value.isoformat()}+01:00"
        )
    return value


def _brief(plan: Plan) -> dict:
    return {
        "scope": plan.scope,
        "source": f"{plan.source_customer}/{plan.zuora_id}@{plan.version}",
        "target": f"{plan.target_customer}/{plan.target_zuora_id or 'new'}",
        "new_version": plan.new_version,
    }


def _hours(age: timedelta) -> str:
    return f"{age.total_seconds() / 3600:g} hours"


def _storable(message: str | None) -> str | None:
    """An audit message as the ledger stores errors: secrets redacted, bounded, storable."""
    return make_storable(redact_text(message))[0][:4000] if message else None


def _source_version(
    conn, customer_id: str, zuora_id: int, version: str | None, as_of: datetime | None
) -> dict:
    with committing(conn):
        rows = conn.execute(
            "SELECT version, version_id, name, zuora_created_at, definition, original_hash "
            "FROM zuora.workflow_versions "
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
    version, version_id, name, created_at, definition, original_hash = rows[0]
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
        "original_hash": original_hash,
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
            "an encryption key; a sync with the key configured fetches it again): a redacted "
            "definition cannot be imported, its callout credentials are gone"
        )
    try:
        return warehouse.decrypt_export(row[0], key)
    except Exception as exc:  # cryptography's InvalidToken: the key was rotated away
        raise RestoreRefused(
            f"the stored original cannot be decrypted with the configured key "
            f"({type(exc).__name__}): add the key it was written with"
        ) from None


def _usable_dry_run(conn, plan: Plan) -> int:
    """The id of the newest dry run of exactly this restore, if this apply may use it."""
    with committing(conn):
        row = conn.execute(
            "SELECT p.restore_id, p.target_state, p.requested_at, now() - p.requested_at, "
            "       (SELECT a.status FROM zuora.restores a WHERE a.dry_run_id = p.restore_id) "
            "  FROM zuora.restores p WHERE NOT p.applied AND p.status = 'planned' "
            "   AND p.source_customer_id = %s AND p.source_zuora_id = %s AND p.source_version_id = %s "
            "   AND p.target_customer_id = %s AND p.target_zuora_id IS NOT DISTINCT FROM %s "
            "   AND p.mode = %s AND p.activate = %s AND p.scope = %s "
            " ORDER BY p.restore_id DESC LIMIT 1",
            (
                plan.source_customer,
                plan.zuora_id,
                plan.version_id,
                plan.target_customer,
                plan.target_zuora_id,
                plan.mode,
                plan.activate,
                plan.scope,
            ),
        ).fetchone()
    if row is None:
        raise RestoreRefused(
            "no dry run of this restore is recorded: run it without --apply first and check what it would change"
        )
    dry_run_id, state, requested_at, age, used_by = row
    if used_by is not None:
        raise RestoreRefused(
            f"dry run #{dry_run_id} was already used by an apply ({used_by}): one dry run allows one "
            "apply; run the dry run again to see what the target holds now"
        )
    if age > DRY_RUN_VALID:
        raise RestoreRefused(
            f"dry run #{dry_run_id} of {requested_at:%Y-%m-%d %H:%M} is older than {_hours(DRY_RUN_VALID)}: "
            "run it again"
        )
    if state != plan.target_state:
        raise RestoreRefused(
            f"the target or the source changed since the dry run #{dry_run_id} of "
            f"{requested_at:%Y-%m-%d %H:%M} (the target now has version {plan.target_version}): "
            "run the dry run again"
        )
    return dry_run_id


def _refuse_while_unsettled(conn, customer_id: str) -> None:
    """No apply into a customer while an earlier apply's outcome there is unknown, or while one
    is being applied."""
    with committing(conn):
        row = conn.execute(
            "SELECT restore_id, status, requested_at < now() - %s FROM zuora.restores "
            "WHERE applied AND target_customer_id = %s AND status IN ('unknown', 'applying') "
            "ORDER BY restore_id LIMIT 1",
            (APPLY_CUT_SHORT, customer_id),
        ).fetchone()
    if row is None:
        return
    restore_id, status, cut_short = row
    if status == "applying" and not cut_short:
        raise RestoreRefused(
            f"restore #{restore_id} into {customer_id} is being applied now: wait until it ends, "
            "then run the dry run again"
        )
    raise RestoreRefused(
        f"the outcome of restore #{restore_id} into {customer_id} is unknown (Zuora may have "
        "imported it): run the dry run again (without --apply); it reads Zuora and settles it"
    )


def _record_request(
    conn,
    source_customer: str,
    zuora_id: Any,
    choice: dict,
    *,
    requested_by: str,
    applied: bool,
    error: Exception,
) -> None:
    """The audit row of a request refused (or failed) before its plan was made."""
    target_customer = choice["to"] or source_customer
    message = str(error) if isinstance(error, RestoreRefused) else f"{type(error).__name__}: {error}"
    with committing(conn):
        known = dict(
            conn.execute(
                "SELECT customer_id, tenant_group FROM zuora.customers WHERE customer_id IN (%s, %s)",
                (source_customer, target_customer),
            ).fetchall()
        )
        scope = (
            _scope(source_customer, target_customer, known.get(source_customer), known.get(target_customer))
            if source_customer == target_customer or {source_customer, target_customer} <= known.keys()
            else None  # the scope of a customer not in zuora.customers is not known
        )
        conn.execute(
            "INSERT INTO zuora.restores (requested_by, applied, status, scope, source_customer_id, "
            "source_zuora_id, source_version, target_customer_id, mode, activate, plan, message) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                requested_by,
                applied,
                "refused" if isinstance(error, RestoreRefused) else "failed",
                scope,
                source_customer,
                zuora_id,
                choice["version"],
                target_customer,
                "new_workflow" if choice["as_new_workflow"] else "new_version",
                choice["activate"],
                json.dumps({"request": choice}, default=str),
                _storable(message),
            ),
        )


def _scope(
    source_customer: str, target_customer: str, source_group: str | None, target_group: str | None
) -> str:
    """restore (the same customer), promotion (one tenant group) or cross_company_copy."""
    if target_customer == source_customer:
        return "restore"
    same_group = source_group is not None and source_group == target_group
    return "promotion" if same_group else "cross_company_copy"


def _customer(conn, customer_id: str) -> dict:
    with committing(conn):
        row = conn.execute(
            "SELECT zuora_conn_id, environment, tenant_group FROM zuora.customers WHERE customer_id = %s",
            (customer_id,),
        ).fetchone()
    if row is None:
        raise RestoreRefused(f"no customer {customer_id!r} in zuora.customers")
    return {"zuora_conn_id": row[0], "environment": row[1], "tenant_group": row[2]}


def _same_name_live(hook: ZuoraHook, customer_id: str, name: str) -> list[int]:
    """Ids of the target's workflows named ``name``, listed live from Zuora (not from the
    warehouse, which knows only what the last sync saw)."""
    listing = hook.list_workflows()
    ids = sorted(
        int(item["id"])
        for item in listing
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get("id"), int)
    )
    if not listing.complete:
        raise RestoreRefused(f"the workflow list of {customer_id} did not finish: try again")
    return ids
