"""What "nothing was lost" means, checked against the warehouse tables after a faulty run.

``assert_consistent`` checks one customer after a run: the ledger balances (listed = stored +
dead-lettered, from ``sync_runs`` and from the tables), no staging is left behind, the stored
workflows are exactly the tenant's, every stored workflow has a definition or an open export
dead letter, the encrypted originals are byte-for-byte the exports Zuora serves, and the
history of every workflow is a consistent chain ending in its current row.
"""

from __future__ import annotations

from collections import defaultdict

import psycopg

from zuora import warehouse

STAGING = ("staging_listings", "staging_list_items", "staging_workflows", "staging_exports")


def rows(uri: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(uri) as conn:
        return conn.execute(sql, params).fetchall()


def snapshot(uri: str, customer_id: str) -> dict:
    """Everything the sync keeps about a customer (what must not change when a merge dies)."""
    return {
        "workflows": rows(
            uri, "SELECT * FROM zuora.workflows WHERE customer_id = %s ORDER BY zuora_id", customer_id
        ),
        "definitions": rows(
            uri,
            "SELECT zuora_id, version, definition_hash, original_hash, "
            "exported_at, run_id, md5(original_encrypted) FROM "
            "zuora.workflow_definitions WHERE customer_id = %s ORDER BY 1",
            customer_id,
        ),
        "history": rows(
            uri,
            "SELECT * FROM zuora.workflow_history WHERE customer_id = %s ORDER BY history_id",
            customer_id,
        ),
        "dead_letters": rows(
            uri,
            "SELECT * FROM zuora.dead_letters WHERE customer_id = %s ORDER BY dead_letter_id",
            customer_id,
        ),
        "sync_runs": rows(
            uri,
            "SELECT run_id, status, listed, stored, dead_lettered, inserted, "
            "updated, deleted FROM zuora.sync_runs WHERE customer_id = %s "
            "AND status = 'success' ORDER BY run_id",
            customer_id,
        ),
    }


def current_ids(uri: str, customer_id: str) -> set[int]:
    return {
        r[0]
        for r in rows(
            uri,
            "SELECT zuora_id FROM zuora.workflows WHERE customer_id = %s AND deleted_at IS NULL",
            customer_id,
        )
    }


def ledger(uri: str, run_id: str, customer_id: str) -> dict:
    found = rows(
        uri,
        "SELECT status, listed, stored, dead_lettered, listing_complete, error, "
        "exports_failed, rate_limited, api_requests FROM zuora.sync_runs "
        "WHERE run_id = %s AND customer_id = %s",
        run_id,
        customer_id,
    )
    assert found, f"no sync_runs row for {customer_id} in {run_id}"
    return dict(
        zip(
            (
                "status",
                "listed",
                "stored",
                "dead_lettered",
                "listing_complete",
                "error",
                "exports_failed",
                "rate_limited",
                "api_requests",
            ),
            found[0],
            strict=True,
        )
    )


def assert_history_consistent(uri: str, customer_id: str) -> None:
    """Each workflow: one 'insert' first, each row continuing from the state the previous left,
    the last row matching the workflow's current row and definition."""
    history = defaultdict(list)
    for zuora_id, kind, old_hash, new_hash, definition_hash in rows(
        uri,
        """
            SELECT zuora_id, change_kind, old_hash, new_hash, snapshot ->> 'definition_hash'
              FROM zuora.workflow_history WHERE customer_id = %s ORDER BY history_id""",
        customer_id,
    ):
        history[zuora_id].append((kind, old_hash, new_hash, definition_hash))
    current = {
        r[0]: r[1:]
        for r in rows(
            uri,
            """
            SELECT w.zuora_id, w.content_hash, w.deleted_at IS NOT NULL, d.definition_hash
              FROM zuora.workflows w LEFT JOIN zuora.workflow_definitions d USING (customer_id, zuora_id)
             WHERE w.customer_id = %s""",
            customer_id,
        )
    }
    assert set(history) == set(current), "history and workflows name different workflows"
    for zuora_id, chain in history.items():
        kinds = [c[0] for c in chain]
        assert kinds[0] == "insert" and kinds.count("insert") == 1, (zuora_id, kinds)
        state = chain[0][2]  # the content hash after the row; None once deleted
        for kind, old_hash, new_hash, _ in chain[1:]:
            if kind == "update":
                assert state is not None and old_hash == state, (zuora_id, kinds)
                state = new_hash
            elif kind == "delete":
                assert state is not None and old_hash == state and new_hash is None, (zuora_id, kinds)
                state = None
            else:  # restore: only after a delete
                assert state is None, (zuora_id, kinds)
                state = new_hash
        content_hash, deleted, definition_hash = current[zuora_id]
        if deleted:
            assert state is None, f"workflow {zuora_id} is deleted but its history is {kinds}"
        else:
            assert state == content_hash, f"workflow {zuora_id}: history ends at another hash"
            assert chain[-1][3] == definition_hash, f"workflow {zuora_id}: history definition"


def assert_consistent(
    uri: str,
    customer_id: str,
    run_id: str,
    *,
    tenant=None,
    expected_ids: set[int] | None = None,
    key: bytes | None = None,
    dead_lettered: int = 0,
) -> dict:
    """The checks of the module docstring for one customer after run ``run_id``."""
    run = ledger(uri, run_id, customer_id)
    assert run["status"] == "success", run
    assert run["listing_complete"] is True
    assert run["listed"] == run["stored"] + run["dead_lettered"], run
    assert run["dead_lettered"] == dead_lettered, run
    open_item_letters = rows(
        uri,
        "SELECT count(*) FROM zuora.dead_letters WHERE customer_id = %s "
        "AND stage = 'validate' AND resolved_at IS NULL AND run_id = %s",
        customer_id,
        run_id,
    )[0][0]
    assert open_item_letters == run["dead_lettered"], "dead-lettered items missing from dead_letters"
    for table in STAGING:
        left = rows(
            uri,
            f"SELECT count(*) FROM zuora.{table} WHERE run_id = %s AND customer_id = %s",
            run_id,
            customer_id,
        )[0][0]
        assert left == 0, f"{left} rows of {table} left behind"

    stored = current_ids(uri, customer_id)
    if tenant is not None:
        expected_ids = set(tenant.workflow_ids())
    if expected_ids is not None:
        assert stored == expected_ids, (sorted(expected_ids - stored), sorted(stored - expected_ids))
        assert run["stored"] == len(expected_ids)

    missing = rows(
        uri,
        """
        SELECT w.zuora_id FROM zuora.workflows w
         WHERE w.customer_id = %s AND w.deleted_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM zuora.workflow_definitions d
                            WHERE d.customer_id = w.customer_id AND d.zuora_id = w.zuora_id)
           AND NOT EXISTS (SELECT 1 FROM zuora.dead_letters l
                            WHERE l.customer_id = w.customer_id AND l.zuora_id = w.zuora_id
                              AND l.stage = 'export' AND l.resolved_at IS NULL)""",
        customer_id,
    )
    assert not missing, f"workflows with neither a definition nor an export dead letter: {missing}"

    if tenant is not None and key is not None:
        with psycopg.connect(uri) as conn:
            for zuora_id in sorted(stored):
                has_definition = conn.execute(
                    "SELECT 1 FROM zuora.workflow_definitions WHERE customer_id = %s AND zuora_id = %s",
                    (customer_id, zuora_id),
                ).fetchone()
                if has_definition:
                    original = warehouse.decrypt_original(conn, customer_id, zuora_id, key)
                    assert original == tenant.admin.expected_export(tenant.tenant_id, zuora_id), (
                        f"stored export of workflow {zuora_id} differs from Zuora's"
                    )
    assert_history_consistent(uri, customer_id)
    return run
