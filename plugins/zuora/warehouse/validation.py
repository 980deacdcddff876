"""Validation and transformation of a staged listing (and its exports).

``validate_staged`` reads the customer's staged list items in chunks into pandas, checks
required fields, types and formats, converts timestamps to UTC and Rails time zones to IANA,
and writes one normalised row per list item to ``zuora.staging_workflows``: ``store`` (with
``validation_status`` valid / warning / invalid) or ``dead_letter`` (no usable id, not an
object, a duplicate id, unstorable). Each problem becomes a ``zuora.validation_issues`` row.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from zuora.warehouse.redaction import redact_text
from zuora.warehouse.transactions import committing
from zuora.warehouse.transform import parse_zuora_timestamp, timezone_to_iana

CHUNK = 2000
LONG_TEXT = 10_000
STATUSES = {"Active", "Inactive"}
_CRON_FIELDS = re.compile(r"^\S+(\s+\S+){4,6}$")
_COLUMNS = ("run_id", "customer_id", "position", "zuora_id", "disposition", "reason", "name",
            "description", "status", "type", "ondemand_trigger", "callout_trigger",
            "scheduled_trigger", "interval", "timezone", "timezone_iana", "active_version_id",
            "active_version", "zuora_created_at", "zuora_updated_at", "validation_status")
_TRIGGERS = {"ondemandTrigger": "ondemand_trigger", "calloutTrigger": "callout_trigger",
             "scheduledTrigger": "scheduled_trigger"}


def _excerpt(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return redact_text(text[:120] + ("…" if len(text) > 120 else ""))


class _Issues:
    """Collects validation issues of one chunk: (zuora_id, rule, severity, field, detail)."""

    def __init__(self):
        self.rows: list[tuple] = []

    def add(self, zuora_id, rule: str, severity: str, field: str | None, detail: str) -> None:
        self.rows.append((zuora_id, rule, severity, field, detail))


def _text(frame: pd.DataFrame, key: str, issues: _Issues, required: bool = False) -> pd.Series:
    values = [item.get(key) for item in frame["item"]]
    for zid, value in zip(frame["zuora_id"], values):
        if value is None:
            if required:
                issues.add(zid, "missing_field", "error", key, f"{key} is missing")
        elif not isinstance(value, str):
            issues.add(zid, "wrong_type", "error", key,
                       f"{key} should be text, got {type(value).__name__}: {_excerpt(value)}")
        elif len(value) > LONG_TEXT:
            issues.add(zid, "long_value", "warning", key, f"{key} is {len(value)} characters long")
    # dtype=object: pandas 3 would infer its string dtype and turn None into NaN
    return pd.Series([v if isinstance(v, str) else None for v in values], index=frame.index,
                     dtype=object)


def _boolean(frame: pd.DataFrame, key: str, issues: _Issues) -> pd.Series:
    def convert(zid, value):
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            issues.add(zid, "string_boolean", "info", key, f"{key} given as text {value!r}")
            return value.lower() == "true"
        issues.add(zid, "wrong_type", "error", key, f"{key} should be a boolean: {_excerpt(value)}")
        return None
    return pd.Series([convert(z, item.get(key)) for z, item in zip(frame["zuora_id"], frame["item"])],
                     index=frame.index, dtype=object)


def _timestamp(frame: pd.DataFrame, key: str, issues: _Issues) -> pd.Series:
    def convert(zid, value):
        try:
            parsed = parse_zuora_timestamp(value)
        except ValueError as exc:
            issues.add(zid, "bad_timestamp", "error", key, _excerpt(str(exc)))
            return None
        if parsed is None and key == "updatedAt":
            issues.add(zid, "missing_field", "warning", key, "updatedAt is missing: changes "
                       "cannot be ordered by time")
        return parsed
    return pd.Series([convert(z, item.get(key)) for z, item in zip(frame["zuora_id"], frame["item"])],
                     index=frame.index, dtype=object)


def _dead_rows(frame: pd.DataFrame, issues: _Issues) -> pd.Series:
    """The reason a row cannot be stored at all, or None."""
    def reason(row):
        if "unstorable" in row["repairs"]:
            return "unstorable"
        if not isinstance(row["item"], dict):
            return "not_an_object"
        if row["zuora_id"] is None:
            return "missing_id"
        return None
    reasons = pd.Series([reason(row) for _, row in frame.iterrows()], index=frame.index, dtype=object)
    for zid, why, item in zip(frame["zuora_id"], reasons, frame["item"]):
        if why:
            raw_id = item.get("id") if isinstance(item, dict) else None
            issues.add(zid, why, "error", "id",
                       f"list item cannot be stored ({why}); id={_excerpt(raw_id)}")
    return reasons


def normalise_chunk(frame: pd.DataFrame, run_id: str, customer_id: str,
                    issues: _Issues) -> pd.DataFrame:
    """Staged list items (position, zuora_id, item, repairs) to rows of staging_workflows."""
    reasons = _dead_rows(frame, issues)
    live = frame[reasons.isna()].copy()
    live_issues = _Issues()
    out = pd.DataFrame({"position": live["position"], "zuora_id": live["zuora_id"]})
    out["name"] = _text(live, "name", live_issues, required=True)
    out["description"] = _text(live, "description", live_issues)
    out["status"] = _text(live, "status", live_issues)
    out["type"] = _text(live, "type", live_issues)
    for source, target in _TRIGGERS.items():
        out[target] = _boolean(live, source, live_issues)
    out["interval"] = _text(live, "interval", live_issues)
    out["timezone"] = _text(live, "timezone", live_issues)
    out["timezone_iana"] = pd.Series([timezone_to_iana(tz) for tz in out["timezone"]],
                                     index=out.index, dtype=object)
    out["zuora_created_at"] = _timestamp(live, "createdAt", live_issues)
    out["zuora_updated_at"] = _timestamp(live, "updatedAt", live_issues)
    version = [item.get("active_version") for item in live["item"]]
    out["active_version_id"] = pd.Series(
        [v.get("id") if isinstance(v, dict) and isinstance(v.get("id"), int)
         and not isinstance(v.get("id"), bool) and abs(v["id"]) < 2**63 else None for v in version],
        index=live.index, dtype=object)
    out["active_version"] = pd.Series(
        [v.get("version") if isinstance(v, dict) and isinstance(v.get("version"), str) else None
         for v in version], index=live.index, dtype=object)
    for zid, status, tz, iana, interval, v, repairs in zip(
            out["zuora_id"], out["status"], out["timezone"], out["timezone_iana"], out["interval"],
            version, live["repairs"]):
        if status is not None and status not in STATUSES:
            live_issues.add(zid, "unknown_status", "warning", "status", f"status {_excerpt(status)}")
        if tz and not iana:
            live_issues.add(zid, "unknown_timezone", "warning", "timezone",
                            f"no IANA zone for {_excerpt(tz)}")
        if interval and not _CRON_FIELDS.match(interval):
            live_issues.add(zid, "bad_interval", "warning", "interval",
                            f"not a 5 to 7 field cron expression: {_excerpt(interval)}")
        if v is not None and not isinstance(v, dict):
            live_issues.add(zid, "wrong_type", "warning", "active_version", "should be an object")
        for repair in repairs:
            live_issues.add(zid, repair, "warning", None,
                            "removed characters Postgres cannot store (NUL or lone surrogates)")
    worst = {}
    for zid, _, severity, _, _ in live_issues.rows:
        rank = {"info": 0, "warning": 1, "error": 2}[severity]
        worst[zid] = max(worst.get(zid, 0), rank)
    out["validation_status"] = out["zuora_id"].map(
        lambda z: ("valid", "valid", "warning", "invalid")[worst.get(z, -1) + 1])
    out["disposition"], out["reason"] = "store", None
    issues.rows.extend(live_issues.rows)

    dead = pd.DataFrame({"position": frame["position"][reasons.notna()],
                         "zuora_id": frame["zuora_id"][reasons.notna()],
                         "reason": reasons[reasons.notna()]})
    dead["disposition"], dead["validation_status"] = "dead_letter", "invalid"
    result = pd.concat([out, dead], ignore_index=True) if len(dead) else out
    result["run_id"], result["customer_id"] = run_id, customer_id
    return result.reindex(columns=list(_COLUMNS))


def _cell(value):
    """A frame value as psycopg wants it: NaN/NaT to None, numpy scalars to Python."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    return value


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
        listing = conn.execute("SELECT listed FROM zuora.staging_listings WHERE run_id = %(run_id)s "
                               "AND customer_id = %(customer_id)s FOR UPDATE", key).fetchone()
        if listing is None:
            raise LookupError(f"nothing staged for customer {customer_id} in run {run_id}")
        conn.execute("DELETE FROM zuora.staging_workflows WHERE run_id = %(run_id)s "
                     "AND customer_id = %(customer_id)s", key)
        conn.execute("DELETE FROM zuora.validation_issues WHERE run_id = %(run_id)s "
                     "AND customer_id = %(customer_id)s", key)
        with conn.cursor(name="staged_list_items") as source:
            source.execute("SELECT position, zuora_id, item, repairs FROM zuora.staging_list_items "
                           "WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s "
                           "ORDER BY position", key)
            while rows := source.fetchmany(CHUNK):
                frame = pd.DataFrame(rows, columns=["position", "zuora_id", "item", "repairs"],
                                     dtype=object)
                issues = _Issues()
                result = normalise_chunk(frame, run_id, customer_id, issues)
                _write_chunk(conn, result, issues, key)
                counts["validated"] += len(result)
                stored = result["disposition"] == "store"
                counts["invalid"] += int((stored & (result["validation_status"] == "invalid")).sum())
                counts["warnings"] += int((stored & (result["validation_status"] == "warning")).sum())
        conn.execute("ANALYZE zuora.staging_workflows")
        duplicates = conn.execute(_DUPLICATES, key).fetchall()
        for (zuora_id,) in duplicates:
            conn.execute("INSERT INTO zuora.validation_issues (customer_id, zuora_id, run_id, rule, "
                         "severity, field, detail) VALUES (%(customer_id)s, %(id)s, %(run_id)s, "
                         "'duplicate_id', 'error', 'id', 'listed more than once; the newest is kept')",
                         {**key, "id": zuora_id})
        conn.execute(_EXPORT_CHECKS, key)
        conn.execute("UPDATE zuora.staging_listings SET validated_at = now() "
                     "WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s", key)
        counts["to_dead_letter"] = conn.execute(
            "SELECT count(*) FROM zuora.staging_workflows WHERE run_id = %(run_id)s "
            "AND customer_id = %(customer_id)s AND disposition = 'dead_letter'", key).fetchone()[0]
        counts["issues"] = conn.execute(
            "SELECT count(*) FROM zuora.validation_issues WHERE run_id = %(run_id)s "
            "AND customer_id = %(customer_id)s", key).fetchone()[0]
    return counts


def _write_chunk(conn, result: pd.DataFrame, issues: _Issues, key: dict) -> None:
    with conn.cursor() as cur:
        with cur.copy(f"COPY zuora.staging_workflows ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in result.itertuples(index=False, name=None):
                copy.write_row([_cell(value) for value in row])
        with cur.copy("COPY zuora.validation_issues (customer_id, zuora_id, run_id, rule, severity, "
                      "field, detail) FROM STDIN") as copy:
            for zuora_id, rule, severity, field, detail in issues.rows:
                copy.write_row((key["customer_id"], _cell(zuora_id), key["run_id"], rule, severity,
                                field, detail))
