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

from zuora.warehouse.staging import export_row
from zuora.warehouse.transactions import committing
from zuora.warehouse.transform import make_storable, parse_zuora_timestamp

_VERSION = re.compile(r"^\d+(\.\d+)*$")

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


def version_order(version: str) -> list[int]:
    """``"1.0.10"`` -> ``[1, 0, 10]``: versions sort by number, not by text."""
    return [int(part) for part in version.split(".")]


def record_versions(
    conn, run_id: str, customer_id: str, zuora_id: int, item_hash: str, versions: Iterable[Any]
) -> int:
    """Upsert the versions Zuora lists for one workflow and note when they were listed;
    returns how many were usable (an item without an id or a numbered version is skipped)."""
    rows = []
    for item in versions:
        if not isinstance(item, dict):
            continue
        version, version_id = item.get("version"), item.get("id")
        if not (isinstance(version, str) and _VERSION.match(version) and isinstance(version_id, int)):
            continue
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
_FILL = f"""
UPDATE zuora.workflow_versions v
   SET ({_COPIED}, export_error) = (SELECT {_COPIED}, NULL::text FROM zuora.{{source}} d
                                     WHERE d.customer_id = v.customer_id AND d.zuora_id = v.zuora_id
                                       AND d.version = v.version {{only}}
                                     ORDER BY d.exported_at DESC LIMIT 1)
 WHERE v.customer_id = %(customer_id)s AND v.definition IS NULL
   AND EXISTS (SELECT FROM zuora.{{source}} d
                WHERE d.customer_id = v.customer_id AND d.zuora_id = v.zuora_id
                  AND d.version = v.version {{only}})
"""
# this run's exports, then the stored current definitions exported after the version's update
_FROM_STAGING = _FILL.format(source="staging_exports", only="AND d.run_id = %(run_id)s AND d.ok")
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
 WHERE v.customer_id = %(customer_id)s AND v.definition IS NULL
   AND (v.export_error IS NULL OR v.exported_at < now() - interval '1 day')
 ORDER BY v.zuora_id, v.version_order DESC
"""


def versions_to_export(conn, run_id: str, customer_id: str, limit: int) -> list[tuple[int, str]]:
    """At most ``limit`` ``(zuora_id, version)`` not exported yet, of workflows in this
    run's listing, each workflow's newest first (a failed one is tried again a day later)."""
    if limit <= 0:
        return []
    with committing(conn):
        rows = conn.execute(_PENDING, {"run_id": run_id, "customer_id": customer_id}).fetchall()
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
    original only encrypted); a failure is noted on the version and tried again later."""
    exported = failed = 0
    for (zuora_id, version), export, error in results:
        row = (
            export_row(run_id, customer_id, zuora_id, export, encryption_key)
            if error is None and export is not None
            else None
        )
        with committing(conn):
            if row is not None and row.ok:
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
                message = row.error_message if row is not None else f"{type(error).__name__}: {error}"
                conn.execute(
                    "UPDATE zuora.workflow_versions SET export_error = %s, exported_at = now() "
                    "WHERE customer_id = %s AND zuora_id = %s AND version = %s",
                    (make_storable(str(message)[:4000])[0], customer_id, zuora_id, version),
                )
                failed += 1
    return {"versions_exported": exported, "versions_failed": failed}


def versions_pending(conn, run_id: str, customer_id: str) -> int:
    """What the history backfill still has to fetch for this run's listed workflows:
    versions not exported yet, plus workflows whose versions were never listed."""
    with committing(conn):
        return conn.execute(
            "WITH listed AS (SELECT DISTINCT zuora_id FROM zuora.staging_list_items "
            "                 WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s "
            "                   AND zuora_id IS NOT NULL) "
            "SELECT (SELECT count(*) FROM zuora.workflow_versions v JOIN listed USING (zuora_id) "
            "         WHERE v.customer_id = %(customer_id)s AND v.definition IS NULL) "
            "     + (SELECT count(*) FROM listed LEFT JOIN zuora.workflow_version_listings l "
            "          ON l.customer_id = %(customer_id)s AND l.zuora_id = listed.zuora_id "
            "         WHERE l.zuora_id IS NULL)",
            {"run_id": run_id, "customer_id": customer_id},
        ).fetchone()[0]


def fill_fingerprints(conn, batch: int = 500) -> int:
    """Definitions stored before fingerprints existed get theirs; returns how many."""
    from zuora.warehouse.fingerprint import summarize
    from zuora.warehouse.transform import canonical_json

    done = 0
    while True:
        with committing(conn):
            rows = conn.execute(
                "SELECT customer_id, zuora_id, definition FROM zuora.workflow_definitions "
                "WHERE fingerprint IS NULL LIMIT %s",
                (batch,),
            ).fetchall()
            for customer_id, zuora_id, definition in rows:
                summary = summarize(definition if isinstance(definition, dict) else {})
                conn.execute(
                    "UPDATE zuora.workflow_definitions SET fingerprint = %s, settings_hash = %s, "
                    "task_hashes = %s WHERE customer_id = %s AND zuora_id = %s",
                    (
                        summary.fingerprint,
                        summary.settings_hash,
                        canonical_json(summary.task_hashes),
                        customer_id,
                        zuora_id,
                    ),
                )
        done += len(rows)
        if len(rows) < batch:
            return done


def _text(value: Any) -> str | None:
    return make_storable(value)[0] if isinstance(value, str) else None


def _timestamp(value: Any):
    try:
        return parse_zuora_timestamp(value)
    except ValueError:
        return None
