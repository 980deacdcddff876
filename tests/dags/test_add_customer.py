"""`python -m zuora.cli add-customer`: credentials are tested before anything is saved."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def add_customer(warehouse_uri, customer_id, secret, *args, python=sys.executable):
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}",
        "AIRFLOW_CONN_ZUORA_WAREHOUSE": warehouse_uri,
        "ZUORA_CLIENT_SECRET": secret,
    }
    return subprocess.run(
        [python, "-m", "zuora.cli", "add-customer", customer_id, "--name", customer_id.title(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def customers(uri):
    with psycopg.connect(uri) as conn:
        exists = conn.execute("SELECT to_regclass('zuora.customers')").fetchone()[0]
        return (
            conn.execute("SELECT customer_id, zuora_conn_id, environment FROM zuora.customers").fetchall()
            if exists
            else []
        )


def airflow_connection(conn_id):
    """The connection as Airflow's metadata database holds it (what `airflow connections get`
    prints, read in this process: an Airflow CLI process costs ~2.5 CPU-s), or None."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        conn = session.query(Connection).filter_by(conn_id=conn_id).one_or_none()
        if conn is None:
            return None
        fields = ("conn_type", "host", "login", "password", "extra_dejson")
        return {field: getattr(conn, field) for field in fields}


def venv_without_scripts(folder: Path) -> str:
    """This venv's interpreter and packages, with no `airflow` script beside the interpreter
    (as when the scripts are installed elsewhere, e.g. ~/.local/bin)."""
    venv = Path(sys.prefix)
    (folder / "bin").mkdir()
    (folder / "bin" / "python").symlink_to(Path(sys.executable).resolve())
    (folder / "lib").symlink_to(venv / "lib")
    (folder / "pyvenv.cfg").write_text((venv / "pyvenv.cfg").read_text())
    return str(folder / "bin" / "python")


def test_good_credentials_are_saved(airflow_db, warehouse_uri, sim_tenant, tmp_path):
    tenant = sim_tenant(workflows=2)
    result = add_customer(
        warehouse_uri,
        "newco",
        tenant.client_secret,
        "--environment",
        "sandbox",
        "--base-url",
        tenant.base_url,
        "--client-id",
        tenant.client_id,
        "--extra",
        '{"allow_insecure_http": true, "environment": "sandbox"}',
        python=venv_without_scripts(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "customer newco added" in result.stdout
    assert customers(warehouse_uri) == [("newco", "zuora_newco", "sandbox")]
    saved = airflow_connection("zuora_newco")
    assert saved["conn_type"] == "zuora" and saved["host"] == tenant.base_url
    assert tenant.client_secret not in result.stdout + result.stderr


def test_wrong_secret_saves_nothing(airflow_db, warehouse_uri, sim_tenant):
    tenant = sim_tenant(workflows=1)
    result = add_customer(
        warehouse_uri,
        "badco",
        "not-the-secret",
        "--environment",
        "sandbox",
        "--base-url",
        tenant.base_url,
        "--client-id",
        tenant.client_id,
        "--extra",
        '{"allow_insecure_http": true, "max_attempts": 1}',
    )
    assert result.returncode != 0
    assert "refused: the credentials do not work" in result.stderr
    assert "not-the-secret" not in result.stdout + result.stderr
    assert customers(warehouse_uri) == []
    assert airflow_connection("zuora_badco") is None


def test_a_production_host_for_a_sandbox_customer_is_refused(airflow_db, warehouse_uri):
    result = add_customer(
        warehouse_uri,
        "mixedup",
        "s3cret",
        "--environment",
        "sandbox",
        "--base-url",
        "https://rest.zuora.com",
        "--client-id",
        "b64e42ba-7e1a-4bc6-9146-5e1b420306b5",
    )
    assert result.returncode != 0
    assert "registered as sandbox, but its connection points at a production host" in result.stderr
    assert customers(warehouse_uri) == []


def test_running_add_customer_again_changes_only_what_it_is_given(warehouse_uri, sim_tenant, monkeypatch):
    """Rotating a secret by running add-customer again keeps the tenant group and a disabled
    customer disabled; pairing, unpairing, enabling and disabling are explicit."""
    from zuora import cli
    from zuora.api.credentials import airflow_connection as connection_uri

    tenant = sim_tenant(workflows=1)
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_WAREHOUSE", warehouse_uri)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ZUORA_PAIRCO",
        json.dumps(
            connection_uri(
                tenant.base_url, tenant.client_id, tenant.client_secret,
                allow_insecure_http=True, environment="sandbox",
            )
        ),
    )  # fmt: skip

    def add(*flags):
        base = ["add-customer", "pairco", "--name", "Pair Co", "--environment", "sandbox"]
        assert cli.main([*base, "--no-airflow-connection", *flags]) == 0
        with psycopg.connect(warehouse_uri) as conn:
            return conn.execute("SELECT tenant_group, enabled FROM zuora.customers").fetchone()

    assert add("--tenant-group", "pair") == ("pair", True)
    assert add("--disable") == ("pair", False)
    assert add() == ("pair", False)  # the secret rotated: nothing else changed
    assert add("--enable") == ("pair", True)
    assert add("--no-tenant-group") == (None, True)
