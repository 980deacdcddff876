"""Airflow 3 rule: task code never touches the metadata DB or ORM.

``dag.test()`` runs tasks in-process without the worker's ORM block, so a forbidden import
would pass every other test and fail in production. This scan catches it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORM = ("airflow.models", "airflow.settings", "airflow.utils.session")
FORBIDDEN = (*ORM, "airflow.api_fastapi")
# The sync page's app runs in the api-server only (the plugin module task processes load imports
# it lazily: tests/ui/test_plugin_import.py): it may use the api-server's auth, never the ORM.
API_SERVER_ONLY = {ROOT / "plugins" / "zuora" / "ui" / "app.py"}


def imported_modules(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def forbidden_imports(source: str, forbidden: tuple[str, ...] = FORBIDDEN) -> list[tuple[int, str]]:
    return [
        (line, name)
        for line, name in imported_modules(ast.parse(source))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def task_code_files():
    return sorted(p for folder in ("dags", "plugins") for p in (ROOT / folder).rglob("*.py"))


def test_there_is_task_code_to_check():
    assert len(task_code_files()) >= 4


@pytest.mark.parametrize("path", task_code_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_task_code_does_not_import_the_orm(path):
    forbidden = ORM if path in API_SERVER_ONLY else FORBIDDEN
    assert forbidden_imports(path.read_text(), forbidden) == []


@pytest.mark.parametrize(
    "source",
    [
        "from airflow.models import Variable",
        "import airflow.settings",
        "from airflow import settings",
        "from airflow.utils.session import create_session",
        "def f():\n    from airflow.models.taskinstance import TaskInstance",
    ],
)
def test_the_scan_catches_every_form(source):
    assert forbidden_imports(source)
