"""The Airflow provider entry point: what Airflow's providers manager reads about this package.

Kept free of imports: Airflow loads it in every process (scheduler, API server, workers), and
a provider whose info cannot be imported breaks every ``airflow`` command.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "zuora-workflow-sync"

# The connection form's extra fields: stored in the connection's ``extra`` under these names,
# read by ``zuora.api.credentials.ZuoraOptions``. Unset fields are left out.
CONN_FIELDS = {
    "environment": {
        "label": "Environment",
        "description": "production or sandbox: the kind of tenant this customer is (checked "
        "against the host; required for a custom host)",
        "schema": {"type": ["string", "null"], "enum": ["production", "sandbox", None]},
    },
    "page_length": {
        "label": "Page length",
        "description": "workflows per list page, 1-50 (default 50, Zuora's maximum)",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 50},
    },
    "max_concurrency": {
        "label": "Max concurrency",
        "description": "exports in flight at once for this tenant (default 4)",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 32},
    },
    "allow_custom_host": {
        "label": "Allow custom host",
        "description": "accept a host that is not one of Zuora's REST hosts (a proxy, a test "
        "server); plain http only with allow_insecure_http in the extra JSON",
        "schema": {"type": ["boolean", "null"]},
    },
}


def get_provider_info() -> dict:
    try:
        versions = [version(DISTRIBUTION)]
    except PackageNotFoundError:  # running from a source tree that is not installed
        versions = []
    return {
        "package-name": DISTRIBUTION,
        "name": "Zuora Workflow Sync",
        "description": "Keeps the Zuora Workflow definitions of many customers in Postgres: "
        "a hook for the Zuora Workflow API (OAuth client credentials) and the "
        "library behind the zuora_workflow_sync DAGs.",
        "versions": versions,
        # laid out and registered as Airflow's own providers do: the integration, its hook
        # module and its notifier (listed by `airflow providers hooks` / `notifications`)
        "integrations": [
            {
                "integration-name": "Zuora",
                "external-doc-url": "https://developer.zuora.com/v1-api-reference/api/tag/Workflows/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Zuora", "python-modules": ["zuora.api.hook"]}],
        "notifications": ["zuora.notifications.alerts.ZuoraAlertNotifier"],
        "connection-types": [
            {
                "connection-type": "zuora",
                "hook-name": "Zuora",
                "hook-class-name": "zuora.api.hook.ZuoraHook",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "REST base URL",
                        "login": "Client ID",
                        "password": "Client secret",
                    },
                    "placeholders": {
                        "host": "https://rest.zuora.com (no /v1)",
                        "login": "b64e42ba-7e1a-4bc6-9146-5e1b420306b5",
                        "password": "the OAuth client's secret",
                        "extra": '{"read_timeout": 60, "max_attempts": 6}',
                    },
                },
            }
        ],
    }
