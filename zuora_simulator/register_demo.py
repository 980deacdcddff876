"""``python -m zuora_simulator.register_demo BASE_URL [--ca-bundle FILE]``: add the simulator's
demo tenants (acme, globex, initech) as customers of a running deployment, the way a person
adds one: ``python -m zuora.cli add-customer`` tests the credentials against the simulator,
then stores the Airflow connection ``zuora_demo_<id>`` and the ``zuora.customers`` row.

The compose ``demo`` profile runs it once per ``up`` (service ``zuora-demo-init``), with the
simulator reached at ``https://zuora-simulator:8090`` and trusted through the CA it wrote
(the connection's ``ca_bundle``). Running it again updates the same connections and rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from zuora_simulator.demo import CUSTOMER_NAMES, demo_tenants


def add_customer_arguments(base_url: str, ca_bundle: str | None) -> list[tuple[list[str], str]]:
    """(argv of ``zuora.cli``, client secret) for each demo tenant."""
    extra = {"allow_custom_host": True, "environment": "sandbox"}
    if ca_bundle:
        extra["ca_bundle"] = ca_bundle
    return [
        (
            [
                "add-customer",
                tenant["tenant_id"],
                "--name",
                CUSTOMER_NAMES[tenant["tenant_id"]],
                "--environment",
                "sandbox",
                "--base-url",
                base_url,
                "--client-id",
                tenant["client_id"],
                "--conn-id",
                f"zuora_demo_{tenant['tenant_id']}",
                "--extra",
                json.dumps(extra),
            ],
            tenant["client_secret"],
        )
        for tenant in demo_tenants()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zuora_simulator.register_demo", description=__doc__)
    parser.add_argument(
        "base_url", help="where the workers reach the simulator, e.g. https://zuora-simulator:8090"
    )
    parser.add_argument("--ca-bundle", help="the simulator's CA certificate (its --tls-dir/ca.pem)")
    args = parser.parse_args(argv)
    from zuora import cli

    for arguments, secret in add_customer_arguments(args.base_url, args.ca_bundle):
        os.environ["ZUORA_CLIENT_SECRET"] = secret  # the simulator's fixed demo credentials
        cli.main(arguments)
    print("Demo customers added: unpause zuora_workflow_sync in the UI (or trigger it) to sync them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
