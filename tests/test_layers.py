"""The package's layers import one way (DESIGN.md): the warehouse knows no HTTP and no alert
channel; ``zuora.alerts`` sends and stores through the warehouse, never through the monitor,
which only decides what to raise. Function-level imports count: they are cycles all the same."""

from pathlib import Path

import pytest

from tests.test_no_metadata_db_access import imported_modules

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugins" / "zuora"

# module (or package folder) -> the zuora modules it must never import
RULES = {
    "warehouse": ("zuora.api", "zuora.hook", "zuora.alerts", "zuora.monitor", "zuora.sync", "requests"),
    "api": ("zuora.warehouse", "zuora.alerts", "zuora.monitor", "zuora.sync", "psycopg"),
    "alerts.py": ("zuora.monitor", "zuora.sync", "zuora.callbacks"),
}


def imports_of(path: Path) -> set[str]:
    import ast

    return {name for _, name in imported_modules(ast.parse(path.read_text()))}


@pytest.mark.parametrize("layer", sorted(RULES))
def test_each_layer_imports_only_downwards(layer):
    files = sorted((PACKAGE / layer).rglob("*.py")) if (PACKAGE / layer).is_dir() else [PACKAGE / layer]
    assert files
    for path in files:
        wrong = {
            name for name in imports_of(path) for f in RULES[layer] if name == f or name.startswith(f + ".")
        }
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"
