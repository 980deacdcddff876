"""Versioned SQL migrations for the ``zuora`` schema.

``apply_migrations(conn)`` runs the files ``sql/migrations/NNNN_name.sql`` (see
``zuora.warehouse.sql``) not yet in the ledger ``zuora.schema_migrations``, in order, then
(re)creates the views in ``sql/views/`` and the ``zuora_reader`` grants (``sql/roles.sql``). Everything
happens in one transaction under an advisory lock, so concurrent callers apply each
migration once and a failing migration leaves nothing half done.
"""

from __future__ import annotations

import hashlib
import logging
import re
from importlib.resources.abc import Traversable

from zuora.warehouse.sql import sql_files, sql_text
from zuora.warehouse.transactions import committing

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x7A756F7261  # "zuora": one advisory lock key for schema changes

_LEDGER = """
CREATE SCHEMA IF NOT EXISTS zuora;
CREATE TABLE IF NOT EXISTS zuora.schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migration_files() -> list[tuple[str, str, Traversable]]:
    """``(version, name, path)`` of every migration file, in version order."""
    found = []
    for path in sql_files("migrations"):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append((match.group(1), match.group(2), path))
    return found


def apply_migrations(conn) -> list[str]:
    """Apply pending migrations, views and grants; returns the versions applied now."""
    applied_now = []
    with committing(conn):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(_LEDGER)
        done = dict(conn.execute("SELECT version, checksum FROM zuora.schema_migrations").fetchall())
        for version, name, path in migration_files():
            text = path.read_text()
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    log.warning(
                        "migration %s_%s changed after it was applied; not re-running it", version, name
                    )
                continue
            log.info("applying migration %s_%s", version, name)
            conn.execute(text)
            conn.execute(
                "INSERT INTO zuora.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (version, name, checksum),
            )
            applied_now.append(version)
        for path in sql_files("views"):
            conn.execute(path.read_text())
        conn.execute(sql_text("roles.sql"))
    return applied_now
