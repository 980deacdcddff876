"""How long the DAG files take to import: what the dag-processor pays every 30 s per file, and
every task process pays again before its task runs.

Each sample is a fresh interpreter that imports ``airflow.sdk`` (the floor: every DAG file
pays it) and then executes one DAG file, timing the two apart and listing the heavy modules
the DAG file pulled in. The same is measured on a baseline commit (``--baseline``, default
the commit before the package layout), checked out into a temporary worktree, in the same run.

    .venv/bin/python benchmarks/dag_parse.py [--samples 7] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import _common

DAG_FILES = ("zuora_workflow_sync.py", "zuora_sync_monitor.py")
HEAVY = ("pandas", "numpy", "psycopg", "requests", "tenacity", "cryptography")

PROBE = """
import json, os, runpy, sys, time
sys.path[:0] = [sys.argv[2], sys.argv[2] + "/plugins"]
started = time.perf_counter()
import airflow.sdk
sdk = time.perf_counter() - started
before = set(sys.modules)
started = time.perf_counter()
runpy.run_path(sys.argv[1])
dag = time.perf_counter() - started
heavy = sorted(m for m in json.loads(sys.argv[3]) if m in sys.modules and m not in before)
print(json.dumps({"sdk": sdk, "dag": dag, "heavy": heavy}))
"""


def sample(tree: Path, dag_file: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tree / "dags" / dag_file), str(tree), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
        env={**_common.os.environ, "PYTHONPATH": ""},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(tree: Path, samples: int) -> dict[str, dict]:
    figures = {}
    for dag_file in DAG_FILES:
        runs = [sample(tree, dag_file) for _ in range(samples)]
        figures[dag_file] = {
            "dag_ms": statistics.median(r["dag"] for r in runs) * 1000,
            "sdk_ms": statistics.median(r["sdk"] for r in runs) * 1000,
            "heavy": runs[-1]["heavy"],
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument(
        "--baseline", default="021f059", help="commit to compare with (default: before the package layout)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zws-dag-parse-") as folder:
        baseline_tree = Path(folder) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(baseline_tree), args.baseline],
            cwd=_common.ROOT,
            check=True,
            capture_output=True,
        )
        # Airflow imports every installed provider's info at start-up: this venv's entry point
        # names zuora.provider, which older trees lack (import-light: the same cost in both)
        provider = baseline_tree / "plugins" / "zuora" / "provider.py"
        if not provider.exists():
            shutil.copy(_common.ROOT / "plugins" / "zuora" / "provider.py", provider)
        try:
            rows = []
            for _ in range(2):  # interleaved, so load on the machine hits both alike
                rows.append((measure(baseline_tree, args.samples), measure(_common.ROOT, args.samples)))
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(baseline_tree)],
                cwd=_common.ROOT,
                check=True,
                capture_output=True,
            )
    lines = [
        "| DAG file | baseline: DAG file import (ms) | now (ms) | heavy modules imported, baseline | now | `import airflow.sdk` (ms, both) |",
        "|---|---|---|---|---|---|",
    ]
    for dag_file in DAG_FILES:
        before = statistics.median(b[dag_file]["dag_ms"] for b, _ in rows)
        after = statistics.median(a[dag_file]["dag_ms"] for _, a in rows)
        sdk = statistics.median(
            [*(b[dag_file]["sdk_ms"] for b, _ in rows), *(a[dag_file]["sdk_ms"] for _, a in rows)]
        )
        lines.append(
            f"| `{dag_file}` | {before:.0f} | **{after:.0f}** | "
            f"{', '.join(rows[-1][0][dag_file]['heavy']) or 'none'} | "
            f"{', '.join(rows[-1][1][dag_file]['heavy']) or 'none'} | {sdk:.0f} |"
        )
    body = "\n".join(
        [
            f"Machine: {_common.machine()}. Date: {_common.utc_date()}.",
            f"Command: `{_common.command('dag_parse.py')}`; baseline: commit `{args.baseline}` in a "
            f"temporary worktree, measured in the same run, interleaved; median of "
            f"{2 * args.samples} fresh interpreters per figure.",
            "",
            *lines,
            "",
            "The DAG-file figure is what executing the file costs after `import airflow.sdk` "
            "(which every DAG file and task process pays anyway): the dag-processor pays it on "
            "every parse, and each task process once more before its task runs.",
        ]
    )
    _common.write_section("DAG file import time", body)
    print(body)


if __name__ == "__main__":
    main()
