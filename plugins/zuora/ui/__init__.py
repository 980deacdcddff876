"""The Zuora sync page inside Airflow's UI: an Airflow plugin (``zuora.ui.plugin``, the
``airflow.plugins`` entry point of this distribution) whose FastAPI app (``zuora.ui.app``) the
api-server mounts at ``/zuora-sync``, shown as a nav item and a tab of the sync DAG.

    plugin.py    the AirflowPlugin: cheap to import (task processes load it too)
    app.py       routes, authentication and permission (api-server only)
    queries.py   the SQL, read-only
    page.py      HTML (Jinja2, autoescaped) and templates/
    charts.py    server-rendered SVG
"""
