"""The ``airflow.plugins`` entry point: a nav item and a tab on the sync DAG's page, both
showing the page that ``zuora.ui.app`` serves at ``/zuora-sync``.

Every Airflow process loads entry-point plugins, task processes included, so this module
imports nothing but Airflow's plugin base class: the FastAPI app (and FastAPI, Jinja2, the
warehouse) is built the first time the api-server asks for ``fastapi_apps``.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/zuora-sync"  # zuora.ui.app.URL_PREFIX
NAME = "Zuora sync"
# a small heartbeat line, as a data: URL so the UI needs nothing else to show it
_ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="{color}" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
    '<path d="M3 12h4l3-8 4 16 3-8h4"/></svg>'
)


def _icon(color: str) -> str:
    return "data:image/svg+xml," + quote(_ICON_SVG.format(color=color))


def _root() -> str:
    """The api-server's path as the browser sees it (``[api] base_url``), without the final /."""
    from urllib.parse import urlsplit

    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


@functools.cache
def _app() -> Any:
    from zuora.ui.app import create_app

    return create_app()


class ZuoraSyncPlugin(AirflowPlugin):
    name = "zuora_sync"

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [{"app": _app(), "url_prefix": URL_PREFIX, "name": NAME}]

    @property
    def external_views(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return _external_views(_root())


@functools.cache
def _external_views(root: str) -> list[dict[str, Any]]:
    """The same list each time: Airflow removes invalid entries from it in place."""
    common = {"icon": _icon("#2563eb"), "icon_dark_mode": _icon("#60a5fa")}
    return [
        {
            "name": NAME,
            "href": f"{root}{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "zuora-sync",
            "nav_top_level": True,
            **common,
        },
        {
            # Airflow 3.3 shows a dag tab on every DAG's page; the page answers for the sync DAG
            # and points there from the others.
            "name": NAME,
            "href": f"{root}{URL_PREFIX}/dag/{{DAG_ID}}",
            "destination": "dag",
            "url_route": "zuora-sync-dag",
            **common,
        },
    ]
