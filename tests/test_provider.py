"""The provider entry point, as Airflow's providers manager reads it in a fresh process: the
Zuora integration, its hook module and connection type, and its notifier, registered the way
Airflow's own providers register theirs; and the entry point module imports nothing."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from zuora import provider

ROOT = Path(__file__).resolve().parents[1]

SEEN = """
import json
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
info = pm.providers["zuora-workflow-sync"].data
print(json.dumps({
    "notifications": [n for n in pm.notification if n.startswith("zuora.")],
    "hook": pm.hooks["zuora"].hook_class_name,
    "integrations": [i["integration-name"] for i in info["integrations"]],
    "hook_modules": info["hooks"],
}))
"""


def test_the_providers_manager_sees_the_integration_hook_and_notifier():
    result = subprocess.run(
        [sys.executable, "-c", SEEN], capture_output=True, text=True, timeout=120, env=os.environ
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {
        "notifications": ["zuora.notifications.alerts.ZuoraAlertNotifier"],
        "hook": "zuora.api.hook.ZuoraHook",
        "integrations": ["Zuora"],
        "hook_modules": [{"integration-name": "Zuora", "python-modules": ["zuora.api.hook"]}],
    }


def test_what_the_provider_info_names_exists():
    from airflow._shared.module_loading import import_string
    from airflow.sdk import BaseHook, BaseNotifier

    info = provider.get_provider_info()
    for name in info["notifications"]:
        assert issubclass(import_string(name), BaseNotifier), name
    for entry in info["connection-types"]:
        assert issubclass(import_string(entry["hook-class-name"]), BaseHook)
    names = {i["integration-name"] for i in info["integrations"]}
    assert {h["integration-name"] for h in info["hooks"]} <= names


def test_the_entry_point_module_imports_only_the_standard_library():
    tree = ast.parse((ROOT / "plugins" / "zuora" / "provider.py").read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= {"__future__", "importlib"}, imported


def test_dag_files_written_for_zuora_alerts_still_import_the_notifier():
    from zuora.alerts import ZuoraAlertNotifier
    from zuora.notifications.alerts import ZuoraAlertNotifier as registered

    assert ZuoraAlertNotifier is registered
