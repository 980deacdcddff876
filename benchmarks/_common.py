"""What the benchmarks share: paths and environment, the machine line, customers registered
against simulator tenants, and writing one section of benchmarks/RESULTS.md.

Import it first (``import _common``): it puts the repository and ``plugins/`` on sys.path and
points Airflow at a throwaway home before anything imports airflow.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="zws-bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))


def utc_date() -> str:
    """``date -u``, as the results say."""
    return subprocess.run(["date", "-u"], capture_output=True, text=True, check=True).stdout.strip()


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({model}), {mem_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}, load average at start {load}"
    )


def command(script: str, argv: list[str] | None = None) -> str:
    args = " ".join(argv if argv is not None else sys.argv[1:])
    return f".venv/bin/python benchmarks/{script}" + (f" {args}" if args else "")


def write_section(title: str, body: str) -> None:
    """Replace the ``## title`` section of RESULTS.md (up to the next ``## ``), or append it."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)
    print(f"wrote section '{title}' of {RESULTS.relative_to(ROOT)}")


def register_customer(conn, customer_id: str, tenant: dict, **extra) -> dict:
    """An ``AIRFLOW_CONN_ZUORA_<ID>`` connection for a simulator tenant (``add_tenant``'s
    answer) and the ``zuora.customers`` row; returns the customer dict the stages take."""
    from zuora import warehouse
    from zuora.api.credentials import airflow_connection

    conn_id = f"zuora_{customer_id}"
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        airflow_connection(
            tenant["base_url"],
            tenant["client_id"],
            tenant["client_secret"],
            **{"allow_insecure_http": True, "environment": "sandbox", **extra},
        )
    )
    warehouse.upsert_customer(
        conn, customer_id=customer_id, name=customer_id, zuora_conn_id=conn_id, environment="sandbox"
    )
    return {"customer_id": customer_id, "zuora_conn_id": conn_id, "environment": "sandbox"}


def quiet_logs() -> None:
    """The stages log one JSON line each; keep the benchmark output readable."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    for name in ("zuora", "airflow", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
