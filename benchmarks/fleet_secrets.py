"""A secrets backend for the fleet run's workers (``fleet_run.py --worker-secrets``): the
customers' connections in one JSON file, each looked up by its id, as a worker asks Vault, AWS
Secrets Manager or GCP Secret Manager through ``[workers] secrets_backend``. A task process then
finds its connection without the Execution API, so the API server never loads (and masks) it."""

from __future__ import annotations

import json

from airflow.sdk.bases.secrets_backend import BaseSecretsBackend


class JsonFileConnections(BaseSecretsBackend):
    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self._connections: dict | None = None

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        if self._connections is None:
            with open(self.path) as handle:
                self._connections = json.load(handle)
        value = self._connections.get(conn_id)
        return None if value is None else json.dumps(value)

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        return None
