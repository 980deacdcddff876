"""Validation and transformation of a staged listing (and its exports).

``validate_staged`` reads the customer's staged list items in chunks, checks required
fields, types and formats, converts timestamps to UTC and Rails time zones to IANA, and
writes one normalised row per list item to ``zuora.staging_workflows``: ``store`` (with
``validation_status`` valid / warning / invalid) or ``dead_letter`` (no usable id, not an
object, a duplicate id, unstorable). Each problem becomes a ``zuora.validation_issues`` row.

Every rule looks at one list item, so this is plain Python on one item at a time: no data
frame library to import in the task process (it cost more CPU than the validation itself).
"""

from __future__ import annotations

import re
from typing import Any

from zuora.redaction import redact_text
from zuora.warehouse.transactions import committing
from zuora.warehouse.transform import parse_zuora_timestamp, timezone_to_iana

CHUNK = 2000
LONG_TEXT = 10_000
STATUSES = {"Active", "Inactive"}
_CRON_FIELDS = re.compile(r"^\S+(\s+\S+){4,6}$")
_COLUMNS = (
    "run_id",
    "customer_id",
    "position",
    "zuora_id",
    "disposition",
    "reason",
    "name",
    "description",
    "status",
    "type",
    "ondemand_trigger",
    "callout_trigger",
    "scheduled_trigger",
    "interval",
    "timezone",
    "timezone_iana",
    "active_version_id",
    "active_version",
    "zuora_created_at",
    "zuora_updated_at",
    "validation_status",
)
_TEXTS = ("name", "description", "status", "type")
_TRIGGERS = {
    "ondemandTrigger": "ondemand_trigger",
    "calloutTrigger": "callout_trigger",
    "scheduledTrigger": "scheduled_trigger",
}
_STATUS_BY_SEVERITY = {None: "valid", "info": "valid", "warning": "warning", "error": "invalid"}
_RANK = {None: -1, "info": 0, "warning": 1, "error": 2}


def _excerpt(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return redact_text(text[:120] + ("…" if len(text) > 120 else ""))


class _Issues:
    """The validation issues of one list item: (zuora_id, rule, severity, field, detail)."""

    def __init__(self, zuora_id):
        self.zuora_id, self.rows, self.worst = zuora_id, [], None

    def add(self, rule: str, severity: str, field: str | None, detail: str) -> None:
        self.rows.append((self.zuora_id, rule, severity, field, detail))
        if _RANK[severity] > _RANK[self.worst]:
            self.worst = severity


def _text(item: dict, key: str, issues: _Issues, required: bool = False) -> str | None:
    value = item.get(key)
    if value is None:
        if required:
            issues.add("missing_field", "error", key, f"{key} is missing")
    elif not isinstance(value, str):
        issues.add(
            "wrong_type", "error", key, f"{key} should be text, got {type(value).__name__}: {_excerpt(value)}"
        )
        return None
    elif len(value) > LONG_TEXT:
        issues.add("long_value", "warning", key, f"{key} is {len(value)} characters long")
    return value


def _boolean(item: dict, key: str, issues: _Issues) -> bool | None:
    value = item.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        issues.add("string_boolean", "info", key, f"{key} given as text {value!r}")
        return value.lower() == "true"
    issues.add("wrong_type", "error", key, f"{key} should be a boolean: {_excerpt(value)}")
    return None


def _timestamp(item: dict, key: str, issues: _Issues):
    try:
        parsed = parse_zuora_timestamp(item.get(key))
    except ValueError as exc:
        issues.add("bad_timestamp", "error", key, _excerpt(str(exc)))
        return None
    if parsed is None and key == "updatedAt":
        issues.add("missing_field", "warning", key, "updatedAt is missing: changes cannot be ordered by time")
    return parsed


def _dead_reason(zuora_id, item, repairs) -> str | None:
    """The reason a list item cannot be stored at all, or None."""
    if "unstorable" in repairs:
        return "unstorable"
    if not isinstance(item, dict):
        return "not_an_object"
    if zuora_id is None:
        return "missing_id"
    return None


def _active_version(version) -> tuple[int | None, str | None]:
    if not isinstance(version, dict):
        return None, None
    version_id, number = version.get("id"), version.get("version")
    usable_id = isinstance(version_id, int) and not isinstance(version_id, bool) and abs(version_id) < 2**63
    return (version_id if usable_id else None), (number if isinstance(number, str) else None)


def normalise_item(position: int, zuora_id, item, repairs: list[str]) -> tuple[dict, list[tuple]]:
    """One staged list item to a row of staging_workflows (a dict keyed by column, without
    run_id and customer_id) and its issues."""
    issues = _Issues(zuora_id)
    reason = _dead_reason(zuora_id, item, repairs)
    if reason:
        raw_id = item.get("id") if isinstance(item, dict) else None
        issues.add(reason, "error", "id", f"list item cannot be stored ({reason}); id={_excerpt(raw_id)}")
        return (
            {
                "position": position,
                "zuora_id": zuora_id,
                "disposition": "dead_letter",
                "reason": reason,
                "validation_status": "invalid",
            },
            issues.rows,
        )
    row = {"position": position, "zuora_id": zuora_id, "disposition": "store", "reason": None}
    for key in _TEXTS:
        row[key] = _text(item, key, issues, required=key == "name")
    for source, target in _TRIGGERS.items():
        row[target] = _boolean(item, source, issues)
    row["interval"] = _text(item, "interval", issues)
    row["timezone"] = _text(item, "timezone", issues)
    row["timezone_iana"] = timezone_to_iana(row["timezone"])
    row["zuora_created_at"] = _timestamp(item, "createdAt", issues)
    row["zuora_updated_at"] = _timestamp(item, "updatedAt", issues)
    version = item.get("active_version")
    row["active_version_id"], row["active_version"] = _active_version(version)
    status, timezone, interval = row["status"], row["timezone"], row["interval"]
    if status is not None and status not in STATUSES:
        issues.add("unknown_status", "warning", "status", f"status {_excerpt(status)}")
    if timezone and not row["timezone_iana"]:
        issues.add("unknown_timezone", "warning", "timezone", f"no IANA zone for {_excerpt(timezone)}")
    if interval and not _CRON_FIELDS.match(interval):
        issues.add(
            "bad_interval", "warning", "interval", f"not a 5 to 7 field cron expression: {_excerpt(interval)}"
        )
    if version is not None and not isinstance(version, dict):
        issues.add("wrong_type", "warning", "active_version", "should be an object")
    for repair in repairs:
        issues.add(
            repair, "warning", None, "removed characters Postgres cannot store (NUL or lone surrogates)"
        )
    row["validation_status"] = _STATUS_BY_SEVERITY[issues.worst]
    return row, issues.rows


_DUPLICATES = """
WITH ranked AS (
    SELECT position, row_number() OVER (PARTITION BY zuora_id
                                        ORDER BY zuora_updated_at DESC NULLS LAST, position) AS rank
      FROM zuora.staging_workflows
     WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s AND disposition = 'store')
UPDATE zuora.staging_workflows s
   SET disposition = 'dead_letter', reason = 'duplicate_id'
  FROM ranked r
 WHERE s.run_id = %(run_id)s AND s.customer_id = %(customer_id)s AND s.position = r.position
   AND r.rank > 1
RETURNING s.zuora_id
"""

_EXPORT_CHECKS = """
WITH mismatched AS (
    UPDATE zuora.staging_exports
       SET ok = false, error_type = 'ExportIdMismatch',
           error_message = 'export is of workflow ' || coalesce(definition -> 'workflow' ->> 'id', 'null')
                           || ', not ' || zuora_id
     WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s AND ok
       AND (definition -> 'workflow' ->> 'id') IS DISTINCT FROM zuora_id::text
    RETURNING zuora_id, error_message)
INSERT INTO zuora.validation_issues (customer_id, zuora_id, run_id, rule, severity, field, detail)
SELECT %(customer_id)s, zuora_id, %(run_id)s, 'export_id_mismatch', 'error', 'workflow.id', error_message
  FROM mismatched
UNION ALL
SELECT %(customer_id)s, zuora_id, %(run_id)s, 'export_without_tasks', 'warning', 'tasks',
       'the export has no tasks array'
  FROM zuora.staging_exports
 WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s AND ok
   AND jsonb_typeof(definition -> 'tasks') IS DISTINCT FROM 'array'
UNION ALL
SELECT %(customer_id)s, zuora_id, %(run_id)s, unnest(repairs), 'warning', 'definition',
       'removed characters Postgres cannot store (NUL or lone surrogates)'
  FROM zuora.staging_exports
 WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s AND ok
"""


def validate_staged(conn, run_id: str, customer_id: str) -> dict[str, int]:
    """Validate and normalise the staged listing; returns counts of the outcome.

    Rerunning it replaces the run's earlier validation. Raises LookupError when nothing is
    staged for ``(run_id, customer_id)``.
    """
    key = {"run_id": run_id, "customer_id": customer_id}
    counts = {"validated": 0, "invalid": 0, "warnings": 0, "to_dead_letter": 0, "issues": 0}
    with committing(conn):
        listing = conn.execute(
            "SELECT listed FROM zuora.staging_listings WHERE run_id = %(run_id)s "
            "AND customer_id = %(customer_id)s FOR UPDATE",
            key,
        ).fetchone()
        if listing is None:
            raise LookupError(f"nothing staged for customer {customer_id} in run {run_id}")
        conn.execute(
            "DELETE FROM zuora.staging_workflows WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s",
            key,
        )
        conn.execute(
            "DELETE FROM zuora.validation_issues WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s",
            key,
        )
        with conn.cursor(name="staged_list_items") as source:
            source.execute(
                "SELECT position, zuora_id, item, repairs FROM zuora.staging_list_items "
                "WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s "
                "ORDER BY position",
                key,
            )
            while items := source.fetchmany(CHUNK):
                rows, issues = [], []
                for item in items:
                    row, item_issues = normalise_item(*item)
                    rows.append(row)
                    issues.extend(item_issues)
                    if row["disposition"] == "store" and row["validation_status"] != "valid":
                        counts["invalid" if row["validation_status"] == "invalid" else "warnings"] += 1
                _write_chunk(conn, rows, issues, key)
                counts["validated"] += len(rows)
        conn.execute("ANALYZE zuora.staging_workflows")
        duplicates = conn.execute(_DUPLICATES, key).fetchall()
        for (zuora_id,) in duplicates:
            conn.execute(
                "INSERT INTO zuora.validation_issues (customer_id, zuora_id, run_id, rule, "
                "severity, field, detail) VALUES (%(customer_id)s, %(id)s, %(run_id)s, "
                "'duplicate_id', 'error', 'id', 'listed more than once; the newest is kept')",
                {**key, "id": zuora_id},
            )
        conn.execute(_EXPORT_CHECKS, key)
        conn.execute(
            "UPDATE zuora.staging_listings SET validated_at = now() "
            "WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s",
            key,
        )
        counts["to_dead_letter"] = conn.execute(
            "SELECT count(*) FROM zuora.staging_workflows WHERE run_id = %(run_id)s "
            "AND customer_id = %(customer_id)s AND disposition = 'dead_letter'",
            key,
        ).fetchone()[0]
        counts["issues"] = conn.execute(
            "SELECT count(*) FROM zuora.validation_issues WHERE run_id = %(run_id)s "
            "AND customer_id = %(customer_id)s",
            key,
        ).fetchone()[0]
    return counts


def _write_chunk(conn, rows: list[dict], issues: list[tuple], key: dict) -> None:
    with conn.cursor() as cur:
        with cur.copy(f"COPY zuora.staging_workflows ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([{**row, **key}.get(column) for column in _COLUMNS])
        with cur.copy(
            "COPY zuora.validation_issues (customer_id, zuora_id, run_id, rule, severity, "
            "field, detail) FROM STDIN"
        ) as copy:
            for zuora_id, rule, severity, field, detail in issues:
                copy.write_row((key["customer_id"], zuora_id, key["run_id"], rule, severity, field, detail))
