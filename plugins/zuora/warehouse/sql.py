"""The SQL shipped with the package (``zuora/sql``, kept in ``include/sql`` in the source
tree): migrations, views, merge steps, roles. Found through ``importlib.resources``, so it
works the same from a source tree, an installed wheel or a zip; a missing or empty folder is
an error, never "nothing to apply"."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def sql_files(folder: str) -> list[Traversable]:
    """The ``*.sql`` files of ``folder`` (e.g. ``migrations``), sorted by name."""
    found = sorted(
        (f for f in (files("zuora") / "sql" / folder).iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    if not found:
        raise FileNotFoundError(
            f"no SQL files in zuora/sql/{folder}: the package is incomplete "
            "(reinstall it; from a source tree, plugins/zuora/sql must "
            "link to include/sql)"
        )
    return found


def sql_text(path: str) -> str:
    """The text of one shipped SQL file, e.g. ``roles.sql`` or ``merge/01_plan.sql``."""
    return (files("zuora") / "sql" / path).read_text()
