"""``python -m zuora_simulator.register_demo BASE_URL [--ca-bundle FILE]``: the customers of
`make demo` in a running deployment. It adds Umbrella's sandbox and production tenants (with
their drift) to the simulator if it has not got them yet, then adds acme, globex, initech and
Umbrella's two environments as customers the way a person adds one with ``python -m zuora.cli
add-customer``: every customer's credentials are tested against the simulator, then the Airflow
connections ``zuora_demo_<id>`` are stored (one ``airflow connections import`` for all) and
the ``zuora.customers`` rows written.

The compose ``demo`` profile runs it on every ``up`` (service ``zuora-demo-init``), with the
simulator reached at ``https://zuora-simulator:8090`` and trusted through the CA it wrote
(the connection's ``ca_bundle``). Running it again updates the same connections and rows.
"""

from __future__ import annotations

import argparse
import json
import sys

from zuora_simulator.client import AdminClient
from zuora_simulator.demo import (
    CUSTOMER_NAMES,
    UMBRELLA_CUSTOMERS,
    UMBRELLA_GROUP,
    UMBRELLA_SANDBOX,
    add_umbrella_tenants,
    demo_tenants,
    umbrella_tenants,
)


def add_customer_arguments(base_url: str, ca_bundle: str | None) -> list[tuple[list[str], str]]:
    """(argv of ``zuora.cli``, client secret) for each demo customer."""
    customers = [(tenant, CUSTOMER_NAMES[tenant["tenant_id"]], "sandbox", None) for tenant in demo_tenants()]
    customers += [
        (tenant, *UMBRELLA_CUSTOMERS[tenant["tenant_id"]], UMBRELLA_GROUP) for tenant in umbrella_tenants()
    ]
    made = []
    for tenant, name, environment, group in customers:
        extra = {"allow_custom_host": True, "environment": environment}
        if ca_bundle:
            extra["ca_bundle"] = ca_bundle
        argv = [
            "add-customer",
            tenant["tenant_id"],
            "--name",
            name,
            "--environment",
            environment,
            "--base-url",
            base_url,
            "--client-id",
            tenant["client_id"],
            "--conn-id",
            f"zuora_demo_{tenant['tenant_id']}",
            "--extra",
            json.dumps(extra),
        ]
        made.append((argv + (["--tenant-group", group] if group else []), tenant["client_secret"]))
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zuora_simulator.register_demo", description=__doc__)
    parser.add_argument(
        "base_url", help="where the workers reach the simulator, e.g. https://zuora-simulator:8090"
    )
    parser.add_argument("--ca-bundle", help="the simulator's CA certificate (its --tls-dir/ca.pem)")
    args = parser.parse_args(argv)
    from zuora import cli

    admin = AdminClient(args.base_url, ca_bundle=args.ca_bundle)
    if UMBRELLA_SANDBOX not in {tenant["tenant_id"] for tenant in admin.tenants()}:
        add_umbrella_tenants(admin)
    parser = cli.build_parser()
    customers = [
        (parser.parse_args(arguments), secret)  # the simulator's fixed demo credentials
        for arguments, secret in add_customer_arguments(args.base_url, args.ca_bundle)
    ]
    for message in cli.add_customers(customers):
        print(message)
    print("Demo customers added: unpause zuora_workflow_sync in the UI (or trigger it) to sync them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
