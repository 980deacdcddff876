"""Hostile data is stored or dead-lettered safely, never crashing the merge."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.warehouse.factories import export, list_item, sync


def test_hostile_list_items_and_exports(conn):
    sql_name = "x'); DROP TABLE zuora.workflows; --"
    long_name = "L" * 1_000_000
    odd = "Zażółć 🐍 \u202eRTL\u200b zero-width \ufeff BOM 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
    deep = current = {}
    for _ in range(5000):
        current["next"] = {}
        current = current["next"]
    nested_export = export(6)
    nested_export["tasks"][0]["parameters"]["nested"] = deep
    items = [
        list_item(1, name=sql_name),
        list_item(2, name=long_name),
        list_item(3, name=odd),
        list_item(4, name="nul\x00name", description="a\x00b"),
        list_item(5, timezone_name="Mars/Olympus_Mons", interval="every tuesday", status="Zombie"),
        list_item(6),
        {"id": "DROP TABLE", "name": sql_name},
        {"id": 2**70},
    ]
    counts = sync(conn, "r1", "acme", items, exports={6: nested_export, 4: export(4, name="n\x00ul")})
    assert counts["listed"] == 8 and counts["stored"] == 6 and counts["dead_lettered"] == 2
    names = dict(conn.execute("SELECT zuora_id, name FROM zuora.workflows").fetchall())
    assert names[1] == sql_name and names[2] == long_name and names[3] == odd
    assert names[4] == "nulname"
    rules = {(r[0], r[1]) for r in conn.execute("SELECT zuora_id, rule FROM zuora.validation_issues")}
    assert {
        (4, "nul_bytes"),
        (2, "long_value"),
        (5, "unknown_timezone"),
        (5, "bad_interval"),
        (5, "unknown_status"),
    } <= rules
    definition_name = conn.execute(
        "SELECT definition -> 'workflow' ->> 'name' FROM zuora.workflow_definitions WHERE zuora_id = 4"
    ).fetchone()[0]
    assert definition_name == "nul"
    # too deep to serialise: the export is dead-lettered, the workflow itself is stored
    letter = conn.execute("SELECT stage, error_type FROM zuora.dead_letters WHERE zuora_id = 6").fetchone()
    assert letter == ("export", "ValueError")
    assert conn.execute("SELECT count(*) FROM zuora.workflows").fetchone()[0] == 6
    assert conn.execute("SELECT to_regclass('zuora.workflows') IS NOT NULL").fetchone()[0]


def test_a_duplicated_id_is_judged_by_the_copy_that_is_kept(conn):
    """The newest copy of a workflow listed twice is stored with its own validation status,
    whatever is wrong with the older copy (dead-lettered as a duplicate)."""
    older = list_item(7, name=None, createdAt=12345, updated=datetime(2024, 1, 1, tzinfo=UTC))
    newer = list_item(7, updated=datetime(2024, 6, 1, tzinfo=UTC))
    counts = sync(conn, "r1", "acme", [older, list_item(8), newer])
    assert counts["listed"] == 3 and counts["stored"] == 2 and counts["dead_lettered"] == 1
    assert conn.execute(
        "SELECT name, validation_status FROM zuora.workflows WHERE zuora_id = 7"
    ).fetchone() == ("Workflow 7", "valid")
    rules = {r[0] for r in conn.execute("SELECT rule FROM zuora.validation_issues WHERE zuora_id = 7")}
    assert {"bad_timestamp", "duplicate_id"} <= rules


def test_stage_exports_holds_one_export_at_a_time(conn):
    """Thousands of large exports: each is released before the next is asked for."""
    import weakref

    from zuora import warehouse

    class Export(dict):
        pass  # a dict that can be weakly referenced

    alive = []
    count = 300

    def exports():
        for i in range(1, count + 1):
            # exports hold no reference cycles: refcounting frees each one as soon as it is let go
            assert sum(ref() is not None for ref in alive) <= 1, "exports are being accumulated"
            body = Export(export(i))
            body["tasks"][0]["parameters"]["zoql"] = "x" * 300_000  # ~300 KB each, ~90 MB total
            alive.append(weakref.ref(body))
            yield i, body, None

    warehouse.stage_listing(conn, "r1", "acme", [list_item(i) for i in range(1, count + 1)], True)
    counts = warehouse.stage_exports(conn, "r1", "acme", exports())
    assert counts == {"exported": count, "exports_failed": 0, "exports_unchanged": 0}
    size = conn.execute("SELECT sum(size_bytes) FROM zuora.staging_exports").fetchone()[0]
    assert size > count * 300_000
