"""Every version of each workflow, from Zuora's version list (``zuora.workflow_versions``).

History then starts where Zuora's does, not at our first sync. In the export stage, after the
current definitions are staged:

    changed, backfill = workflows_to_list_versions(conn, run_id, customer_id, limit)
    record_versions(conn, run_id, customer_id, zuora_id, item_hash, hook.list_versions(id))
    fill_from_current_exports(conn, run_id, customer_id)      # no call for active versions
    pending = versions_to_export(conn, run_id, customer_id, limit)
    store_version_exports(conn, run_id, customer_id, hook.export_versions(pending), key)
    versions_pending(conn, run_id, customer_id)               # how far the backfill got

An unchanged tenant costs no call here: versions are listed only for workflows whose list
item changed since their versions were last listed, plus a backfill bounded per run (the
workflows never listed, then the versions never exported, newest first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from zuora.redaction import redact_text
from zuora.warehouse.staging import export_row
from zuora.warehouse.transactions import committing
from zuora.warehouse.transform import make_storable, parse_zuora_timestamp

# Zuora numbers a workflow's versions x.y.z ("0.0.1", "1.0.3"); an import's number must be
# higher than every existing one. The one rule for version numbers in this package.
VERSION_NUMBER = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})\.([0-9]{1,9})")  # whole text, ASCII digits
_BIGINT = 2**63 - 1

_TO_LIST = """
SELECT s.zuora_id, s.item_hash, l.zuora_id IS NOT NULL AS listed_before
  FROM zuora.staging_list_items s
  LEFT JOIN zuora.workflow_version_listings l
         ON l.customer_id = s.customer_id AND l.zuora_id = s.zuora_id
 WHERE s.run_id = %(run_id)s AND s.customer_id = %(customer_id)s AND s.zuora_id IS NOT NULL
   AND (l.zuora_id IS NULL OR l.item_hash <> s.item_hash)
 ORDER BY listed_before DESC, s.zuora_id
"""


def workflows_to_list_versions(
    conn, run_id: str, customer_id: str, limit: int
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """``(changed, backfill)``: ``(zuora_id, item_hash)`` of this run's listed workflows
    whose versions to list: every one listed before whose list item changed since, and at
    most ``limit`` never listed (lowest ids first)."""
    with committing(conn):
        rows = conn.execute(_TO_LIST, {"run_id": run_id, "customer_id": customer_id}).fetchall()
    changed = [(zuora_id, item_hash) for zuora_id, item_hash, before in rows if before]
    never = [(zuora_id, item_hash) for zuora_id, item_hash, before in rows if not before]
    return changed, never[: max(limit, 0)]


def version_order(version: Any) -> list[int] | None:
    """``"1.0.10"`` -> ``[1, 0, 10]`` (versions sort by number, not by text); None for
    anything that is not a version number (see ``VERSION_NUMBER``)."""
    match = VERSION_NUMBER.fullmatch(version) if isinstance(version, str) else None
    return [int(part) for part in match.groups()] if match else None


def next_version(versions: Iterable[Any]) -> str:
    """The number an import must carry: one above the highest version number listed (its
    last part bumped); "0.0.1" when none is. Items that are not numbered are ignored."""
    numbers = [
        order
        for item in versions
        if isinstance(item, dict) and (order := version_order(item.get("version"))) is not None
    ]
    if not numbers:
        return "0.0.1"
    major, minor, patch = max(numbers)
    return f"{major}.{minor}.{patch + 1}"


def _unusable(item: Any) -> str | None:
    """Why a version-list item cannot be stored, or None."""
    if not isinstance(item, dict):
        return f"a version item must be an object, not {type(item).__name__}"
    version_id, version = item.get("id"), item.get("version")
    if isinstance(version_id, bool) or not isinstance(version_id, int) or not 0 < version_id <= _BIGINT:
        return f"version id {str(version_id)[:40]!r} is not a positive 64-bit integer"
    if version_order(version) is None:
        return f"version number {str(version)[:40]!r} is not x.y.z"
    return None


def record_versions(
    conn, run_id: str, customer_id: str, zuora_id: int, item_hash: str, versions: Iterable[Any]
) -> int:
    """Upsert the versions Zuora lists for one workflow and note when they were listed;
    returns how many were usable. An unusable item (no usable id or x.y.z number) is a
    validation issue of the workflow, as an unusable list item is: never a failed sync."""
    rows, issues = [], []
    for item in versions:
        problem = _unusable(item)
        if problem is not None:
            issues.append((customer_id, zuora_id, run_id, "version_item_unusable", "warning", problem))
            continue
        version, version_id = item["version"], item["id"]
        rows.append(
            (
                customer_id,
                zuora_id,
                version_id,
                version,
                version_order(version),
                _text(item.get("name")),
                _text(item.get("status")),
                _timestamp(item.get("createdAt")),
                _timestamp(item.get("updatedAt")),
                run_id,
            )
        )
    with committing(conn):
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO zuora.validation_issues (customer_id, zuora_id, run_id, rule, severity, "
                "field, detail) VALUES (%s, %s, %s, %s, %s, 'versions', %s)",
                issues,
            )
            cur.executemany(
                "INSERT INTO zuora.workflow_versions (customer_id, zuora_id, version_id, version, "
                "version_order, name, status, zuora_created_at, zuora_updated_at, run_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (customer_id, zuora_id, version_id) DO UPDATE SET "
                "name = excluded.name, status = excluded.status, listed_at = now(), "
                "zuora_updated_at = excluded.zuora_updated_at, run_id = excluded.run_id, "
                # a version edited since it was exported is exported again
                "definition = CASE WHEN workflow_versions.zuora_updated_at IS DISTINCT FROM "
                "excluded.zuora_updated_at THEN NULL ELSE workflow_versions.definition END",
                rows,
            )
        conn.execute(
            "INSERT INTO zuora.workflow_version_listings (customer_id, zuora_id, item_hash, versions) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (customer_id, zuora_id) DO UPDATE SET "
            "item_hash = excluded.item_hash, versions = excluded.versions, listed_at = now()",
            (customer_id, zuora_id, item_hash, len(rows)),
        )
    return len(rows)


_COPIED = (
    "definition, definition_hash, fingerprint, settings_hash, task_hashes, task_count, "
    "size_bytes, original_hash, original_encrypted, exported_at"
)
# a version without a definition takes any; one kept without its original only one with it
_FILLS = "(v.definition IS NULL OR (v.original_encrypted IS NULL AND d.original_encrypted IS NOT NULL))"
_FILL = f"""
UPDATE zuora.workflow_versions v
   SET ({_COPIED}, export_error) = (SELECT {_COPIED}, NULL::text FROM zuora.{{source}} d
                                     WHERE d.customer_id = v.customer_id AND d.zuora_id = v.zuora_id
                                       AND d.version = v.version {{only}} AND {_FILLS}
                                     ORDER BY d.exported_at DESC LIMIT 1)
 WHERE v.customer_id = %(customer_id)s AND (v.definition IS NULL OR v.original_encrypted IS NULL)
   AND EXISTS (SELECT FROM zuora.{{source}} d
                WHERE d.customer_id = v.customer_id AND d.zuora_id = v.zuora_id
                  AND d.version = v.version {{only}} AND {_FILLS})
"""
# this run's exports (only of the workflow asked for: validation has not checked them yet),
# then the stored current definitions exported after the version's update
_FROM_STAGING = _FILL.format(
    source="staging_exports",
    only="AND d.run_id = %(run_id)s AND d.ok AND d.definition -> 'workflow' ->> 'id' = d.zuora_id::text",
)
_FROM_CURRENT = _FILL.format(
    source="workflow_definitions", only="AND d.exported_at >= coalesce(v.zuora_updated_at, '-infinity')"
)


def fill_from_current_exports(conn, run_id: str, customer_id: str) -> int:
    """Versions whose export this run or an earlier one made anyway (the active version of
    each workflow) take that export: no second call. Returns how many were filled."""
    params = {"run_id": run_id, "customer_id": customer_id}
    with committing(conn):
        return sum(conn.execute(statement, params).rowcount for statement in (_FROM_STAGING, _FROM_CURRENT))


_PENDING = """
SELECT v.zuora_id, v.version
  FROM zuora.workflow_versions v
  JOIN (SELECT DISTINCT zuora_id FROM zuora.staging_list_items
         WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s) listed USING (zuora_id)
 WHERE v.customer_id = %(customer_id)s
   AND (v.definition IS NULL OR (%(with_originals)s AND v.original_encrypted IS NULL))
   AND (v.export_error IS NULL OR v.exported_at < now() - interval '1 day')
 ORDER BY v.zuora_id, v.version_order DESC
"""


def versions_to_export(
    conn, run_id: str, customer_id: str, limit: int, *, with_originals: bool = False
) -> list[tuple[int, str]]:
    """At most ``limit`` ``(zuora_id, version)`` not exported yet (``with_originals``: or
    kept without their original, once there is a key to store it), of workflows in this
    run's listing, each workflow's newest first (a failed one is tried again a day later)."""
    if limit <= 0:
        return []
    params = {"run_id": run_id, "customer_id": customer_id, "with_originals": with_originals}
    with committing(conn):
        rows = conn.execute(_PENDING, params).fetchall()
    # newest versions of every workflow first, so recent history fills in before old history
    rank: dict[int, int] = {}
    ranked = []
    for zuora_id, version in rows:
        rank[zuora_id] = rank.get(zuora_id, 0) + 1
        ranked.append((rank[zuora_id], zuora_id, version))
    return [(zuora_id, version) for _, zuora_id, version in sorted(ranked)[:limit]]


def store_version_exports(
    conn,
    run_id: str,
    customer_id: str,
    results: Iterable[tuple[tuple[int, str], dict | None, BaseException | None]],
    encryption_key: bytes | None,
) -> dict[str, int]:
    """Store each exported version as the current definitions are stored (redacted, the
    original only encrypted) once it is the workflow and version asked for; a failure is
    noted on the version and tried again later."""
    exported = failed = 0
    for (zuora_id, version), export, error in results:
        row = problem = None
        if error is not None or export is None:
            problem = f"{type(error).__name__}: {error}"
        elif (mismatch := _other_export(export, zuora_id, version)) is not None:
            problem = mismatch
        else:
            row = export_row(run_id, customer_id, zuora_id, export, encryption_key)
            problem = None if row.ok else row.error_message
        with committing(conn):
            if row is not None and problem is None:
                conn.execute(
                    "UPDATE zuora.workflow_versions SET definition = %s, definition_hash = %s, "
                    "fingerprint = %s, settings_hash = %s, task_hashes = %s, task_count = %s, "
                    "size_bytes = %s, original_hash = %s, original_encrypted = %s, "
                    "exported_at = now(), export_error = NULL "
                    "WHERE customer_id = %s AND zuora_id = %s AND version = %s",
                    (
                        row.definition,
                        row.definition_hash,
                        row.fingerprint,
                        row.settings_hash,
                        row.task_hashes,
                        row.task_count,
                        row.size_bytes,
                        row.original_hash,
                        row.original_encrypted,
                        customer_id,
                        zuora_id,
                        version,
                    ),
                )
                exported += 1
            else:
                conn.execute(
                    "UPDATE zuora.workflow_versions SET export_error = %s, exported_at = now() "
                    "WHERE customer_id = %s AND zuora_id = %s AND version = %s",
                    (make_storable(redact_text(str(problem))[:4000])[0], customer_id, zuora_id, version),
                )
                failed += 1
    return {"versions_exported": exported, "versions_failed": failed}


def _other_export(export: Any, zuora_id: int, version: str) -> str | None:
    """Why an export is not of the workflow version asked for (None: it is). An export without
    a ``version`` key (Zuora's older format) is taken as the version asked for."""
    workflow = export.get("workflow") if isinstance(export, dict) else None
    if not isinstance(workflow, dict):
        return "export has no 'workflow' object"
    got_id, got_version = workflow.get("id"), workflow.get("version", version)
    if str(got_id) != str(zuora_id) or got_version != version:
        return (
            f"ExportIdMismatch: export is of workflow {str(got_id)[:40]} version {str(got_version)[:40]}, "
            f"not {zuora_id} version {version}"
        )
    return None


def versions_pending(conn, run_id: str, customer_id: str, *, with_originals: bool = False) -> int:
    """What the history backfill still has to fetch for this run's listed workflows:
    versions not exported yet (``with_originals``: or without their original), plus
    workflows whose versions were never listed."""
    with committing(conn):
        return conn.execute(
            "WITH listed AS (SELECT DISTINCT zuora_id FROM zuora.staging_list_items "
            "                 WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s "
            "                   AND zuora_id IS NOT NULL) "
            "SELECT (SELECT count(*) FROM zuora.workflow_versions v JOIN listed USING (zuora_id) "
            "         WHERE v.customer_id = %(customer_id)s AND (v.definition IS NULL "
            "            OR (%(with_originals)s AND v.original_encrypted IS NULL))) "
            "     + (SELECT count(*) FROM listed LEFT JOIN zuora.workflow_version_listings l "
            "          ON l.customer_id = %(customer_id)s AND l.zuora_id = listed.zuora_id "
            "         WHERE l.zuora_id IS NULL)",
            {"run_id": run_id, "customer_id": customer_id, "with_originals": with_originals},
        ).fetchone()[0]


def fill_fingerprints(conn, batch: int = 500) -> int:
    """Definitions and versions stored without a fingerprint (before fingerprints existed, or
    cleared by a migration that changed how they are computed) get theirs; returns how many."""
    from zuora.warehouse.fingerprint import summarize
    from zuora.warehouse.transform import canonical_json

    done = 0
    for table in ("workflow_definitions", "workflow_versions"):
        while True:
            with committing(conn):
                rows = conn.execute(
                    f"SELECT ctid, definition FROM zuora.{table} "
                    "WHERE fingerprint IS NULL AND definition IS NOT NULL LIMIT %s",
                    (batch,),
                ).fetchall()
                for ctid, definition in rows:
                    summary = summarize(definition if isinstance(definition, dict) else {})
                    conn.execute(
                        f"UPDATE zuora.{table} SET fingerprint = %s, settings_hash = %s, "
                        "task_hashes = %s WHERE ctid = %s::tid",
                        (
                            summary.fingerprint,
                            summary.settings_hash,
                            canonical_json(summary.task_hashes),
                            ctid,
                        ),
                    )
            done += len(rows)
            if len(rows) < batch:
                break
    return done


def _text(value: Any) -> str | None:
    return make_storable(value)[0] if isinstance(value, str) else None


def _timestamp(value: Any):
    try:
        return parse_zuora_timestamp(value)
    except ValueError:
        return None
