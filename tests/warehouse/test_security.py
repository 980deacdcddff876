"""No secret in any readable column; the encrypted original round-trips exactly."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import uuid
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet, InvalidToken

from tests.warehouse.factories import SECRET, export, list_item, sync
from tests.warehouse.reader_logins import reader_login, run_script
from zuora import warehouse
from zuora.warehouse import migrations
from zuora.warehouse.transactions import committing

ROOT = Path(__file__).resolve().parents[2]


def readable_text(conn) -> dict[str, str]:
    """Every column zuora_reader may read, of every table and view, as one text per column."""
    columns = conn.execute("""
        SELECT c.table_name, c.column_name
          FROM information_schema.columns c
         WHERE c.table_schema = 'zuora'
           AND has_column_privilege('zuora_reader', format('zuora.%I', c.table_name),
                                    c.column_name, 'SELECT')""").fetchall()
    texts = {}
    for table, column in columns:
        query = f"SELECT coalesce(string_agg(\"{column}\"::text, '\n'), '') FROM zuora.\"{table}\""
        texts[f"{table}.{column}"] = conn.execute(query).fetchone()[0]
    conn.rollback()
    return texts


def test_no_secret_anywhere_in_readable_tables(conn, key):
    leaky = {"name": f"Bearer {SECRET}in-list-item", "description": f"see ?token={SECRET}desc"}
    items = [list_item(1), list_item(2, **leaky), {"name": "no id", "note": f"password={SECRET}x"}]
    bad_export = export(3)
    bad_export["workflow"]["id"] = 999  # dead-lettered as a mismatch: its payload must be clean
    sync(
        conn,
        "r1",
        "acme",
        items + [list_item(3)],
        key=key,
        exports={3: bad_export},
        failures={2: RuntimeError(f"upstream said Authorization: Bearer {SECRET}in-error")},
    )
    sync(
        conn,
        "r2",
        "acme",
        [list_item(1, name="Changed", updated=list_item(9)["updatedAt"] and None)],
        key=key,
        full_refresh=True,
    )
    warehouse.record_dead_letter(
        conn,
        run_id="r3",
        customer_id="acme",
        stage="task",
        error_type="Boom",
        message=f"token={SECRET}task",
        payload=export(4),
    )
    texts = readable_text(conn)
    assert "workflow_definitions.definition" in texts and "workflow_history.snapshot" in texts
    assert "workflow_definitions.original_encrypted" not in texts
    assert "REDACTED" in texts["workflow_definitions.definition"]
    assert "REDACTED" in texts["dead_letters.payload"]
    leaks = {name: text.count(SECRET) for name, text in texts.items() if SECRET in text}
    assert leaks == {}
    # the secrets were there to leak: the encrypted originals hold them
    original = warehouse.decrypt_original(conn, "acme", 1, key)
    assert SECRET in repr(original)


def test_encrypted_original_round_trips_exactly(conn, key):
    tricky = export(5)
    tricky["workflow"]["description"] = "NUL\x00 and emoji 🎉 and lone \ud800 surrogate"
    tricky["tasks"][0]["parameters"]["big"] = 12345678901234567890
    tricky["tasks"][0]["parameters"]["float"] = 0.1
    sync(conn, "r1", "acme", [list_item(5)], exports={5: tricky}, key=key)
    restored = warehouse.decrypt_original(conn, "acme", 5, key)
    assert restored == tricky
    assert list(restored["workflow"]) == list(tricky["workflow"])  # key order kept
    with pytest.raises(InvalidToken):
        warehouse.decrypt_original(conn, "acme", 5, Fernet.generate_key())
    # key rotation: a new key first, the old one still decrypts
    rotated = Fernet.generate_key().decode() + "," + key.decode()
    assert warehouse.decrypt_original(conn, "acme", 5, rotated) == tricky


def all_text(conn) -> str:
    """Every column of every table in the schema, as text: what a superuser could read."""
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'zuora' AND table_type = 'BASE TABLE'"
        )
    ]
    text = "\n".join(
        conn.execute(f"SELECT coalesce(string_agg(t::text, '\n'), '') FROM zuora.\"{table}\" t").fetchone()[0]
        for table in tables
    )
    conn.rollback()
    return text


@pytest.mark.parametrize("with_key", [True, False], ids=["key", "no key"])
def test_a_run_that_fails_after_the_export_leaves_no_plaintext_original(conn, key, with_key):
    warehouse.stage_listing(conn, "r1", "acme", [list_item(1)], True)
    warehouse.stage_exports(
        conn, "r1", "acme", [(1, export(1), None)], encryption_key=key if with_key else None
    )
    # the run dies here: no validation, no merge; staging stays until retention sweeps it
    assert SECRET not in all_text(conn)
    staged = conn.execute(
        "SELECT original_hash, original_encrypted IS NOT NULL FROM zuora.staging_exports"
    ).fetchall()
    conn.rollback()
    assert len(staged) == 1 and staged[0][0] and staged[0][1] is with_key
    if with_key:  # and the encrypted original staged is what the merge stores
        warehouse.validate_staged(conn, "r1", "acme")
        warehouse.merge_customer(conn, "r1", "acme")
        assert warehouse.decrypt_original(conn, "acme", 1, key) == export(1)


def test_migration_clears_plaintext_left_by_older_versions(warehouse_uri):
    with psycopg.connect(warehouse_uri) as conn:
        with committing(conn):
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrations.MIGRATION_LOCK,))
            conn.execute(migrations._LEDGER)
            for version, name, path in migrations.migration_files()[:2]:
                conn.execute(path.read_text())
                conn.execute(
                    "INSERT INTO zuora.schema_migrations (version, name, checksum) VALUES (%s, %s, 'old')",
                    (version, name),
                )
            conn.execute(
                "INSERT INTO zuora.staging_exports (run_id, customer_id, zuora_id, ok, "
                "original_json) VALUES ('r0', 'acme', 1, true, %s)",
                (f"token={SECRET}",),
            )
        assert SECRET in all_text(conn)
        assert warehouse.apply_migrations(conn)[0] == "0003"
        assert SECRET not in all_text(conn)


def test_without_a_key_the_original_is_not_stored(conn, caplog):
    with caplog.at_level(logging.WARNING):
        sync(conn, "r1", "acme", [list_item(1)])
    assert "not stored" in caplog.text
    row = conn.execute("SELECT original_encrypted FROM zuora.workflow_definitions").fetchone()
    assert row == (None,)
    conn.rollback()
    with pytest.raises(LookupError):
        warehouse.decrypt_original(conn, "acme", 1, Fernet.generate_key())


# --- the read-only login (include/sql/reader_login.sql: docker-compose's Grafana and sync page)


@pytest.fixture
def reader(conn, migrated_uri):
    """A login made by reader_login.sql on the migrated warehouse of ``conn`` (two customers)."""
    conn.commit()
    with reader_login(migrated_uri) as login:
        yield login


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier (pg_authid.rolpassword) is that of ``password``."""
    iterations, salt, stored_key = re.fullmatch(
        r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):.+", verifier
    ).groups()
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)


def test_a_reader_login_reads_the_views_but_no_original(conn, reader):
    views = [
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'zuora'"
        )
    ]
    verifier = conn.execute(
        "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (reader.name,)
    ).fetchone()[0]
    conn.rollback()
    assert scram_matches(verifier, reader.password) and not scram_matches(verifier, reader.password + "x")
    assert len(views) >= 8
    with psycopg.connect(reader.uri) as login:
        assert login.execute(
            "SELECT current_user, current_setting('default_transaction_read_only')"
        ).fetchone() == (
            reader.name,
            "on",
        )
        for view in views:
            login.execute(f'SELECT * FROM zuora."{view}" LIMIT 1').fetchall()
        customers = login.execute("SELECT customer_id FROM zuora.customers ORDER BY 1").fetchall()
        assert customers == [("acme",), ("globex",)]
        login.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            login.execute("SELECT original_encrypted FROM zuora.workflow_definitions")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO zuora.customers (customer_id, name, zuora_conn_id) VALUES ('evil', 'Evil', 'zuora_evil')",
        "UPDATE zuora.sync_runs SET status = 'success'",
        "DELETE FROM zuora.dead_letters",
        "TRUNCATE zuora.alerts",
        "COPY zuora.customers TO PROGRAM 'id'",
        "COPY zuora.customers FROM PROGRAM 'echo evil'",
        "COPY (SELECT 1) TO '/tmp/zws-reader-was-here'",
        "SELECT pg_read_file('/etc/passwd')",
        "CREATE TABLE zuora.mine (x int)",
        "CREATE TABLE public.mine (x int)",
        "CREATE VIEW zuora.mine AS SELECT 1",
        "CREATE FUNCTION public.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE SCHEMA mine",
        "CREATE DATABASE mine",
        "CREATE ROLE mine",
        "ALTER TABLE zuora.customers ADD COLUMN mine text",
        "SET ROLE postgres",
    ],
)
def test_a_reader_login_cannot_write_run_programs_or_create(reader, statement):
    """Refused by privileges, not only by the default read-only transaction (which a session
    may switch off): each statement runs read-write, on its own."""
    with psycopg.connect(reader.uri, autocommit=True) as login:
        login.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            login.execute(statement)


def test_a_role_that_may_do_more_is_never_made_a_reader(conn, migrated_uri):
    name = f"zws_owner_{uuid.uuid4().hex[:10]}"
    conn.execute(f'CREATE ROLE "{name}" CREATEDB')
    conn.execute(f'GRANT INSERT ON zuora.customers TO "{name}"')
    conn.commit()
    try:
        for login in (name, "postgres"):  # a role with rights, the warehouse's owner
            result = run_script(migrated_uri, login, "pw")
            assert result.returncode != 0 and "may do more than read" in result.stderr, result.stderr
        row = conn.execute(
            "SELECT rolcanlogin, rolcreatedb, pg_has_role(%s, 'zuora_reader', 'MEMBER') FROM pg_roles WHERE rolname = %s",
            (name, name),
        ).fetchone()
        assert row == (False, True, False)
        assert conn.execute(
            "SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = 'postgres'"
        ).fetchone() == (True, True)
    finally:
        conn.rollback()
        conn.execute(f'REVOKE ALL ON zuora.customers FROM "{name}"')
        conn.execute(f'DROP ROLE "{name}"')
        conn.commit()


def test_the_dashboards_warehouse_panels_run_as_a_reader_login(reader):
    """Grafana's Warehouse datasource logs in as such a login: every panel over the warehouse
    still works (Grafana's macros replaced as Grafana does, for 30 days and every customer)."""
    dashboard = json.loads((ROOT / "monitoring/grafana/dashboards/zuora-workflow-sync.json").read_text())

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    queries = [
        t["rawSql"] for p in panels(dashboard["panels"]) for t in p.get("targets", []) if "rawSql" in t
    ]
    assert queries
    with psycopg.connect(reader.uri) as login:
        for query in queries:
            query = re.sub(r"\$__timeFilter\(([^()]*)\)", r"\1 > now() - interval '30 days'", query)
            query = query.replace("${customer:regex}", ".*")
            assert not re.search(r"\$(__|\{)", query), query
            login.execute(query).fetchall()
