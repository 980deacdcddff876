"""The package's layers import one way (DESIGN.md): the warehouse knows no HTTP and no alert
channel; ``zuora.alerts`` sends and stores through the warehouse, never through the monitor,
which only decides what to raise; and no module imports itself back through others. Every
import counts, the ones inside functions too (``ast.walk`` over the whole module): an import
cycle hidden in a function is a cycle all the same."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugins" / "zuora"

# module (or package folder) -> the zuora modules it must never import
RULES = {
    "warehouse": ("zuora.api", "zuora.hook", "zuora.alerts", "zuora.monitor", "zuora.sync", "requests"),
    "api": ("zuora.warehouse", "zuora.alerts", "zuora.monitor", "zuora.sync", "psycopg"),
    "alerts.py": ("zuora.monitor", "zuora.sync", "zuora.callbacks"),
    "metrics.py": ("zuora.monitor", "zuora.alerts", "zuora.sync"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it: ``import a.b`` -> a.b; ``from a import b``
    -> a.b when that is a module, else a; relative imports resolved against the package."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package up
                package = (
                    module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
                )
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return found


def import_graph() -> dict[str, set[str]]:
    """zuora module -> the zuora modules it imports."""
    return {
        name: {m for m in imports_of(path) if m in MODULES and m != name} for name, path in MODULES.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: each strongly connected group of two modules or more
    (Tarjan's algorithm), as a sorted list."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("layer", sorted(RULES))
def test_each_layer_imports_only_downwards(layer):
    files = sorted((PACKAGE / layer).rglob("*.py")) if (PACKAGE / layer).is_dir() else [PACKAGE / layer]
    assert files
    for path in files:
        wrong = {
            name for name in imports_of(path) for f in RULES[layer] if name == f or name.startswith(f + ".")
        }
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_no_module_imports_itself_back():
    graph = import_graph()
    assert sum(map(len, graph.values())) > 50  # the scan sees the package's imports
    assert cycles(graph) == []


def test_the_scan_sees_imports_inside_functions_and_cycles_through_them(tmp_path):
    """The checks above catch what the review found: ``metrics`` importing ``monitor`` inside
    a function while ``monitor`` imports ``metrics`` at the top, and a notifier module that
    ``alerts`` imports back lazily."""
    source = tmp_path / "metrics.py"
    source.write_text(
        "import logging\n\ndef figures():\n    from zuora.monitor import _queued\n    return _queued()\n"
    )
    assert "zuora.monitor" in imports_of(source)
    graph = {
        "zuora.metrics": {"zuora.monitor"},
        "zuora.monitor": {"zuora.metrics", "zuora.alerts"},
        "zuora.alerts": {"zuora.metrics", "zuora.notifications.alerts"},
        "zuora.notifications.alerts": {"zuora.alerts"},
    }
    four = ["zuora.alerts", "zuora.metrics", "zuora.monitor", "zuora.notifications.alerts"]
    assert cycles(graph) == [four]  # the review's four-module cycle
    assert cycles({**graph, "zuora.alerts": {"zuora.metrics"}}) == [four[:3]]  # still metrics -> monitor
    assert cycles({**graph, "zuora.metrics": set(), "zuora.alerts": {"zuora.metrics"}}) == []
