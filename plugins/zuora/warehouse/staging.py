"""Staging: what the list and export tasks hand to validation and the merge.

Everything is keyed by ``(run_id, customer_id)``; staging a listing or the exports again
replaces what was staged before, so a retried task gives the same tables. Rows go in by
``COPY``, streamed one item at a time, so memory stays bounded however many (and however
large) the items are. Values Postgres cannot hold (NUL, lone surrogates) are repaired and
the repair is recorded for validation; secrets are redacted before anything is stored in
readable form.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from zuora.redaction import redact, redact_text
from zuora.warehouse.fingerprint import summarize
from zuora.warehouse.secrets_box import encrypt_text, original_json
from zuora.warehouse.transactions import committing
from zuora.warehouse.transform import canonical_json, content_hash, list_item_id, make_storable

log = logging.getLogger(__name__)

STAGING_TABLES = ("staging_list_items", "staging_workflows", "staging_exports", "staging_listings")
MAX_MESSAGE = 4000


def clear_staging(conn, run_id: str, customer_id: str, tables: Iterable[str] = STAGING_TABLES) -> None:
    """Remove a customer's staged rows of one run (tables are fixed names, never data)."""
    for table in tables:
        if table not in STAGING_TABLES:
            raise ValueError(table)
        conn.execute(
            f"DELETE FROM zuora.{table} WHERE run_id = %s AND customer_id = %s", (run_id, customer_id)
        )


def _list_row(run_id: str, customer_id: str, position: int, item: Any) -> tuple:
    try:
        storable, repairs = make_storable(item)
        clean = redact(storable)
        text = canonical_json(clean)
        digest = content_hash(clean)
    except (RecursionError, ValueError, TypeError) as exc:
        log.warning("list item %s of %s cannot be stored: %s", position, customer_id, exc)
        return (
            run_id,
            customer_id,
            position,
            list_item_id(item),
            None,
            "unstorable:" + type(exc).__name__,
            ["unstorable"],
        )
    return (run_id, customer_id, position, list_item_id(item), text, digest, sorted(repairs))


def stage_listing(
    conn,
    run_id: str,
    customer_id: str,
    items: Iterable[dict],
    complete: bool | None = None,
    *,
    complete_flag: Callable[[], bool] | None = None,
) -> int:
    """COPY the customer's list items into staging; returns how many were listed.

    ``complete`` says whether the listing reached its last page; a lazy listing can pass
    ``complete_flag`` instead, read after the items are consumed. Only a complete listing
    may soft-delete workflows in the merge.
    """
    listed = 0
    with committing(conn):
        clear_staging(conn, run_id, customer_id)
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY zuora.staging_list_items (run_id, customer_id, position, zuora_id, item, "
                "item_hash, repairs) FROM STDIN"
            ) as copy,
        ):
            for position, item in enumerate(items):
                copy.write_row(_list_row(run_id, customer_id, position, item))
                listed += 1
        conn.execute("ANALYZE zuora.staging_list_items")  # fresh statistics for the joins ahead
        is_complete = bool(complete_flag() if complete_flag is not None else complete)
        conn.execute(
            "INSERT INTO zuora.staging_listings (run_id, customer_id, complete, listed) "
            "VALUES (%s, %s, %s, %s)",
            (run_id, customer_id, is_complete, listed),
        )
    return listed


_TO_EXPORT = """
SELECT DISTINCT s.zuora_id
  FROM zuora.staging_list_items s
  LEFT JOIN zuora.workflows w
         ON w.customer_id = s.customer_id AND w.zuora_id = s.zuora_id
  LEFT JOIN zuora.workflow_definitions d
         ON d.customer_id = s.customer_id AND d.zuora_id = s.zuora_id
 WHERE s.run_id = %(run_id)s AND s.customer_id = %(customer_id)s AND s.zuora_id IS NOT NULL
   AND (%(full_refresh)s
        OR w.zuora_id IS NULL                            -- new
        OR w.deleted_at IS NOT NULL                      -- coming back
        OR d.zuora_id IS NULL                            -- never exported (or it failed)
        OR w.content_hash IS DISTINCT FROM s.item_hash   -- list item changed
        OR d.exported_at < %(due_before)s                -- due for a re-check (lookback < 1 day)
        OR (%(lookback_days)s > 0                        -- ... on its own day of the lookback
            AND d.exported_at < coalesce(%(today)s::date, current_date)
                - ((coalesce(%(today)s::date, current_date) - DATE '2000-01-01' + s.zuora_id)
                   %% %(lookback_days)s) * interval '1 day'))
UNION                                                    -- kept without its original, while
(SELECT s.zuora_id                                       -- there is a key to store it now
   FROM zuora.staging_list_items s
   JOIN zuora.workflow_definitions d ON d.customer_id = s.customer_id AND d.zuora_id = s.zuora_id
  WHERE s.run_id = %(run_id)s AND s.customer_id = %(customer_id)s AND d.original_encrypted IS NULL
  ORDER BY s.zuora_id LIMIT %(originals)s)
 ORDER BY 1
"""


def workflows_to_export(
    conn,
    run_id: str,
    customer_id: str,
    *,
    full_refresh: bool = False,
    lookback: timedelta | None = timedelta(days=7),
    originals: int = 0,
    today: date | None = None,
) -> list[int]:
    """Ids of staged workflows whose definition must be exported this run, ascending.

    New, restored or changed workflows (the list item's hash covers updated time, active
    version and status), those without a stored definition, and those due for the lookback
    re-export (none: ``lookback=None``); every listed workflow when ``full_refresh``. Plus at most ``originals`` whose
    definition is stored without its original (pass 0 without a key).

    The lookback re-export is spread: with a lookback of L whole days, workflow ``id`` has its
    own day in every L (``(days since 2000-01-01 + id) mod L == 0``) and is due when it was not
    exported since the last such day (``today``: the database's date unless given). A
    customer's workflows, all exported on one day, so come back about 1/L a day, not all on
    day L; none goes longer than L days without a re-export. A lookback under one day: every
    definition older than it is due.
    """
    with committing(conn):
        rows = conn.execute(
            _TO_EXPORT,
            {
                "run_id": run_id,
                "customer_id": customer_id,
                "full_refresh": full_refresh,
                "due_before": None if lookback is None or lookback.days else datetime.now(UTC) - lookback,
                "lookback_days": lookback.days if lookback else 0,
                "today": today,
                "originals": originals,
            },
        ).fetchall()
    return [row[0] for row in rows]


_WORK = """
SELECT (SELECT count(*) FROM zuora.workflows w
         WHERE w.customer_id = %(customer_id)s AND w.deleted_at IS NULL
           AND NOT EXISTS (SELECT FROM zuora.staging_list_items s
                            WHERE s.run_id = %(run_id)s AND s.customer_id = %(customer_id)s
                              AND s.zuora_id = w.zuora_id)),
       (SELECT count(*) FROM zuora.staging_list_items s
         WHERE s.run_id = %(run_id)s AND s.customer_id = %(customer_id)s
           AND (s.zuora_id IS NULL OR s.item IS NULL)),
       (SELECT count(*) FROM zuora.dead_letters d  -- task usage's own: retried by the list stage
         WHERE d.customer_id = %(customer_id)s AND d.resolved_at IS NULL AND d.item_key <> 'task_usage'),
       (SELECT NOT complete FROM zuora.staging_listings
         WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s)
"""


def work_after_listing(conn, run_id: str, customer_id: str, *, originals: int = 0) -> list[str]:
    """Why the customer's export, validate and upsert stages must run as tasks of their own
    after this listing. Empty: nothing new, changed, deleted, unusable or dead-lettered, so
    the list task can finish the sync itself, exporting just the definitions due for the
    lookback re-export (a few a day, see ``workflows_to_export``)."""
    to_export = workflows_to_export(conn, run_id, customer_id, lookback=None, originals=originals)
    with committing(conn):
        gone, unusable, dead, incomplete = conn.execute(
            _WORK, {"run_id": run_id, "customer_id": customer_id}
        ).fetchone()
    counts = {
        "workflows to export": len(to_export),
        "deleted": gone,
        "list items to dead-letter": unusable,
        "open dead letters to retry": dead,
    }
    return [f"{count} {what}" for what, count in counts.items() if count] + (
        ["the listing is incomplete"] if incomplete else []
    )


class ExportRow(NamedTuple):
    """One ``zuora.staging_exports`` row, its fields named as the table's columns."""

    run_id: str
    customer_id: str
    zuora_id: int
    ok: bool
    version: str | None = None
    priority: str | None = None
    definition: str | None = None
    definition_hash: str | None = None
    task_count: int | None = None
    linkage_count: int | None = None
    size_bytes: int | None = None
    original_hash: str | None = None
    original_encrypted: bytes | None = None
    repairs: list[str] = []
    error_type: str | None = None
    error_message: str | None = None
    fingerprint: str | None = None
    settings_hash: str | None = None
    task_hashes: str | None = None


_COPY_EXPORTS = f"COPY zuora.staging_exports ({', '.join(ExportRow._fields)}) FROM STDIN"


def _failed_export_row(run_id, customer_id, zuora_id, error) -> ExportRow:
    error_type = type(error).__name__ if isinstance(error, BaseException) else "ExportFailed"
    message = redact_text(str(error) if error is not None else "no export returned")[:MAX_MESSAGE]
    message, _ = make_storable(message)
    return ExportRow(run_id, customer_id, zuora_id, ok=False, error_type=error_type, error_message=message)


def export_row(
    run_id: str, customer_id: str, zuora_id: int, export: Any, encryption_key: bytes | None
) -> ExportRow:
    """What is stored of one export: redacted definition, hashes, fingerprint, counts, the
    original only encrypted; a failed row when it cannot be stored."""
    if not isinstance(export, dict) or not isinstance(export.get("workflow"), dict):
        return _failed_export_row(
            run_id, customer_id, zuora_id, ValueError("export has no 'workflow' object")
        )
    try:
        original = original_json(export)
        storable, repairs = make_storable(export)
        definition = redact(storable)
        definition_text = canonical_json(definition)
    except (RecursionError, ValueError, TypeError) as exc:
        return _failed_export_row(
            run_id, customer_id, zuora_id, ValueError(f"export cannot be stored: {type(exc).__name__}")
        )
    workflow = definition["workflow"]
    tasks, linkages = definition.get("tasks"), definition.get("linkages")
    version, priority = workflow.get("version"), workflow.get("priority")
    summary = summarize(definition)
    return ExportRow(
        run_id,
        customer_id,
        zuora_id,
        ok=True,
        version=version if isinstance(version, str) else None,
        priority=priority if isinstance(priority, str) else None,
        definition=definition_text,
        definition_hash=hashlib.sha256(definition_text.encode()).hexdigest(),
        task_count=len(tasks) if isinstance(tasks, list) else 0,
        linkage_count=len(linkages) if isinstance(linkages, list) else 0,
        size_bytes=len(original),
        original_hash=hashlib.sha256(original.encode()).hexdigest(),
        original_encrypted=encrypt_text(original, encryption_key) if encryption_key else None,
        repairs=sorted(repairs),
        fingerprint=summary.fingerprint,
        settings_hash=summary.settings_hash,
        task_hashes=canonical_json(summary.task_hashes),
    )


def stage_exports(
    conn,
    run_id: str,
    customer_id: str,
    results: Iterable[tuple[int, dict | None, BaseException | str | None]],
    *,
    encryption_key: bytes | None = None,
) -> dict[str, int]:
    """COPY export results ``(workflow_id, export, error)`` into staging, one at a time.

    Each export is stored redacted (``definition``); its exact original (secrets included)
    only encrypted with ``encryption_key``, and not at all without one: no plaintext original
    is ever written. Failures are staged too and become dead letters in the merge. Returns
    ``{"exported", "exports_failed", "exports_unchanged"}``.
    """
    exported = failed = 0
    with committing(conn):
        clear_staging(conn, run_id, customer_id, ["staging_exports"])
        with conn.cursor() as cur, cur.copy(_COPY_EXPORTS) as copy:
            for zuora_id, export, error in results:
                if error is None and export is not None:
                    row = export_row(run_id, customer_id, int(zuora_id), export, encryption_key)
                else:
                    row = _failed_export_row(run_id, customer_id, int(zuora_id), error)
                copy.write_row(row)
                exported += row.ok
                failed += not row.ok
        conn.execute("ANALYZE zuora.staging_exports")
        listed_ids = conn.execute(
            "SELECT count(DISTINCT zuora_id) FROM zuora.staging_list_items "
            "WHERE run_id = %s AND customer_id = %s",
            (run_id, customer_id),
        ).fetchone()[0]
    if exported and not encryption_key:
        log.warning(
            "No export encryption key: the original exports of customer %s are not "
            "stored, only their redacted definitions",
            customer_id,
        )
    return {
        "exported": exported,
        "exports_failed": failed,
        "exports_unchanged": max(listed_ids - exported - failed, 0),
    }


def sweep_stale_staging(conn, older_than: timedelta = timedelta(days=2)) -> int:
    """Drop staging left by runs that never merged; returns the listings swept."""
    with committing(conn):
        stale = conn.execute(
            "DELETE FROM zuora.staging_listings WHERE listed_at < now() - %s RETURNING run_id, customer_id",
            (older_than,),
        ).fetchall()
        for run_id, customer_id in stale:
            clear_staging(conn, run_id, customer_id, STAGING_TABLES[:3])
        conn.execute("DELETE FROM zuora.staging_exports WHERE exported_at < now() - %s", (older_than,))
    return len(stale)
