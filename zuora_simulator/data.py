"""Workflow data: the simulator's truth, the list/export renderings, and the generator.

Every generated value is a pure function of (tenant seed, workflow id, content revision), so
an export can be rebuilt on demand; :class:`ExportCache` keeps recent ones as bytes.
The truth keeps timestamps as aware UTC datetimes; renderings use one of four real-world
formats per workflow (naive timestamps mean UTC).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

SECRET_MARKER = "SIM-SECRET-"
TIMEZONES = [
    "Eastern Time (US & Canada)",
    "Pacific Time (US & Canada)",
    "Sydney",
    "London",
    "Tokyo",
    "UTC",
    None,
]
INTERVALS = ["0 0 3 /1 * *", "0 30 6 * * MON-FRI", "0 0 0 /1 * *", "0 15 */4 * * *", "0 0 12 1 * *"]
PRIORITIES = ["High", "Medium", "Low"]
TS_FORMATS = ("iso_z", "iso_offset", "utc_suffix", "naive")
SIZE_CLASSES = {  # name: (min KB, max KB, min tasks, max tasks)
    "small": (2, 8, 3, 6),
    "medium": (8, 40, 5, 12),
    "large": (40, 140, 8, 20),
    "huge": (305, 360, 12, 30),
}
DEFAULT_AVG_KB = 39.0  # mean of the default mix: 50% small, 30% medium, 15% large, 5% huge
_EPOCH_LO = datetime(2016, 1, 1, tzinfo=UTC)
_EPOCH_HI = datetime(2025, 9, 30, tzinfo=UTC)
ETAGS = itertools.count(1)


def rng_for(*parts: Any) -> random.Random:
    """A Random seeded from the parts, stable across processes (no str hash)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# --- timestamps -------------------------------------------------------------------------


def format_timestamp(value: datetime, fmt: str) -> str:
    """Render an aware UTC datetime in one of the formats real Zuora returns."""
    value = value.astimezone(UTC)
    if fmt == "iso_z":
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if fmt == "iso_offset":
        local = value.astimezone(timezone(timedelta(hours=8)))
        return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}+08:00"
    if fmt == "utc_suffix":
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return value.strftime("%Y-%m-%d %H:%M:%S")  # naive, UTC by convention


def truncate_for_format(value: datetime, fmt: str) -> datetime:
    """Drop what the format cannot show, so truth and rendering agree exactly."""
    if fmt in ("utc_suffix", "naive"):
        return value.replace(microsecond=0)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


# --- records ----------------------------------------------------------------------------

HEADER_FIELDS = (
    "name",
    "description",
    "ondemand_trigger",
    "callout_trigger",
    "scheduled_trigger",
    "interval",
    "timezone",
    "priority",
)


@dataclass
class Version:
    """One version of a workflow definition: its id, header snapshot and content revision."""

    number: int
    version_id: int
    revision: int
    header: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    tasks: list[dict] | None = None  # explicit content (admin API or an import)
    linkages: list[dict] | None = None
    workflow_doc: dict[str, Any] | None = None  # an import's ``workflow`` object, kept verbatim
    label: str | None = None  # version number other than 0.0.<number> (imports)
    etag: int = field(default_factory=lambda: next(ETAGS))  # changes on every edit (cache key)

    @property
    def version(self) -> str:
        return self.label or f"0.0.{self.number}"

    @property
    def key(self) -> tuple[int, ...]:
        return version_key(self.version)


def version_key(version: str) -> tuple[int, ...]:
    """ "1.0.10" -> (1, 0, 10): version numbers compare numerically, part by part."""
    return tuple(int(part) for part in version.split("."))


@dataclass
class Workflow:
    """A workflow definition as the simulator knows it (the truth)."""

    id: int
    status: str
    ts_format: str
    legacy: bool
    size_class: str
    created_at: datetime
    current: Version  # the active version
    history: list[Version] = field(default_factory=list)  # the other versions, ascending number
    touched_at: datetime | None = None  # updatedAt moved without a new active version
    # (until, status, active version): the states before each change, oldest first (task usage)
    timeline: list[tuple[datetime, str, Version]] = field(default_factory=list)

    @property
    def header(self) -> dict[str, Any]:
        return self.current.header

    @property
    def updated_at(self) -> datetime:
        if self.touched_at is not None and self.touched_at > self.current.updated_at:
            return self.touched_at
        return self.current.updated_at

    def versions(self) -> list[Version]:
        """Every version, oldest (lowest version number) first."""
        return sorted([*self.history, self.current], key=lambda v: v.key)

    def add_version(self, version: Version, activate: bool) -> None:
        """Add a version; ``activate`` makes it the active one (the old one stays, inactive)."""
        if activate:
            self.history.append(self.current)
            self.current = version
        else:
            self.history.append(version)
        self.history.sort(key=lambda v: v.key)

    def record_state(self, now: datetime) -> None:
        """Keep the status and active version in effect until ``now``; called before a change
        of either, so the task usage of a past day follows the workflow's state then."""
        self.timeline.append((now, self.status, self.current))

    def state_at(self, moment: datetime) -> tuple[str, Version]:
        """The status and active version the workflow had at ``moment``."""
        for until, status, version in self.timeline:
            if moment < until:
                return status, version
        return self.status, self.current

    def next_version(self) -> tuple[int, str | None]:
        """(number, label) of a version one patch above the highest: 0.0.N+1 or x.y.z+1."""
        major, minor, patch = max(v.key for v in self.versions())
        return patch + 1, None if (major, minor) == (0, 0) else f"{major}.{minor}.{patch + 1}"

    def version_named(self, name: str | None) -> Version | None:
        """The active version (no name), the highest-numbered one ("latest") or an x.y.z."""
        if name in (None, ""):
            return self.current
        if name == "latest":
            return self.versions()[-1]
        for version in self.versions():
            if version.version == name:
                return version
        return None

    def truth(self) -> dict[str, Any]:
        """The admin API's view: every field, timestamps as ISO UTC plus their rendering."""
        return {
            "id": self.id,
            **self.header,
            "status": self.status,
            "version": self.current.version,
            "active_version_id": self.current.version_id,
            "versions": [v.version for v in self.versions()],
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "created_at_display": format_timestamp(self.created_at, self.ts_format),
            "updated_at_display": format_timestamp(self.updated_at, self.ts_format),
            "ts_format": self.ts_format,
            "legacy": self.legacy,
            "size_class": self.size_class,
            "revision": self.current.revision,
        }


# --- list rendering ---------------------------------------------------------------------


def list_item(wf: Workflow) -> dict[str, Any]:
    """A GET /workflows item (camelCase, plus snake_case active_version and the sic key)."""
    h, fmt = wf.header, wf.ts_format
    item: dict[str, Any] = {"id": wf.id, "name": h["name"], "description": h["description"]}
    if not wf.legacy:
        item["status"] = wf.status
    item.update(
        {
            "type": "Workflow::Setup",
            "ondemandTrigger": h["ondemand_trigger"],
            "calloutTrigger": h["callout_trigger"],
            "scheduledTrigger": h["scheduled_trigger"],
            "interval": h["interval"],
            "timezone": h["timezone"],
            "createdAt": format_timestamp(wf.created_at, fmt),
            "updatedAt": format_timestamp(wf.updated_at, fmt),
        }
    )
    if not wf.legacy:
        item["active_version"] = _active_version(wf)
        item["latest_inactive_verisons"] = [_inactive_item(v, fmt) for v in reversed(wf.history[-10:])]
    return item


def _active_version(wf: Workflow) -> dict[str, Any]:
    return {
        "id": wf.current.version_id,
        "description": wf.header["description"],
        "version": wf.current.version,
        "type": "Workflow::Setup",
        "status": "Active",
    }


def definition_item(wf: Workflow) -> dict[str, Any]:
    """A ``WorkflowDefinition`` (the answer of a version import), in the list's formats."""
    h, fmt = wf.header, wf.ts_format
    return {
        "id": wf.id,
        "name": h["name"],
        "status": wf.status,
        "active_version": _active_version(wf),
        "calloutTrigger": h["callout_trigger"],
        "ondemandTrigger": h["ondemand_trigger"],
        "scheduledTrigger": h["scheduled_trigger"],
        "interval": h["interval"],
        "timezone": h["timezone"],
        "createdAt": format_timestamp(wf.created_at, fmt),
        "updatedAt": format_timestamp(wf.updated_at, fmt),
    }


def version_item(wf: Workflow, v: Version) -> dict[str, Any]:
    """A GET /workflows/{id}/versions item; timestamps "YYYY-MM-DD HH:MM:SS" (UTC)."""
    h = v.header
    return {
        "id": v.version_id,
        "version": v.version,
        "name": h["name"],
        "description": h["description"],
        "type": "Workflow::Setup",
        "interval": h["interval"],
        "timezone": h["timezone"],
        "calloutTrigger": h["callout_trigger"],
        "ondemandTrigger": h["ondemand_trigger"],
        "scheduledTrigger": h["scheduled_trigger"],
        "priority": h["priority"],
        "status": "Active" if v is wf.current else "Inactive",
        "createdAt": format_timestamp(v.created_at, "naive"),
        "updatedAt": format_timestamp(v.updated_at, "naive"),
    }


def _inactive_item(v: Version, fmt: str) -> dict[str, Any]:
    h = v.header
    return {
        "id": v.version_id,
        "name": h["name"],
        "description": h["description"],
        "version": v.version,
        "type": "Workflow::Setup",
        "ondemandTrigger": h["ondemand_trigger"],
        "calloutTrigger": h["callout_trigger"],
        "scheduledTrigger": h["scheduled_trigger"],
        "interval": h["interval"],
        "timezone": h["timezone"],
        "createdAt": format_timestamp(v.created_at, fmt),
        "updatedAt": format_timestamp(v.updated_at, fmt),
        "priority": h["priority"],
        "status": "Inactive",
    }


# --- export rendering -------------------------------------------------------------------


def render_export(wf: Workflow, version: Version, seed: int, avg_export_kb: float | None) -> bytes:
    """The GET /workflows/{id}/export body for one version, as compact JSON bytes."""
    if version.workflow_doc is not None:
        workflow = _imported_workflow(wf, version)
    else:
        workflow = _generated_workflow(wf, version)
    if version.tasks is not None:
        tasks, linkages = version.tasks, version.linkages or []
    else:
        tasks, linkages = generate_content(seed, wf.id, version.revision, wf.size_class, avg_export_kb)
    return json.dumps(
        {"workflow": workflow, "tasks": tasks, "linkages": linkages}, separators=(",", ":")
    ).encode()


def _generated_workflow(wf: Workflow, version: Version) -> dict[str, Any]:
    h = version.header
    workflow = {
        "id": wf.id,
        "name": h["name"],
        "description": h["description"],
        "parameters": {"fields": []} if wf.id % 3 else {},
        "data": {},
        "original_workflow_id": None,
        "type": "Workflow::Setup",
        "ondemand_trigger": h["ondemand_trigger"],
        "callout_trigger": h["callout_trigger"],
        "scheduled_trigger": h["scheduled_trigger"],
        "interval": h["interval"],
        "timezone": h["timezone"],
        "status": None,
        "finished_at": None,
        "css": {"top": "40px", "left": "30px"},
        "notifications": {},
        "started_at": None,
        "call_type": "ASYNC" if wf.id % 2 else None,
        "priority": h["priority"],
        "sync_trigger": False,
        "delete_ttl": 60 if wf.id % 4 else 30,
        "task_summary": {},
        "external_track_id": None,
    }
    if not wf.legacy:
        workflow["version"] = version.version
    return workflow


def _imported_workflow(wf: Workflow, version: Version) -> dict[str, Any]:
    """An imported version: its ``workflow`` object as imported (header fields it carries
    follow later admin edits), with the simulator's ``id`` and ``version``."""
    workflow = dict(version.workflow_doc or {})
    for key in HEADER_FIELDS:
        if key in workflow:
            workflow[key] = version.header[key]
    workflow["id"] = wf.id
    if wf.legacy:
        workflow.pop("version", None)
    else:
        workflow["version"] = version.version
    return workflow


def check_content(tasks: list[dict], linkages: list[dict]) -> None:
    """Raise ValueError for task ids that are not unique integers/strings, or a linkage
    to a task that is not in ``tasks``."""
    known = [task["id"] for task in tasks if task.get("id") is not None]
    if not all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in known):
        raise ValueError("Task ids must be integers or strings.")
    if len(set(known)) != len(known):
        raise ValueError("Task ids must be unique.")
    for number, link in enumerate(linkages):
        for key in ("source_task_id", "target_task_id"):
            if link.get(key) is not None and link[key] not in known:
                raise ValueError(f"Linkage {number} refers to task {link[key]!r}, which is not in tasks.")


def imported_content(
    workflow: dict[str, Any], tasks: list[dict], linkages: list[dict], wid: int, task_ids: Iterator[int]
) -> tuple[dict[str, Any], list[dict], list[dict]]:
    """What an import stores (content passed :func:`check_content`): the ``workflow`` object
    as sent (its ``id`` and ``version`` are replaced at render), tasks with new ids drawn
    from ``task_ids``, and linkages pointing at those ids and at workflow ``wid``. Every
    other key is kept as sent, in its order."""
    new_ids: dict[Any, int] = {}
    new_tasks = []
    for task in tasks:
        new_id = next(task_ids)
        if task.get("id") is not None:
            new_ids[task["id"]] = new_id
        new_tasks.append({**task, "id": new_id})
    new_links = []
    for link in linkages:
        link = dict(link)
        for key in ("source_task_id", "target_task_id"):
            if link.get(key) is not None:
                link[key] = new_ids[link[key]]
        if "source_workflow_id" in link:
            link["source_workflow_id"] = wid
        new_links.append(link)
    return dict(workflow), new_tasks, new_links


class ExportCache:
    """A byte-bounded LRU of rendered exports."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024):
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[tuple, bytes] = OrderedDict()

    def get_or_render(self, key: tuple, render) -> bytes:
        body = self._items.get(key)
        if body is not None:
            self._items.move_to_end(key)
            return body
        body = render()
        self._items[key] = body
        self.size += len(body)
        while self.size > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self.size -= len(old)
        return body


# --- generator --------------------------------------------------------------------------

_WORDS = (
    "invoice account subscription payment amount balance due date customer renewal "
    "term charge product rate plan usage credit memo refund tax currency billing "
    "contact email status notice overdue reminder late fee discount order quote"
).split()
_CORPORA: dict[str, str] = {}


def _corpus(kind: str) -> str:
    """A deterministic ~128 KB text of one flavour (html, liquid, js), built once."""
    if kind not in _CORPORA:
        rng = random.Random(f"corpus-{kind}")
        lines, size = [], 0
        while size < 128 * 1024:
            w = [rng.choice(_WORDS) for _ in range(8)]
            if kind == "html":
                line = (
                    f'<tr><td style="padding:4px;font-family:Arial">{w[0].title()} {w[1]}</td>'
                    f"<td>{{{{Data.Invoice.{w[2].title()}}}}}</td><td>{' '.join(w[3:])}</td></tr>\n"
                )
            elif kind == "liquid":
                line = (
                    f'{{% if Data.{w[0].title()}.{w[1].title()} > 0 %}}"{w[2]}_{w[3]}": '
                    f'"{{{{ Data.{w[4].title()}.{w[5].title()} | default: "{w[6]}" }}}}",'
                    f"{{% endif %}}\n"
                )
            else:
                line = (
                    f'  const {w[0]}_{w[1]} = input.{w[2]}.filter(r => r.{w[3]} !== "{w[4]}")'
                    f".map(r => r.{w[5]});  // {w[6]} {w[7]}\n"
                )
            lines.append(line)
            size += len(line)
        _CORPORA[kind] = "".join(lines)
    return _CORPORA[kind]


def filler(rng: random.Random, kind: str, length: int) -> str:
    """``length`` characters of realistic-looking template text."""
    corpus = _corpus(kind)
    parts, left = [], max(0, length)
    while left > 0:
        start = corpus.find("\n", rng.randrange(0, len(corpus) // 2)) + 1  # whole lines
        piece = corpus[start : start + min(left, len(corpus) - start)]
        parts.append(piece)
        left -= len(piece)
    return "".join(parts)


def secret(rng: random.Random) -> str:
    return SECRET_MARKER + f"{rng.getrandbits(64):016x}"


CREDENTIAL_STYLES = ("basic", "bearer", "header_api_key", "header_bearer", "query_param")


def _callout(rng: random.Random, style: str | None) -> dict[str, Any]:
    host = rng.choice(["api.crm-example.com", "hooks.example.org", "erp.example.net", "scooterlabs.com"])
    url = f"https://{host}/v2/{rng.choice(_WORDS)}s/{{{{Data.Account.Id}}}}"
    headers = [{"key": "Content-Type", "value": "application/json"}]
    auth: dict[str, Any] = {"type": "none"}
    if style == "basic":
        auth = {"type": "basic", "username": f"svc_{rng.choice(_WORDS)}", "password": secret(rng)}
    elif style == "bearer":
        auth = {"type": "bearer", "token": secret(rng)}
    elif style == "header_api_key":
        headers.append({"key": "X-API-Key", "value": secret(rng)})
    elif style == "header_bearer":
        headers.append({"key": "Authorization", "value": f"Bearer {secret(rng)}"})
    elif style == "query_param":
        url += f"?api_key={secret(rng)}&format=json"
    return {
        "url": url,
        "method": rng.choice(["GET", "POST", "PUT"]),
        "body_type": "raw",
        "raw_body": "",
        "datas": [{"key": "", "value": ""}],
        "headers": headers,
        "validation": {"zuora_call": "false", "status_codes": ["", "200"]},
        "retry_rules": {
            "retry_count": str(rng.choice([0, 3])),
            "retry_window": "30",
            "current_retry_count": "0",
        },
        "authorization": auth,
        "strict_variables": "true",
        "validate_response": "false",
        "validation_scheme": "",
        "include_response_code": rng.choice(["true", "false"]),
    }


def _parameters(rng: random.Random, action: str) -> tuple[dict[str, Any], str | None]:
    """Task parameters for an action type, and the key that may carry filler text."""
    obj = rng.choice(["Account", "Invoice", "Subscription", "Payment"])
    if action == "Email":
        return {
            "to": ["{{Data.Account.BillToContact.WorkEmail}}"],
            "cc": [],
            "bcc": [],
            "subject": f"Your {rng.choice(_WORDS)} {{{{Data.Invoice.InvoiceNumber}}}}",
            "body": "",
            "use_html": "true",
            "one_email_per_record": "false",
            "attachments": [],
            "mail_from": "billing@example.com",
            "reply_to": "",
            "send_empty": "0",
        }, "body"
    if action == "Logic:Liquid":
        return {"liquid": "", "data_type": "json", "strict_variables": "false"}, "liquid"
    if action == "Custom Code":
        return {"code": "", "language": "javascript", "time_limit": "30", "output_in_data": "true"}, "code"
    if action == "Query":
        return {
            "zoql": f"select Id, Name, Balance from {obj} where Status = 'Active'",
            "output_format": "json",
            "process_fields": "false",
            "max_records": "0",
        }, None
    if action == "Export":
        return {
            "object": obj,
            "fields": ["Id", "Name", "UpdatedDate"],
            "where_clause": "UpdatedDate > '{{Workflow.LastRunDate}}'",
            "output": "csv",
            "include_deleted": "false",
        }, None
    if action == "Iterate":
        return {
            "field": f"Data.{obj}",
            "concurrent_limit": str(rng.choice([1, 5, 10])),
            "iterate_by": "object",
            "stop_on_error": "true",
        }, None
    if action == "Delay":
        return {"amount": str(rng.choice([1, 5, 30])), "unit": "minutes", "business_days": "false"}, None
    if action in ("Create", "Update"):
        fields = [{"key": rng.choice(_WORDS).title(), "value": f"{{{{Data.{obj}.Id}}}}"} for _ in range(3)]
        return {
            "object": obj,
            "fields": fields,
            "zuora_call": "true",
            "batch": "false",
            "id": f"{{{{Data.{obj}.Id}}}}" if action == "Update" else "",
        }, None
    raise ValueError(action)


_FILLER_KIND = {"body": "html", "liquid": "liquid", "code": "js", "raw_body": "liquid"}
_ACTIONS = [
    "Query",
    "Logic:Liquid",
    "Callout",
    "Email",
    "Custom Code",
    "Iterate",
    "Export",
    "Delay",
    "Create",
    "Update",
]


def export_target_bytes(
    seed: int, wid: int, revision: int, size_class: str, avg_export_kb: float | None
) -> int:
    lo, hi, _, _ = SIZE_CLASSES[size_class]
    kb = rng_for("size", seed, wid, revision).uniform(lo, hi)
    if avg_export_kb:
        kb *= float(avg_export_kb) / DEFAULT_AVG_KB
    return int(max(2.0, kb) * 1024)


def generate_content(
    seed: int, wid: int, revision: int, size_class: str, avg_export_kb: float | None = None
) -> tuple[list[dict], list[dict]]:
    """Tasks and linkages of one workflow version; a pure function of its arguments."""
    rng = rng_for("content", seed, wid, revision)
    _, _, min_tasks, max_tasks = SIZE_CLASSES[size_class]
    count = rng.randint(min_tasks, max_tasks)
    actions = ["Query" if rng.random() < 0.5 else "Export"]
    actions += [rng.choice(_ACTIONS) for _ in range(count - 2)]
    actions.append("Callout" if rng.random() < 0.8 else "Email")
    style_cycle = (wid + revision) % len(CREDENTIAL_STYLES)
    tasks, fill_slots = [], []
    callouts_seen = 0
    for i, action in enumerate(actions):
        task_id = wid * 10_000 + (revision % 100) * 100 + i
        if action == "Callout":
            style = (
                CREDENTIAL_STYLES[style_cycle]
                if callouts_seen == 0
                else rng.choice([*CREDENTIAL_STYLES, None, None])
            )
            callouts_seen += 1
            params, fill_key = _callout(rng, style), "raw_body"
        else:
            params, fill_key = _parameters(rng, action)
        task = {
            "id": task_id,
            "name": f"{action} {rng.choice(_WORDS)} {i + 1}",
            "action_type": action,
            "parameters": params,
            "object": None,
            "object_id": None,
            "call_type": "SOAP" if action == "Callout" else None,
            "task_id": None,
            "original_task_id": None,
            "original_workflow_id": None,
            "status": None,
            "error": None,
            "error_details": None,
            "process_id": None,
            "css": {"top": f"{160 + 120 * i}px", "left": f"{30 + 220 * (i % 3)}px"},
            "concurrent_limit": 9999999,
            "iterate_row_reference": None,
            "error_class": None,
            "object_batched_reference": None,
            "tags": [""],
            "priority": "Medium",
            "assignment": [],
            "notes": "",
            "data_size": None,
            "restart_at": None,
        }
        tasks.append(task)
        if fill_key:
            fill_slots.append((params, fill_key))
    _fill_to_target(
        rng, tasks, fill_slots, export_target_bytes(seed, wid, revision, size_class, avg_export_kb) - 600
    )
    return tasks, _linkages(rng, wid, tasks)


def _fill_to_target(
    rng: random.Random, tasks: list[dict], slots: list[tuple[dict, str]], target: int
) -> None:
    """Grow template-carrying parameters until the tasks serialise to about ``target`` bytes."""
    if not slots:
        params, key = _parameters(rng, "Logic:Liquid")
        tasks.append(
            {
                **tasks[-1],
                "id": tasks[-1]["id"] + 1,
                "name": "Logic:Liquid format",
                "action_type": "Logic:Liquid",
                "parameters": params,
                "call_type": None,
            }
        )
        slots = [(params, key)]
    base = len(json.dumps(tasks, separators=(",", ":")))
    missing = max(0, target - base)
    weights = [rng.random() + 0.2 for _ in slots]
    total = sum(weights)
    for (params, key), weight in zip(slots, weights, strict=True):
        share = int(missing * weight / total)
        kind = _FILLER_KIND[key]
        text = filler(rng, kind, share)
        if kind == "html" and share > 200:
            text = '<html><body><table width="100%">\n' + text + "</table></body></html>"
        params[key] = text


def _linkages(rng: random.Random, wid: int, tasks: list[dict]) -> list[dict]:
    """Start, Success, Failure and For Each edges over the task list."""

    def link(src, dst, kind):
        return {"source_workflow_id": wid, "source_task_id": src, "target_task_id": dst, "linkage_type": kind}

    links = [link(None, tasks[0]["id"], "Start")]
    for i in range(len(tasks) - 1):
        src, dst = tasks[i], tasks[i + 1]
        kind = "For Each" if src["action_type"] == "Iterate" else "Success"
        links.append(link(src["id"], dst["id"], kind))
        if src["action_type"] == "Iterate" and i + 2 < len(tasks):
            links.append(link(src["id"], tasks[i + 2]["id"], "Success"))
        if src["action_type"] == "Callout" and rng.random() < 0.5:
            links.append(link(src["id"], tasks[-1]["id"], "Failure"))
    return links


_NAME_PARTS = (
    [
        "Apply Late Fee",
        "Send Dunning Notice",
        "Sync Accounts to CRM",
        "Invoice Reminder",
        "Renewal Notice",
        "Usage Upload",
        "Credit Memo Approval",
        "Payment Retry",
        "Export Invoices",
        "Tax Recalculation",
        "Welcome Email",
        "Suspend Overdue",
    ],
    ["for EU", "Daily", "Weekly", "to Salesforce", "(v2)", "Limit 1", "", "Sandbox", "- NA"],
)


def new_header(rng: random.Random, wid: int) -> dict[str, Any]:
    """Name, description, triggers, schedule and priority for a generated workflow."""
    scheduled = rng.random() < 0.4
    name = f"{rng.choice(_NAME_PARTS[0])} {rng.choice(_NAME_PARTS[1])}".strip() + f" #{wid}"
    if scheduled:
        interval, tz = rng.choice(INTERVALS), rng.choice(TIMEZONES[:-1])
    else:  # real data: interval/timezone can be set while the schedule is off
        interval = rng.choice([None, None, "", rng.choice(INTERVALS)])
        tz = rng.choice(TIMEZONES) if interval else rng.choice([None, None, "UTC"])
    return {
        "name": name,
        "description": rng.choice(["", "", f"Owned by {rng.choice(_WORDS)} team"]),
        "ondemand_trigger": rng.random() < 0.7,
        "callout_trigger": rng.random() < 0.5,
        "scheduled_trigger": scheduled,
        "interval": interval,
        "timezone": tz,
        "priority": rng.choice(PRIORITIES),
    }


def pick_size_class(seed: int, wid: int) -> str:
    """Deterministic size class; any 20 consecutive ids hold exactly one 'huge'."""
    slot = (wid * 7 + seed) % 20
    return "small" if slot < 10 else "medium" if slot < 16 else "large" if slot < 19 else "huge"


def generate_workflows(
    seed: int, count: int, next_id: int, legacy_share: float = 1 / 12
) -> tuple[list[Workflow], int]:
    """``count`` workflows with ids from ``next_id`` (definitions and versions share one id
    sequence, as in real Zuora); returns them and the next free id."""
    rng = rng_for("workflows", seed, count, next_id)
    workflows = []
    for _ in range(count):
        next_id += rng.randint(0, 2)  # gaps left by deleted workflows
        wid = next_id
        next_id += 1
        wrng = rng_for("workflow", seed, wid)
        fmt = TS_FORMATS[(wid * 3 + seed) % 4]
        span = (_EPOCH_HI - _EPOCH_LO).total_seconds()
        created = truncate_for_format(_EPOCH_LO + timedelta(seconds=wrng.uniform(0, span * 0.8)), fmt)
        header = new_header(wrng, wid)
        n_versions = wrng.choice([1, 1, 1, 2, 3])
        versions, stamp = [], created
        for number in range(1, n_versions + 1):
            updated = (
                stamp
                if wrng.random() < 0.3
                else truncate_for_format(stamp + timedelta(seconds=wrng.uniform(0, 400 * 86400)), fmt)
            )
            updated = min(updated, _EPOCH_HI)
            versions.append(Version(number, next_id, number, dict(header), stamp, updated))
            next_id += 1
            stamp = updated
        workflows.append(
            Workflow(
                id=wid,
                status="Active" if wrng.random() < 0.8 else "Inactive",
                ts_format=fmt,
                legacy=wrng.random() < legacy_share,
                size_class=pick_size_class(seed, wid),
                created_at=created,
                current=versions[-1],
                history=versions[:-1],
            )
        )
    return workflows, next_id
