"""Python side of the simulator: an admin API client and a subprocess runner."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests


class AdminClient:
    """A thin wrapper over the ``/_sim`` admin API; every method returns decoded JSON."""

    def __init__(self, base_url: str, timeout: float = 30.0, ca_bundle: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.verify: str | bool = ca_bundle or True  # per request: REQUESTS_CA_BUNDLE beats a session's

    def _call(self, method: str, path: str, body: Any = None, **params) -> Any:
        response = self.session.request(
            method,
            f"{self.base_url}/_sim{path}",
            json=body,
            params=params or None,
            timeout=self.timeout,
            verify=self.verify,
        )
        if response.status_code >= 400:
            raise RuntimeError(f"simulator admin {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    # tenants
    def health(self) -> dict:
        return self._call("GET", "/health")

    def add_tenant(self, tenant_id: str, **config) -> dict:
        """Create a tenant; returns tenant_id, client_id, client_secret, base_url,
        scoped_base_url, workflow_count and config."""
        return self._call("POST", "/tenants", {"tenant_id": tenant_id, **config})

    def tenants(self) -> list[dict]:
        return self._call("GET", "/tenants")

    def get_tenant(self, tenant_id: str) -> dict:
        return self._call("GET", f"/tenants/{tenant_id}")

    def update_tenant(self, tenant_id: str, **changes) -> dict:
        """Change config fields, flat (``latency_ms=100``) or nested (``faults={...}``)."""
        return self._call("PATCH", f"/tenants/{tenant_id}", changes)

    def set_faults(self, tenant_id: str, **faults) -> dict:
        return self._call("PATCH", f"/tenants/{tenant_id}", {"faults": faults})

    def set_limits(self, tenant_id: str, **limits) -> dict:
        return self._call("PATCH", f"/tenants/{tenant_id}", {"limits": limits})

    def delete_tenant(self, tenant_id: str) -> None:
        self._call("DELETE", f"/tenants/{tenant_id}")

    def generate(self, tenant_id: str, count: int, seed: int | None = None) -> list[int]:
        """Replace the tenant's workflows with ``count`` generated ones; returns their ids."""
        body = {"count": count} if seed is None else {"count": count, "seed": seed}
        return self._call("POST", f"/tenants/{tenant_id}/generate", body)["ids"]

    def revoke_tokens(self, tenant_id: str) -> int:
        return self._call("POST", f"/tenants/{tenant_id}/revoke_tokens")["revoked"]

    # scripted faults
    def script(self, tenant_id: str, items: list[dict], append: bool = False) -> list[dict]:
        """Queue one-shot faults (replacing the queue unless ``append``)."""
        return self._call("POST" if append else "PUT", f"/tenants/{tenant_id}/script", items)

    def pending_script(self, tenant_id: str) -> list[dict]:
        return self._call("GET", f"/tenants/{tenant_id}/script")

    def clear_script(self, tenant_id: str) -> None:
        self._call("DELETE", f"/tenants/{tenant_id}/script")

    # workflows
    def workflows(self, tenant_id: str) -> list[dict]:
        """The truth about every workflow (ascending id)."""
        return self._call("GET", f"/tenants/{tenant_id}/workflows")

    def workflow_ids(self, tenant_id: str) -> list[int]:
        return self._call("GET", f"/tenants/{tenant_id}/workflows", ids_only="true")

    def get_workflow(self, tenant_id: str, workflow_id: int) -> dict:
        return self._call("GET", f"/tenants/{tenant_id}/workflows/{workflow_id}")

    def add_workflow(self, tenant_id: str, **fields) -> dict:
        return self._call("POST", f"/tenants/{tenant_id}/workflows", fields)

    def update_workflow(self, tenant_id: str, workflow_id: int, **fields) -> dict:
        """Change fields; by default also a new version and updatedAt = now
        (``touch_updated_at=False``, ``bump_version=False``, ``change_content=False`` opt out)."""
        return self._call("PATCH", f"/tenants/{tenant_id}/workflows/{workflow_id}", fields)

    def delete_workflow(self, tenant_id: str, workflow_id: int) -> None:
        self._call("DELETE", f"/tenants/{tenant_id}/workflows/{workflow_id}")

    def expected_export(self, tenant_id: str, workflow_id: int, version: str | None = None) -> dict:
        """The export the API serves, fetched without auth, limits, faults or stats."""
        params = {"version": version} if version else {}
        return self._call("GET", f"/tenants/{tenant_id}/workflows/{workflow_id}/export", **params)

    def imports(self, tenant_id: str) -> list[dict]:
        """Every request that reached POST /workflows/import or .../versions/import, oldest
        first: ``seq``, ``kind`` (workflow or version), ``workflow_id``, ``version_id``,
        ``version``, ``activate``, ``workflow_definition_id``, ``idempotency_key``,
        ``replay``, ``replay_of``, ``created``, ``status``."""
        return self._call("GET", f"/tenants/{tenant_id}/imports")

    # task usage
    def usage(self, tenant_id: str, start: str, end: str) -> dict:
        """What ``GET /workflows/metrics.json`` answers now for ``start``..``end`` (YYYY-MM-DD),
        fetched without auth, limits, faults or stats. Set the usage model with
        ``update_tenant(tenant_id, usage={...})``."""
        return self._call("GET", f"/tenants/{tenant_id}/usage", startDate=start, endDate=end)

    def usage_requests(self, tenant_id: str) -> list[dict]:
        """Every request that reached ``GET /workflows/metrics.json``, oldest first: ``seq``,
        ``query`` (as sent), ``status``."""
        return self._call("GET", f"/tenants/{tenant_id}/usage/requests")

    # stats
    def stats(self, tenant_id: str | None = None) -> dict:
        return self._call("GET", f"/tenants/{tenant_id}/stats" if tenant_id else "/stats")

    def reset_stats(self, tenant_id: str | None = None) -> None:
        self._call("POST", f"/tenants/{tenant_id}/stats/reset" if tenant_id else "/stats/reset")


@dataclass
class Simulator:
    """A running simulator subprocess."""

    base_url: str
    admin: AdminClient
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def running_simulator(
    tenants: list[dict] | None = None,
    demo: bool = False,
    startup_timeout: float = 20.0,
    extra_args: list[str] | None = None,
    tls_dir: Path | None = None,
) -> Iterator[Simulator]:
    """Start ``python -m zuora_simulator`` on a free 127.0.0.1 port, wait until it answers,
    yield a :class:`Simulator`, and stop it (terminate, then kill) on exit. With ``tls_dir``
    it serves https at ``https://localhost:<port>`` (its CA in ``tls_dir/ca.pem``)."""
    workdir = Path(tempfile.mkdtemp(prefix="zuora-sim-"))
    port_file, log_path = workdir / "port", workdir / "simulator.log"
    args = [
        sys.executable,
        "-m",
        "zuora_simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        *(extra_args or []),
    ]
    ca_bundle = None
    if tls_dir is not None:
        args += ["--tls-dir", str(tls_dir)]
        ca_bundle = str(tls_dir / "ca.pem")
    if tenants is not None:
        tenants_file = workdir / "tenants.json"
        tenants_file.write_text(json.dumps(tenants))
        args += ["--tenants", str(tenants_file)]
    elif demo:
        args.append("--demo")
    package_root = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        base_url = _wait_until_ready(process, port_file, log_path, startup_timeout, ca_bundle)
        yield Simulator(base_url, AdminClient(base_url, ca_bundle=ca_bundle), process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_until_ready(
    process: subprocess.Popen, port_file: Path, log_path: Path, timeout: float, ca_bundle: str | None = None
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"simulator exited with {process.returncode}:\n{log_path.read_text()}")
        if port_file.exists():
            port = int(port_file.read_text())
            base_url = f"https://localhost:{port}" if ca_bundle else f"http://127.0.0.1:{port}"
            try:
                if requests.get(f"{base_url}/_sim/health", timeout=2, verify=ca_bundle or True).ok:
                    return base_url
            except requests.RequestException:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"simulator did not start within {timeout}s:\n{log_path.read_text()}")
