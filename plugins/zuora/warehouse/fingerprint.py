"""What a workflow definition *is*, without what Zuora assigns: the basis of comparisons.

Two exports of the same content differ in ids (workflow, version, task and linkage ids are
assigned by each tenant and on each import), version numbers and timestamps. To compare
versions of a workflow, a restored version with its source, or a sandbox with production,
``summarize`` drops those and keys each task by its name (``"Callout"``, then ``"Callout
#2"`` for a second task of that name), with its outgoing linkages pointing at task names:

- ``settings_hash``: the workflow object's settings (name, triggers, schedule, parameters...);
- ``task_hashes``: ``{task key: hash of the task and its outgoing linkages}``;
- ``fingerprint``: one hash of both; equal fingerprints mean the same definition.

``diff`` compares two summaries task by task. Works on redacted definitions (secret values
are all ``***REDACTED***``), so a difference only in a secret is not seen.
"""

from __future__ import annotations

from typing import NamedTuple

from zuora.warehouse.transform import content_hash

# Keys Zuora assigns or that describe a run, not the definition.
WORKFLOW_ASSIGNED = frozenset(
    {
        "id",
        "version",
        "original_workflow_id",
        "status",
        "started_at",
        "finished_at",
        "createdAt",
        "updatedAt",
        "created_at",
        "updated_at",
        "task_summary",
        "external_track_id",
        "active_version",
    }
)
TASK_ASSIGNED = frozenset(
    {
        "id",
        "task_id",
        "original_task_id",
        "original_workflow_id",
        "workflow_id",
        "process_id",
        "status",
        "error",
        "error_details",
        "createdAt",
        "updatedAt",
        "created_at",
        "updated_at",
    }
)
LINKAGE_IDS = frozenset(
    {"id", "source_task_id", "target_task_id", "source_workflow_id", "target_workflow_id", "workflow_id"}
)


class Summary(NamedTuple):
    fingerprint: str
    settings_hash: str
    task_hashes: dict[str, str]


class Diff(NamedTuple):
    added: list[str]  # tasks only in the new definition
    removed: list[str]  # tasks only in the old one
    changed: list[str]  # in both, different
    settings_changed: bool

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.changed or self.settings_changed)


def summarize(definition: dict) -> Summary:
    """The id-free summary of an export ``{workflow, tasks, linkages}``."""
    workflow = definition.get("workflow")
    if not isinstance(workflow, dict):
        workflow = {}
    tasks = [t for t in definition.get("tasks") or [] if isinstance(t, dict)]
    linkages = [link for link in definition.get("linkages") or [] if isinstance(link, dict)]
    keys = _task_keys(tasks)
    by_id = {task.get("id"): key for task, key in zip(tasks, keys, strict=True) if task.get("id") is not None}
    outgoing: dict[str | None, list] = {}
    for link in linkages:
        source = by_id.get(link.get("source_task_id"))
        outgoing.setdefault(source, []).append(
            content_hash(
                {
                    "target": by_id.get(link.get("target_task_id")),
                    **{k: v for k, v in link.items() if k not in LINKAGE_IDS},
                }
            )
        )
    settings = {k: v for k, v in workflow.items() if k not in WORKFLOW_ASSIGNED}
    settings_hash = content_hash({"settings": settings, "starts": sorted(outgoing.get(None, []))})
    task_hashes = {
        key: content_hash(
            {
                "task": {k: v for k, v in task.items() if k not in TASK_ASSIGNED},
                "linkages": sorted(outgoing.get(key, [])),
            }
        )
        for task, key in zip(tasks, keys, strict=True)
    }
    return Summary(
        content_hash({"settings": settings_hash, "tasks": task_hashes}), settings_hash, task_hashes
    )


def diff(old: Summary | None, new: Summary) -> Diff:
    """What changed from ``old`` to ``new`` (everything is added when there is no old)."""
    before = old.task_hashes if old else {}
    after = new.task_hashes
    return Diff(
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        changed=sorted(k for k in after.keys() & before.keys() if after[k] != before[k]),
        settings_changed=old is None or old.settings_hash != new.settings_hash,
    )


def _task_keys(tasks: list[dict]) -> list[str]:
    """Each task's key: its name; tasks sharing a name are numbered in the order of their own
    content (not of their place in the export), so reordering them changes no key."""
    names = []
    for position, task in enumerate(tasks):
        name = task.get("name")
        names.append(name if isinstance(name, str) and name else f"(task {position + 1})")
    content = [content_hash({k: v for k, v in task.items() if k not in TASK_ASSIGNED}) for task in tasks]
    keys = list(names)
    for name in set(names):
        same = sorted((content[i], i) for i, other in enumerate(names) if other == name)
        for number, (_, i) in enumerate(same[1:], start=2):
            keys[i] = f"{name} #{number}"
    return keys
