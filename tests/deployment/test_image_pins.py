"""Which versions the image gets: the Dockerfile's own `pip install` line, resolved here from
nothing (`--dry-run --ignore-installed`), takes every package at the version of
requirements-lock.txt, the set every test ran with. (No Docker here: inside the official
image pip starts from the image's packages, and replaces each one the lock pins otherwise.)"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deployment.conftest import copy_of_the_source

ROOT = Path(__file__).resolve().parents[2]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dockerfile_pip_install() -> tuple[str, list[str]]:
    """(the base image's Airflow version, the argv of the Dockerfile's pip install)."""
    text = (ROOT / "Dockerfile").read_text()
    airflow_version = re.search(r"^FROM apache/airflow:(\d+\.\d+\.\d+)-python", text, re.MULTILINE).group(1)
    joined = re.sub(r"\\\n\s*", " ", text)
    (run,) = [line for line in joined.splitlines() if line.startswith("RUN ") and "pip install" in line]
    argv = shlex.split(run.removeprefix("RUN ").split("&&")[0])
    return airflow_version, argv


@pytest.mark.slow  # 10-25 s: pip resolves the whole image install
def test_the_image_install_resolves_to_the_lock(tmp_path):
    airflow_version, argv = dockerfile_pip_install()
    assert argv[:2] == ["pip", "install"]
    source = copy_of_the_source(tmp_path / "src")  # as the image's COPY makes
    args = [
        a.replace("${AIRFLOW_VERSION}", airflow_version).replace("/opt/airflow/src", str(source))
        for a in argv[2:]
        if a != "--no-cache-dir"
    ]
    report = tmp_path / "report.json"
    # --no-build-isolation: this venv's setuptools (the lock's, the one pyproject.toml names)
    # reads our package's metadata, instead of pip installing it into a build env first
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        + ["--disable-pip-version-check", "--no-build-isolation", "--report", str(report), *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {
        normalized(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    lock = {
        normalized(line.split("==")[0]): line.split("==")[1].strip()
        for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    outside = {name: version for name, version in resolved.items() if lock.get(name) != version}
    assert outside == {"zuora-workflow-sync": outside.get("zuora-workflow-sync")}, outside
    for name in ("apache-airflow", "apache-airflow-providers-celery", "celery", "kombu", "psycopg"):
        assert resolved[name] == lock[name], name
    assert resolved["apache-airflow"] == airflow_version
