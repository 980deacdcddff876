"""The Zuora sync page in the api-server: registered as a plugin with its views, behind
Airflow's login and the auth manager's DAG permission, its figures those of zuora.sync_runs,
every hostile name escaped and no secret on it."""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from zuora import warehouse

NOW = datetime.now(UTC)
HOSTILE_ID = '"><img src=x onerror=alert(1)>'
HOSTILE_NAME = "<script>alert('name')</script>"
LONG_NAME = "\u202eevil\u200b" + "🦄Ω" * 2000 + "<marquee>end</marquee>"
SECRET = "s3cret-NEVER-ON-THE-PAGE"
HOSTILE_WORKFLOW = "<script>alert('switched off')</script>"


def days_ago(ago: timedelta) -> int:
    """How many UTC dates before today a run that started ``ago`` before NOW is."""
    return (NOW.date() - (NOW - ago).astimezone(UTC).date()).days


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_run(
    conn, customer_id: str, run_id: str, ago: timedelta, status: str, seconds: float | None, **counts
):
    started = NOW - ago
    conn.execute(
        f"""INSERT INTO zuora.sync_runs (run_id, customer_id, status, started_at, finished_at,
                                         duration_seconds{"".join(", " + k for k in counts)})
            VALUES (%s, %s, %s, %s, %s, %s{", %s" * len(counts)})""",
        (
            run_id,
            customer_id,
            status,
            started,
            started + timedelta(seconds=seconds) if seconds is not None else None,
            seconds,
            *counts.values(),
        ),
    )


def add_customer(conn, customer_id: str, name: str, environment: str = "sandbox", **extra) -> None:
    warehouse.upsert_customer(
        conn,
        customer_id=customer_id,
        name=name,
        zuora_conn_id=f"zuora_{customer_id[:20]}",
        environment=environment,
        **extra,
    )


# acme: 10 runs over 30 days, one a day; three of them failed, one of those in the last 7 days.
ACME_RUNS = [
    (
        f"scheduled__{(NOW - timedelta(days=d)).date()}",
        timedelta(days=d, hours=1),
        status,
        secs,
        calls,
        limited,
    )
    for d, status, secs, calls, limited in [
        (0, "success", 12.0, 40, 0),
        (1, "failed", 30.0, 55, 7),
        (2, "success", 10.0, 38, 0),
        (3, "success", 14.0, 41, 1),
        (5, "success", 11.0, 39, 0),
        (9, "failed", None, 3, 0),
        (12, "success", 20.0, 44, 2),
        (15, "failed", 50.0, 70, 12),
        (20, "success", 9.0, 36, 0),
        (29, "success", 13.0, 40, 0),
    ]
] + [("scheduled__old", timedelta(days=45), "failed", 99.0, 1, 1)]  # outside every window


@pytest.fixture
def seeded(migrated_uri):
    with psycopg.connect(migrated_uri) as conn:
        add_customer(conn, "acme", "Acme Corp")
        add_customer(conn, "globex", "Globex", "production")
        add_customer(conn, HOSTILE_ID, HOSTILE_NAME, "production")
        add_customer(conn, "longname", LONG_NAME)
        for run_id, ago, status, secs, calls, limited in ACME_RUNS:
            add_run(conn, "acme", run_id, ago, status, secs, api_requests=calls, rate_limited=limited)
        # globex: last run failed an hour ago, its last success three days ago
        add_run(conn, "globex", "manual__g2", timedelta(hours=1), "failed", 5.0, error="HTTP 500 from Zuora")
        add_run(conn, "globex", "manual__g1", timedelta(days=3), "success", 8.0)
        # the hostile customer: a success a week ago (stale), a dead letter and a version change
        add_run(conn, HOSTILE_ID, "run<script>", timedelta(days=7), "success", 4.0)
        conn.execute(
            """INSERT INTO zuora.dead_letters (customer_id, run_id, stage, zuora_id, item_key, error_type,
                                               message, payload)
               VALUES (%s, 'run<script>', 'export', 7, '7', 'ZuoraError', %s, %s)""",
            (HOSTILE_ID, '<img src=x onerror="alert(2)"> broke', Jsonb({"password": SECRET})),
        )
        conn.execute(
            """INSERT INTO zuora.workflow_versions (customer_id, zuora_id, version_id, version, version_order,
                                                    name, status, zuora_updated_at, run_id, original_hash,
                                                    original_encrypted)
               VALUES (%s, 7, 70, '1.0.0', '{1,0,0}', %s, 'Active', now(), 'run<script>', %s, %s)""",
            (HOSTILE_ID, "<script>alert('workflow')</script>", SECRET, SECRET.encode()),
        )
        conn.execute(
            """INSERT INTO zuora.restores (requested_by, applied, status, scope, source_customer_id,
                                           source_zuora_id, target_customer_id, mode, activate, plan,
                                           zuora_response, message)
               VALUES ('ops<marquee>', true, 'imported', 'cross_company_copy', %s, 7, 'globex',
                       'new_workflow', false, %s, %s,
                       '<iframe src=//evil>')""",
            (HOSTILE_ID, Jsonb({"definition": SECRET}), Jsonb({"token": SECRET})),
        )
        conn.execute(
            """INSERT INTO zuora.alerts (kind, severity, title, details, channel)
               VALUES ('slow_sync', 'warning', %s, %s, 'log')""",
            ("customer <script>x</script> slow", Jsonb({"customer_id": HOSTILE_ID})),
        )
        # task usage: acme's tenant ran 1,234 tasks today; a workflow of the hostile customer
        # was switched off in Zuora two days ago
        conn.execute("UPDATE zuora.customers SET task_allowance = 10000 WHERE customer_id = 'acme'")
        conn.execute(
            """INSERT INTO zuora.task_usage (customer_id, day, task_count, read_at, run_id)
               VALUES ('acme', (now() AT TIME ZONE 'UTC')::date, 1234, now(), %s)""",
            (ACME_RUNS[0][0],),
        )
        conn.execute(
            """INSERT INTO zuora.workflow_events (customer_id, zuora_id, kind, workflow_name, seen_at, made_by, run_id)
               VALUES (%s, 7, 'deactivated', %s, now() - interval '2 days', 'zuora', 'run<script>')""",
            (HOSTILE_ID, HOSTILE_WORKFLOW),
        )
        conn.commit()
    return migrated_uri


def test_the_plugin_and_its_views_are_registered(client, tokens):
    plugins = client.get("/api/v2/plugins", headers=bearer(tokens["admin"])).json()["plugins"]
    ours = [p for p in plugins if p["name"] == "zuora_sync"]
    assert len(ours) == 1, [p["name"] for p in plugins]
    views = {v["destination"]: v for v in ours[0]["external_views"]}
    assert views["nav"]["href"] == "/zuora-sync/" and views["nav"]["url_route"] == "zuora-sync"
    assert views["dag"]["href"] == "/zuora-sync/dag/{DAG_ID}" and views["dag"]["url_route"]
    assert ours[0]["fastapi_apps"] == [
        {"app": "fastapi.applications.FastAPI", "url_prefix": "/zuora-sync", "name": "Zuora sync"}
    ]
    # from this distribution's airflow.plugins entry point, not from the plugins folder
    assert ours[0]["source"].startswith("zuora-workflow-sync==")
    assert "group='airflow.plugins'" in ours[0]["source"]


@pytest.mark.parametrize(
    "path",
    [
        "/zuora-sync/",
        "/zuora-sync/api/fleet",
        "/zuora-sync/customers/acme",
        "/zuora-sync/api/customers/acme",
        "/zuora-sync/dag/zuora_workflow_sync",
    ],
)
def test_anonymous_401_without_access_403_with_access_200(client, tokens, seeded, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers=bearer("not-a-jwt")).status_code in (401, 403)
    assert client.get(path, headers=bearer(tokens["outsider"])).status_code == 403
    for user in ("viewer1", "admin"):
        assert client.get(path, headers=bearer(tokens[user])).status_code == 200, user


def test_a_browser_without_a_session_gets_a_login_link_and_scripts_json(client, tokens, seeded):
    page = client.get("/zuora-sync/")
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert 'href="/auth/login' in page.text and 'target="_top"' in page.text
    assert client.get("/zuora-sync/api/fleet").json() == {"detail": "Not authenticated"}
    refused = client.get("/zuora-sync/", headers=bearer(tokens["outsider"]))
    assert refused.status_code == 403 and "not allowed to read the DAG zuora_workflow_sync" in refused.text


def test_the_ui_cookie_is_enough(client, tokens, seeded):
    client.cookies.set("_token", tokens["viewer1"])
    answer = client.get("/zuora-sync/")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    client.cookies.set("_token", tokens["outsider"])
    assert client.get("/zuora-sync/").status_code == 403


def test_the_fleet_json_matches_sync_runs(client, tokens, seeded):
    fleet = client.get("/zuora-sync/api/fleet", headers=bearer(tokens["viewer1"])).json()
    rows = {row["customer_id"]: row for row in fleet["customers"]}
    assert fleet["total"] == 4 and set(rows) == {"acme", "globex", HOSTILE_ID, "longname"}
    # worst first: failing, then stale (never synced before synced long ago), then ok
    assert [row["customer_id"] for row in fleet["customers"]] == ["globex", "longname", HOSTILE_ID, "acme"]
    assert fleet["summary"] == {"failing": 1, "stale": 2, "degraded": 0, "running": 0, "ok": 1, "disabled": 0}

    acme = rows["acme"]
    within = [r for r in ACME_RUNS if r[1] < timedelta(days=30)]
    week = [r for r in within if r[1] < timedelta(days=7)]
    assert acme["success_rate_30d"] == round(sum(r[2] == "success" for r in within) / len(within), 4) == 0.7
    assert acme["success_rate_7d"] == round(sum(r[2] == "success" for r in week) / len(week), 4) == 0.8
    durations = sorted(r[3] for r in within if r[3] is not None)
    assert acme["median_duration_seconds"] == statistics.median(durations) == 13.0
    assert acme["max_duration_seconds"] == 50.0
    assert (acme["last_status"], acme["last_api_requests"], acme["last_rate_limited"]) == ("success", 40, 0)
    assert acme["health"] == "ok" and acme["last_run_id"] == ACME_RUNS[0][0]
    trend_days = {days_ago(r[1]) for r in within if r[3] is not None} & set(range(30))
    assert len(acme["duration_trend"]) == 30
    assert [i for i, v in enumerate(acme["duration_trend"]) if v is not None] == sorted(
        29 - d for d in trend_days
    )
    assert rows["globex"]["health"] == "failing" and rows["globex"]["last_error"] == "HTTP 500 from Zuora"
    assert rows[HOSTILE_ID]["open_dead_letters"] == 1
    assert rows["longname"]["last_status"] is None and rows["longname"]["health"] == "stale"

    days = fleet["days"]
    assert len(days) == 30 and days[-1]["day"] == NOW.date().isoformat()
    runs = [("acme", r[1], r[2]) for r in ACME_RUNS] + [
        ("globex", timedelta(hours=1), "failed"),
        ("globex", timedelta(days=3), "success"),
        (HOSTILE_ID, timedelta(days=7), "success"),
    ]
    for status, key in (("success", "synced"), ("failed", "failed")):
        expected = {}
        for customer, ago, run_status in runs:
            if run_status == status and days_ago(ago) < 30:
                expected.setdefault(29 - days_ago(ago), set()).add(customer)
        assert {i: d[key] for i, d in enumerate(days) if d[key]} == {i: len(c) for i, c in expected.items()}


def test_a_customer_json_is_its_last_syncs(client, tokens, seeded):
    data = client.get("/zuora-sync/api/customers/acme", headers=bearer(tokens["viewer1"])).json()
    with psycopg.connect(seeded) as conn:
        expected = conn.execute(
            """SELECT run_id, status, duration_seconds, api_requests, rate_limited FROM zuora.sync_runs
                WHERE customer_id = 'acme' ORDER BY started_at DESC"""
        ).fetchall()
    got = [
        (s["run_id"], s["status"], s["duration_seconds"], s["api_requests"], s["rate_limited"])
        for s in data["syncs"]
    ]
    assert got == [tuple(row) for row in expected] and len(got) == 11
    assert data["syncs"][0]["run_href"] == f"/dags/zuora_workflow_sync/runs/{quote(ACME_RUNS[0][0], safe='')}"
    assert data["customer"]["success_rate_30d"] == 0.7
    assert (
        client.get("/zuora-sync/api/customers/nobody", headers=bearer(tokens["viewer1"])).status_code == 404
    )


def test_a_sync_links_to_its_task_instances_by_the_map_index_its_list_task_recorded(client, tokens, seeded):
    latest, older = ACME_RUNS[0][0], ACME_RUNS[1][0]
    with psycopg.connect(seeded) as conn:
        conn.execute(
            "UPDATE zuora.sync_runs SET map_index = 3 WHERE customer_id = 'acme' AND run_id = %s", (latest,)
        )
    syncs = client.get("/zuora-sync/api/customers/acme", headers=bearer(tokens["viewer1"])).json()["syncs"]
    by_run = {s["run_id"]: s["map_index"] for s in syncs}
    assert by_run[latest] == 3 and by_run[older] is None
    page = client.get("/zuora-sync/customers/acme", headers=bearer(tokens["viewer1"])).text
    tasks = "/tasks/customer_sync.list_workflows/mapped/"
    assert f"/dags/zuora_workflow_sync/runs/{quote(latest, safe='')}{tasks}3" in page
    assert page.count(tasks) == 1  # the older runs recorded none: no link


def test_a_sync_in_a_batch_links_to_its_batch_task(client, tokens, seeded):
    latest = ACME_RUNS[0][0]
    with psycopg.connect(seeded) as conn:
        conn.execute(
            "UPDATE zuora.sync_runs SET map_index = 7, task_id = 'sync_customers' "
            "WHERE customer_id = 'acme' AND run_id = %s",
            (latest,),
        )
    syncs = client.get("/zuora-sync/api/customers/acme", headers=bearer(tokens["viewer1"])).json()["syncs"]
    assert [(s["task_id"], s["map_index"]) for s in syncs if s["run_id"] == latest] == [("sync_customers", 7)]
    page = client.get("/zuora-sync/customers/acme", headers=bearer(tokens["viewer1"])).text
    assert "/tasks/customer_sync." not in page  # not the group's four tasks
    # the batch's task instance, on its log: the URL Airflow's own TaskInstance.log_url builds
    # (its latest try), and its details tab; both routes of the installed Airflow UI
    log = airflow_log_url(latest, "sync_customers", 7)
    assert f'<a href="{log}" target="_top">batch log</a>' in page
    assert f'<a href="{log}/details" target="_top">details</a>' in page
    routes = ui_routes()
    assert "dags/:dagId/runs/:runId/tasks/:taskId/mapped/:mapIndex" in routes and "details" in routes


def airflow_log_url(run_id: str, task_id: str, map_index: int) -> str:
    """What Airflow 3.3's TaskInstance.log_url gives for a mapped task instance (without the
    base URL, and without a try number: the UI then shows the latest try)."""
    from types import SimpleNamespace

    from airflow.models.taskinstance import TaskInstance

    ti = SimpleNamespace(
        dag_id="zuora_workflow_sync", run_id=run_id, task_id=task_id, map_index=map_index, try_number=0
    )
    url = TaskInstance.log_url.fget(ti)
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def ui_routes() -> set[str]:
    """The route paths of the installed Airflow UI's bundle (its React router's ``path:`...```),
    where a mapped task instance's index route is its log."""
    import re
    from pathlib import Path

    import airflow

    assets = Path(airflow.__file__).parent / "ui" / "dist" / "assets"
    return {
        path
        for bundle in assets.glob("index-*.js")
        for path in re.findall(r"path:`([^`]*)`", bundle.read_text(errors="replace"))
    }


def test_search_and_filters(client, tokens, seeded):
    def ids(**params):
        answer = client.get("/zuora-sync/api/fleet", params=params, headers=bearer(tokens["viewer1"]))
        assert answer.status_code == 200, answer.text
        return [row["customer_id"] for row in answer.json()["customers"]]

    assert ids(q="ACME") == ["acme"]
    assert ids(q="<script>") == [HOSTILE_ID]  # by name
    assert ids(environment="production") == ["globex", HOSTILE_ID]
    assert ids(health="stale") == ["longname", HOSTILE_ID]
    assert ids(page_size=2, page=2) == [HOSTILE_ID, "acme"]
    assert (
        client.get("/zuora-sync/api/fleet?health=bogus", headers=bearer(tokens["viewer1"])).status_code == 422
    )
    html = client.get("/zuora-sync/", params={"q": "glob"}, headers=bearer(tokens["viewer1"])).text
    table = html.split('<form class="filters"')[1]  # the fleet's cards above it are all customers'
    assert ">globex</a>" in table and ">acme</a>" not in table
    assert 'href="/dags/zuora_workflow_sync/runs/manual__g2" target="_top"' in html  # its last run


def test_hostile_names_are_escaped_and_no_secret_is_shown(client, tokens, seeded, monkeypatch):
    # the customer's Airflow connection, with a password and extras, must not leak either
    monkeypatch.setenv(
        "AIRFLOW_CONN_ZUORA_ACME",
        json.dumps(
            {
                "conn_type": "zuora",
                "host": "https://rest.zuora.com",
                "login": "id",
                "password": SECRET,
                "extra": {"client_secret": SECRET},
            }
        ),
    )
    auth = bearer(tokens["viewer1"])
    pages = {
        "fleet": client.get("/zuora-sync/", headers=auth),
        "customer": client.get(f"/zuora-sync/customers/{quote(HOSTILE_ID, safe='')}", headers=auth),
        "long": client.get("/zuora-sync/customers/longname", headers=auth),
        "acme": client.get("/zuora-sync/customers/acme", headers=auth),
    }
    for name, answer in pages.items():
        assert answer.status_code == 200, (name, answer.text[:500])
        html = answer.text
        assert "<script>alert" not in html and "<img" not in html and "<iframe" not in html, name
        assert "<marquee" not in html, name
        assert html.count("<script") == 1, name  # only the page's own theme script, with a nonce
        assert SECRET not in html, name
        assert "nonce-" in answer.headers["content-security-policy"]
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in pages["fleet"].text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in pages["fleet"].text
    customer = pages["customer"].text
    assert "&lt;script&gt;alert(&#39;workflow&#39;)&lt;/script&gt;" in customer  # a version change
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; broke" in customer  # a dead letter
    assert "&lt;iframe src=//evil&gt;" in customer and "ops&lt;marquee&gt;" in customer  # a restore
    assert "into another company" in customer  # a cross-company copy stands out
    assert "customer &lt;script&gt;x&lt;/script&gt; slow" in customer  # an alert
    switched_off = (
        "&lt;script&gt;alert(&#39;switched off&#39;)&lt;/script&gt;"  # a workflow Zuora switched off
    )
    assert switched_off in customer and switched_off in pages["fleet"].text
    assert "\u202eevil" in pages["long"].text and "🦄Ω" * 2000 in pages["long"].text

    for path in ("/zuora-sync/api/fleet", f"/zuora-sync/api/customers/{quote(HOSTILE_ID, safe='')}"):
        answer = client.get(path, headers=auth)
        assert answer.headers["content-type"] == "application/json" and SECRET not in answer.text
    data = client.get(f"/zuora-sync/api/customers/{quote(HOSTILE_ID, safe='')}", headers=auth).json()
    assert data["customer"]["name"] == HOSTILE_NAME  # data, as stored: JSON escapes it itself
    assert data["changes"][0]["name"] == "<script>alert('workflow')</script>"
    assert "payload" not in data["dead_letters"][0] and "plan" not in data["restores"][0]
    assert data["restores"][0]["scope"] == "cross_company_copy"


PAGES = [
    "/zuora-sync/",
    "/zuora-sync/api/fleet",
    "/zuora-sync/customers/acme",
    "/zuora-sync/api/customers/acme",
    "/zuora-sync/dag/zuora_workflow_sync",
]


def probe_the_page_reads(uri: str, user: str, seconds: float = 0.0) -> None:
    """From now on a read of zuora.customers (every page reads it) fails unless it runs in a
    read-only transaction as ``user``, and takes ``seconds`` more: the table goes behind a view
    of the same name that asks ``zuora.page_probe()`` once per query."""
    with psycopg.connect(uri) as conn:
        conn.execute(
            sql.SQL("""
            CREATE FUNCTION zuora.page_probe() RETURNS boolean LANGUAGE plpgsql AS $probe$
            BEGIN
                IF current_setting('transaction_read_only') <> 'on' THEN
                    RAISE EXCEPTION 'zuora.customers read in a read-write transaction';
                END IF;
                IF session_user <> {user} THEN
                    RAISE EXCEPTION 'zuora.customers read as %', session_user;
                END IF;
                PERFORM pg_sleep({seconds});
                RETURN true;
            END
            $probe$;
            ALTER TABLE zuora.customers RENAME TO customers_behind_the_probe;
            CREATE VIEW zuora.customers AS
                SELECT * FROM zuora.customers_behind_the_probe WHERE (SELECT zuora.page_probe());
            GRANT SELECT ON zuora.customers TO zuora_reader;
            """).format(user=sql.Literal(user), seconds=sql.Literal(seconds))
        )
    with psycopg.connect(uri) as conn, pytest.raises(psycopg.errors.RaiseException, match="read-write"):
        conn.execute("SELECT count(*) FROM zuora.customers")  # the probe bites


def test_the_page_reads_as_the_reader_login_in_read_only_transactions(client, tokens, seeded, reader):
    probe_the_page_reads(seeded, reader.name)
    for path in PAGES:
        answer = client.get(path, headers=bearer(tokens["viewer1"]))
        assert answer.status_code == 200, (path, answer.text[:300])
    fleet = client.get("/zuora-sync/api/fleet", headers=bearer(tokens["viewer1"])).json()
    assert fleet["total"] == 4 and fleet["summary"]["failing"] == 1


def test_without_a_reader_login_the_page_warns_and_still_reads_read_only(client, tokens, seeded, caplog):
    from zuora.ui import reading

    reading._warn_without_a_reader.cache_clear()
    probe_the_page_reads(seeded, urlsplit(seeded).username)  # the sync's own connection
    with caplog.at_level(logging.WARNING, logger="zuora.ui.reading"):
        for path in PAGES:
            assert client.get(path, headers=bearer(tokens["viewer1"])).status_code == 200, path
    warnings = [r.getMessage() for r in caplog.records if r.name == "zuora.ui.reading"]
    assert len(warnings) == 1 and "zuora_warehouse_reader" in warnings[0], warnings


def test_concurrent_requests_hold_at_most_max_readers_connections(client, tokens, seeded, reader):
    """3 x MAX_READERS requests at once, each read held 0.3 s: the warehouse sees at most
    MAX_READERS connections of the page in a transaction (pg_stat_activity, sampled every 20 ms;
    the backend of a connection just closed may linger a few milliseconds, idle, while the next
    request connects), and every request is answered."""
    from zuora.ui.reading import MAX_READERS

    probe_the_page_reads(seeded, reader.name, seconds=0.3)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        with psycopg.connect(seeded, autocommit=True) as conn:
            while not done.is_set():
                seen.append(
                    conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state IN ('active', 'idle in transaction') AND pid <> pg_backend_pid()"
                    ).fetchone()[0]
                )
                time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(3 * MAX_READERS) as pool:
            answers = list(
                pool.map(
                    lambda _: client.get("/zuora-sync/api/customers/acme", headers=bearer(tokens["viewer1"])),
                    range(3 * MAX_READERS),
                )
            )
    finally:
        done.set()
        watcher.join()
    assert [a.status_code for a in answers] == [200] * (3 * MAX_READERS)
    assert max(seen) == MAX_READERS, sorted(set(seen))


def test_the_dag_tab_points_other_dags_to_the_sync_dag(client, tokens, seeded):
    auth = bearer(tokens["viewer1"])
    ours = client.get("/zuora-sync/dag/zuora_workflow_sync", headers=auth)
    assert ours.status_code == 200 and ">acme</a>" in ours.text
    other = client.get("/zuora-sync/dag/%3Cscript%3E", headers=auth)
    assert (
        other.status_code == 200
        and "zuora_workflow_sync" in other.text
        and "<script>" not in other.text.split("</script>", 1)[1]
    )


@pytest.fixture
def sync_dag_of_a_team(api_app):
    """The sync DAG in a bundle of the team "billing" (Airflow's multi-team model), as in the
    metadata DB of a deployment with teams; put back as it was after. Airflow caches a DAG's
    team for a while: forgotten before and after."""
    from airflow.models.dag import DagModel, clear_team_name_cache
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    clear_team_name_cache()
    with create_session() as session:
        bundle = DagBundleModel(name="billing-dags")
        bundle.teams.append(Team(name="billing"))
        session.add(bundle)
        session.flush()
        dag = session.get(DagModel, "zuora_workflow_sync")
        made = dag is None
        bundle_before = None if made else dag.bundle_name
        if made:
            session.add(DagModel(dag_id="zuora_workflow_sync", bundle_name=bundle.name))
        else:
            dag.bundle_name = bundle.name
    yield "billing"
    with create_session() as session:
        dag = session.get(DagModel, "zuora_workflow_sync")
        if made:
            session.delete(dag)
        else:
            dag.bundle_name = bundle_before
        session.flush()
        session.delete(session.get(DagBundleModel, "billing-dags"))
        session.delete(session.get(Team, "billing"))
    clear_team_name_cache()


def test_the_auth_manager_is_asked_about_the_sync_dag_and_its_team(
    client, tokens, seeded, monkeypatch, sync_dag_of_a_team
):
    """An auth manager that lets a user read every DAG but the sync DAG: the page is refused.
    It is asked as Airflow's own routes ask it: with the DAG's team."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    asked = []
    allowed = manager.is_authorized_dag

    def every_dag_but_the_sync_dag(*, method, user, access_entity=None, details=None):
        asked.append((method, details.id, details.team_name))
        if details.id == "zuora_workflow_sync":
            return False
        return allowed(method=method, user=user, access_entity=access_entity, details=details)

    monkeypatch.setattr(manager, "is_authorized_dag", every_dag_but_the_sync_dag)
    refused = client.get("/zuora-sync/api/fleet", headers=bearer(tokens["admin"]))
    assert refused.status_code == 403 and "not allowed to read the DAG" in refused.text
    assert asked == [("GET", "zuora_workflow_sync", sync_dag_of_a_team)]


def test_a_search_is_shown_back_escaped_and_odd_ids_have_their_view(client, tokens, seeded):
    auth = bearer(tokens["viewer1"])
    reflected = client.get("/zuora-sync/", params={"q": '"><script>alert(3)</script>'}, headers=auth)
    assert reflected.status_code == 200 and "alert(3)</script>" not in reflected.text
    assert 'value="&#34;&gt;&lt;script&gt;alert(3)&lt;/script&gt;"' in reflected.text
    with psycopg.connect(seeded) as conn:
        add_customer(conn, "tenant/eu 1?x=%", "Slash")
        conn.commit()
    odd = quote("tenant/eu 1?x=%", safe="")
    assert client.get(f"/zuora-sync/api/customers/{odd}", headers=auth).json()["customer"]["name"] == "Slash"
    fleet = client.get("/zuora-sync/", params={"q": "tenant/"}, headers=auth).text
    assert f'href="/zuora-sync/customers/{odd}"' in fleet


def add_dead_letter(conn, customer_id: str, item: int, first_failed: timedelta, *, resolved: bool = False):
    conn.execute(
        """INSERT INTO zuora.dead_letters (customer_id, run_id, stage, zuora_id, item_key, error_type, message,
                                           first_failed_at, last_failed_at, resolved_at)
           VALUES (%s, 'r', 'export', %s, %s, 'ZuoraServerError', 'HTTP 500 from Zuora', %s, %s, %s)""",
        (
            customer_id,
            item,
            str(item),
            NOW - first_failed,
            NOW - timedelta(hours=1),
            NOW if resolved else None,
        ),
    )


def add_daily_runs(conn, customer_id: str, versions_pending: dict[int, int]) -> None:
    """A successful run a day (days ago -> versions it left pending), each at that day minus 1 h."""
    for days, pending in versions_pending.items():
        add_run(
            conn,
            customer_id,
            f"scheduled__{customer_id}_{days}",
            timedelta(days=days, hours=1),
            "success",
            5.0,
            versions_pending=pending,
        )


def test_a_synced_customer_with_open_dead_letters_or_history_pending_for_days_is_degraded(
    client, tokens, seeded
):
    with psycopg.connect(seeded) as conn:
        # synced an hour ago, but one workflow's export has failed for 5 days (the demo's initech)
        add_customer(conn, "initech", "Initech")
        add_daily_runs(conn, "initech", {0: 0})
        add_dead_letter(conn, "initech", 4, timedelta(days=5))
        add_dead_letter(conn, "initech", 5, timedelta(days=2))
        add_dead_letter(conn, "acme", 9, timedelta(days=9), resolved=True)  # resolved: acme stays ok
        # version history pending in every run for 4 days
        add_customer(conn, "hooli", "Hooli")
        add_daily_runs(conn, "hooli", {4: 50, 3: 40, 2: 30, 1: 20, 0: 10})
        # pending only since yesterday, after catching up 3 days ago: not for days yet
        add_customer(conn, "piedpiper", "Pied Piper")
        add_daily_runs(conn, "piedpiper", {5: 40, 4: 30, 3: 0, 1: 30, 0: 20})
        # pending for days, but its last run caught up
        add_customer(conn, "umbrella", "Umbrella")
        add_daily_runs(conn, "umbrella", {5: 40, 4: 30, 0: 0})
        conn.commit()
    auth = bearer(tokens["viewer1"])
    fleet = client.get("/zuora-sync/api/fleet", headers=auth).json()
    rows = {row["customer_id"]: row for row in fleet["customers"]}
    assert {customer: row["health"] for customer, row in rows.items()} == {
        "globex": "failing",
        "longname": "stale",
        HOSTILE_ID: "stale",  # its dead letter does not hide that it has not synced for a week
        "initech": "degraded",
        "hooli": "degraded",
        "acme": "ok",
        "piedpiper": "ok",
        "umbrella": "ok",
    }
    assert fleet["summary"] == {"failing": 1, "stale": 2, "degraded": 2, "running": 0, "ok": 3, "disabled": 0}
    order = [row["customer_id"] for row in fleet["customers"]]
    assert set(order[3:5]) == {"initech", "hooli"}, order  # after failing and stale, above ok
    initech, hooli = rows["initech"], rows["hooli"]
    assert initech["open_dead_letters"] == 2
    assert datetime.fromisoformat(initech["oldest_dead_letter_at"]) == NOW - timedelta(days=5)
    assert datetime.fromisoformat(hooli["history_pending_since"]) == NOW - timedelta(days=4, hours=1)
    assert datetime.fromisoformat(rows["piedpiper"]["history_pending_since"]) == NOW - timedelta(
        days=1, hours=1
    )
    assert rows["umbrella"]["history_pending_since"] is None
    ids = client.get("/zuora-sync/api/fleet", params={"health": "degraded"}, headers=auth).json()["customers"]
    assert {row["customer_id"] for row in ids} == {"initech", "hooli"}

    html = client.get("/zuora-sync/", headers=auth).text
    assert '<a class="tile degraded" href="/zuora-sync/?health=degraded"><b>2</b>degraded</a>' in html
    assert html.index('class="tile degraded"') < html.index('class="tile ok"')
    row = html[html.index(">initech</a>") :].split("</tr>")[0]
    assert '<span class="badge degraded">degraded</span>' in row and "oldest 5 d ago" in row
    row = html[html.index(">hooli</a>") :].split("</tr>")[0]
    assert '<span class="badge degraded">degraded</span>' in row and "since 4 d ago" in row
    customer = client.get("/zuora-sync/customers/initech", headers=auth).text
    assert '<span class="badge degraded">degraded</span>' in customer and "5 d ago" in customer


def test_the_demos_initech_synced_for_real_is_degraded_not_ok(
    client, tokens, migrated_uri, monkeypatch, sim_tenant
):
    """The demo's initech (one export always fails) synced through the library against the
    project's simulator over HTTP: its run succeeds and leaves an open dead letter."""
    from tests.reliability.conftest import Env
    from zuora import sync
    from zuora_simulator.demo import demo_tenants

    (initech,) = [tenant for tenant in demo_tenants() if tenant["tenant_id"] == "initech"]
    config = {k: v for k, v in initech.items() if k not in ("tenant_id", "client_id", "client_secret")}
    env = Env(migrated_uri, monkeypatch)
    customer = env.customer("initech", sim_tenant("initech", **config), max_attempts=2)
    sync.run_customer(customer, "manual__demo")
    (row,) = client.get("/zuora-sync/api/fleet", headers=bearer(tokens["viewer1"])).json()["customers"]
    assert (row["customer_id"], row["last_status"], row["open_dead_letters"]) == ("initech", "success", 1)
    assert row["health"] == "degraded"


def away_from_midnight() -> None:
    """Wait for the next UTC day when this one ends within two minutes (the simulator's today
    and the page's month must stay the test's)."""
    now = datetime.now(UTC)
    left = (datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC) - now).total_seconds()
    if left < 120:
        time.sleep(left + 0.5)


def test_each_customers_task_usage_and_the_workflows_zuora_switched_off(
    client, tokens, migrated_uri, monkeypatch, sim_tenant
):
    """Three customers synced through the library from the simulator over HTTP: acme's and
    globex's tenants answer their task usage (a few known days), initech's answers 403; Zuora
    switches one of acme's workflows off between two syncs. The fleet shows this month's tasks,
    the share of the allowance and the last 30 days; the top consumers; the switch-off; each
    customer's view its own."""
    from tests.reliability.conftest import Env
    from zuora import sync
    from zuora.ui.page import pct, share_class
    from zuora.warehouse.usage import first_read_day, set_task_allowance

    away_from_midnight()
    today = datetime.now(UTC).date()
    D = timedelta(days=1)
    extra = {"acme": {today: 700, today - D: 300, today - 10 * D: 100}, "globex": {today: 2000}}
    env = Env(migrated_uri, monkeypatch)
    tenants = {
        customer: sim_tenant(
            workflows=0,
            usage={"tasks_per_day": 0, "extra_tasks": {d.isoformat(): n for d, n in days.items()}},
        )
        for customer, days in extra.items()
    }
    tenants["initech"] = sim_tenant(workflows=0, usage={"metrics_status": 403})
    dunning = tenants["acme"].add_workflow(name="Dunning")["id"]
    tenants["acme"].add_workflow(name="Late fees")
    customers = {customer: env.customer(customer, tenant) for customer, tenant in tenants.items()}
    for customer in customers.values():
        sync.run_customer(customer, "run-1")
    tenants["acme"].update_workflow(dunning, status="Inactive", bump_version=False, change_content=False)
    sync.run_customer(customers["acme"], "run-2")  # Zuora switched Dunning off
    with psycopg.connect(migrated_uri) as conn:
        set_task_allowance(conn, "acme", 1250)
        set_task_allowance(conn, "initech", 500)
    (seen_at,) = env.query("SELECT seen_at FROM zuora.workflow_events WHERE kind = 'deactivated'")[0]

    def month(customer: str) -> int:
        return sum(n for d, n in extra[customer].items() if (d.year, d.month) == (today.year, today.month))

    def trend(customer: str) -> list:  # read from the first of last month on: 0 where no extra
        return [
            extra[customer].get(day, 0) if day >= first_read_day(today) else None
            for day in (today - n * D for n in range(29, -1, -1))
        ]

    auth = bearer(tokens["viewer1"])
    fleet = client.get("/zuora-sync/api/fleet", headers=auth).json()
    rows = {row["customer_id"]: row for row in fleet["customers"]}
    acme, globex, initech = rows["acme"], rows["globex"], rows["initech"]
    assert (acme["month_tasks"], acme["task_allowance"], acme["used_share"]) == (
        month("acme"),
        1250,
        month("acme") / 1250,
    )
    assert acme["usage_trend"] == trend("acme") and globex["usage_trend"] == trend("globex")
    assert (globex["month_tasks"], globex["used_share"], globex["usage_available"]) == (2000, None, True)
    assert (initech["month_tasks"], initech["usage_available"], initech["usage_http_status"]) == (
        None,
        False,
        403,
    )
    assert [(t["customer_id"], t["tasks"]) for t in fleet["top_consumers"]] == [
        ("globex", 2000),
        ("acme", month("acme")),
    ]
    assert fleet["switched_off_count"] == 1
    [off] = fleet["switched_off"]
    assert (off["customer_id"], off["zuora_id"], off["workflow_name"], off["status_now"]) == (
        "acme",
        dunning,
        "Dunning",
        "Inactive",
    )
    assert datetime.fromisoformat(off["seen_at"]) == seen_at

    html = client.get("/zuora-sync/", headers=auth).text
    top = html.split("Most Workflow tasks this month")[1].split("</table>")[0]
    assert top.index(">globex</a>") < top.index(">acme</a>")
    card = html.split("Workflows switched off in Zuora, last 30 days")[1].split("</table>")[0]
    assert ">acme</a>" in card and f'Dunning <span class="muted small">{dunning}</span>' in card
    row = html[html.index('">acme</a><div') :].split("</tr>")[0]
    share = month("acme") / 1250  # in the alerts' colours from 80 %
    assert (
        f'{month("acme"):,} <span class="{share_class(share)}" title="of 1,250 tasks a month">{pct(share)}</span>'
        in row
    )
    assert "tasks per day, last 30 days: max 700" in row  # the usage sparkline
    row = html[html.index('">initech</a><div') :].split("</tr>")[0]
    assert "usage not available" in row and "HTTP 403" in row

    customer = client.get("/zuora-sync/api/customers/acme", headers=auth).json()
    assert (customer["usage"]["tasks"], customer["usage"]["task_allowance"]) == (month("acme"), 1250)
    assert [day["tasks"] for day in customer["usage_days"]] == trend("acme")
    assert [(e["workflow_name"], e["zuora_id"], e["status_now"]) for e in customer["switched_off"]] == [
        ("Dunning", dunning, "Inactive")
    ]
    page = client.get("/zuora-sync/customers/acme", headers=auth).text
    assert (
        f'<b class="{share_class(share)}">{month("acme"):,}</b>tasks this month: {pct(share)} of 1,250'
        in page
    )
    switched = page.split("<h2>Workflows switched off in Zuora</h2>")[1].split("</table>")[0]
    assert "Dunning" in switched and seen_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") in switched
    assert "tasks per day" in page.split("Workflow tasks per day, last 30 days")[1].split("</div>")[0]
    initech_page = client.get("/zuora-sync/customers/initech", headers=auth).text
    assert "Usage not available: Zuora answered HTTP 403" in initech_page
