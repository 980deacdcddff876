"""Airflow's plugin loader executes every .py file under plugins/ as a top-level module; ours
must be skipped (plugins/.airflowignore), or there would be two copies of every class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LOAD_PLUGINS = """
import json, sys
from airflow import plugins_manager
plugins_manager.ensure_plugins_loaded()        # what the scheduler and api-server do
folder = sys.argv[1]
ours = sorted(name for name, module in list(sys.modules.items())   # but the package itself
              if "." not in name and name != "zuora"
              and (getattr(module, "__file__", None) or "").startswith(folder))
print(json.dumps({"top_level": ours, "errors": plugins_manager.get_import_errors()}))
"""


def test_the_plugin_loader_leaves_our_modules_alone():
    plugins = str(ROOT / "plugins")
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": plugins}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_PLUGINS, plugins], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"top_level": [], "errors": {}}


def test_exceptions_are_matched_by_class():
    from zuora.api.errors import ZuoraAuthError, ZuoraRateLimitError
    from zuora.retry import is_transient

    class Renamed(ZuoraRateLimitError):  # a subclass under another name is still transient
        pass

    assert is_transient(Renamed("429", conn_id="c"))
    assert not is_transient(ZuoraAuthError("401", conn_id="c"))
    assert is_transient(ConnectionResetError()) and is_transient(TimeoutError())
    assert not is_transient(ValueError("ConnectionError"))
