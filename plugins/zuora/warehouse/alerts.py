"""``zuora.alerts``, the table: every alert raised, stored before it is sent.

    alert_id = record_alert(conn, alert)           # committed, channel 'pending'
    record_channel(conn, alert_id, "http")         # where it went, or "failed: <error type>"
    earlier_alert(conn, alert, since)              # (alert_id, channel) of the same alert, or None

``alert`` is anything with ``kind``, ``severity``, ``title`` and ``details`` (a
``zuora.alerts.Alert``); sending it is ``zuora.alerts``' business, not the warehouse's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from psycopg.types.json import Jsonb

from zuora.warehouse.transactions import committing

PENDING = "pending"  # stored, not (yet) known to be sent


class StoredAlert(Protocol):
    kind: str
    severity: str
    title: str
    details: dict[str, Any]


def record_alert(conn, alert: StoredAlert) -> int:
    """Store ``alert`` with channel ``pending`` and commit; returns its ``alert_id``."""
    with committing(conn):
        (alert_id,) = conn.execute(
            """INSERT INTO zuora.alerts (kind, severity, title, details, channel)
               VALUES (%s, %s, %s, %s, %s) RETURNING alert_id""",
            (alert.kind, alert.severity, alert.title, Jsonb(alert.details), PENDING),
        ).fetchone()
    return alert_id


def record_channel(conn, alert_id: int, channel: str) -> None:
    """Record where the stored alert ``alert_id`` went (or how sending it failed)."""
    with committing(conn):
        conn.execute("UPDATE zuora.alerts SET channel = %s WHERE alert_id = %s", (channel, alert_id))


def earlier_alert(conn, alert: StoredAlert, since: datetime) -> tuple[int, str] | None:
    """``(alert_id, channel)`` of the latest alert equal to ``alert`` (kind, title, details)
    stored at or after ``since``, else None: what an earlier try of the same run raised."""
    with committing(conn):
        return conn.execute(
            """SELECT alert_id, channel FROM zuora.alerts
                WHERE kind = %s AND title = %s AND details = %s AND raised_at >= %s
                ORDER BY alert_id DESC LIMIT 1""",
            (alert.kind, alert.title, Jsonb(alert.details), since),
        ).fetchone()
