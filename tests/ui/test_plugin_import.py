"""Every Airflow process loads entry-point plugins, task processes too: loading ours must not
pull in FastAPI, the page's app or the api-server's modules."""

from __future__ import annotations

import json
import subprocess
import sys

LOAD = """
import json, sys
from airflow import plugins_manager
plugins_manager.ensure_plugins_loaded()
names = [p.name for p in plugins_manager._get_plugins()[0]]
print(json.dumps({"plugins": names, "loaded": sorted(m for m in sys.modules if m in (
    "fastapi", "psycopg", "zuora.ui.app", "zuora.ui.page", "zuora.warehouse",
    "airflow.api_fastapi.core_api.security"))}))
"""


def test_loading_the_plugin_imports_nothing_heavy():
    result = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "zuora_sync" in loaded["plugins"]
    assert loaded["loaded"] == []
