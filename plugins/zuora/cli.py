"""The command line: add a customer, set its task allowance, restore or promote a workflow
version, report drift.

    PYTHONPATH=plugins .venv/bin/python -m zuora.cli add-customer ...   # see below
    ... -m zuora.cli set-allowance acme 50000     # tasks a month; "none" removes it
    ... -m zuora.cli restore acme 101 --version 0.0.2 [--to acme_prod] [--apply] ...
    ... -m zuora.cli drift [TENANT_GROUP]

**add-customer** tests a real customer's credentials before anything is saved:

    export ZUORA_CLIENT_SECRET='...'      # or be prompted for it
    PYTHONPATH=plugins .venv/bin/python -m zuora.cli add-customer acme --name "Acme Corp" \\
        --environment production --base-url https://rest.zuora.com \\
        --client-id b64e42ba-7e1a-4bc6-9146-5e1b420306b5 [--tenant-group acme]

1. validates the connection fields (``credentials_from_connection``) and that the base URL
   is of the customer's environment;
2. calls Zuora (``ZuoraHook.test_connection``: a token and one list page);
3. only then stores the Airflow connection ``zuora_<customer_id>`` (``airflow connections
   import`` from a private temporary file, so the secret never appears in a process list)
   and upserts the ``zuora.customers`` row in the warehouse (connection ``zuora_warehouse``).

With ``--no-airflow-connection`` the connection is expected to exist already (a secrets
backend, or ``AIRFLOW_CONN_*`` variables); it is still tested before the row is written.
``--task-allowance N`` sets the customer's monthly Workflow task allowance (an existing
customer keeps its allowance unless given one; ``set-allowance`` changes or removes it).

**restore** (``zuora.restore``) shows what it would import where (a dry run, recorded in
``zuora.restores``); with ``--apply`` it imports the stored exact original into Zuora. Exit
status 1: refused or failed, nothing imported; ``EXIT_OUTCOME_UNKNOWN`` (3): Zuora may have
imported it (its answer was lost), and the next dry run settles it.
**drift** (``zuora.drift``) compares a tenant group's sandbox and production workflows.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime

from zuora import settings, warehouse
from zuora.api.credentials import airflow_connection
from zuora.api.errors import ZuoraError
from zuora.api.hook import ZuoraHook
from zuora.warehouse.connection import warehouse_connection

EXIT_OUTCOME_UNKNOWN = 3  # restore --apply: Zuora may have imported it; the next dry run settles it


def add_customer(args: argparse.Namespace, secret: str) -> str:
    """Validate, test, then save; returns a message. Raises SystemExit on refusal."""
    return add_customers([(args, secret)])[0]


def add_customers(customers: list[tuple[argparse.Namespace, str]]) -> list[str]:
    """``add_customer`` for several customers: each is validated and tested before anything is
    saved (one refusal saves none), then their Airflow connections are stored with one
    ``airflow connections import`` (one Airflow start-up, not one per customer) and their
    rows written."""
    tested = [_tested(args, secret) for args, secret in customers]
    definitions = {conn_id: definition for _, conn_id, definition, _ in tested if definition}
    if definitions:
        save_airflow_connections(definitions)
    messages = []
    for args, conn_id, _, message in tested:
        group = None if args.no_tenant_group else args.tenant_group or warehouse.KEEP
        _save_customer(args.customer_id, args.name, conn_id, args.environment, group, args.enabled)
        if getattr(args, "task_allowance", None) is not None:
            set_allowance(args.customer_id, args.task_allowance)
        messages.append(f"customer {args.customer_id} added with connection {conn_id}: {message}")
    return messages


def _tested(args: argparse.Namespace, secret: str) -> tuple[argparse.Namespace, str, dict | None, str]:
    """(args, connection id, the connection to store or None, Zuora's answer), once the
    connection's fields, its environment and a call to Zuora succeeded."""
    conn_id = args.conn_id or f"{settings.CUSTOMER_CONN_PREFIX}{args.customer_id}"
    definition = None
    if not args.no_airflow_connection:
        definition = airflow_connection(
            args.base_url, args.client_id, secret, **json.loads(args.extra or "{}")
        )
        # make the connection visible to this process only, to test it before saving it
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(definition)
    hook = ZuoraHook(conn_id)
    try:
        hook.credentials.check_environment(args.environment, args.customer_id)
    except ZuoraError as exc:
        raise SystemExit(f"refused: {exc}") from None
    ok, message = hook.test_connection()
    if not ok:
        raise SystemExit(f"refused: the credentials do not work for {args.customer_id}: {message}")
    return args, conn_id, definition, message


def save_airflow_connections(definitions: dict[str, dict], env: dict[str, str] | None = None) -> None:
    """The connections (conn_id -> definition) in Airflow's database, with one `airflow
    connections import` of this interpreter's Airflow (in ``env``: another Airflow's settings)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:  # created 0600
        json.dump(definitions, handle)
        handle.flush()
        # this interpreter's Airflow, wherever its `airflow` script was installed
        result = subprocess.run(
            [sys.executable, "-m", "airflow", "connections", "import", "--overwrite", handle.name],
            env=env,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise SystemExit(
            f"could not store the Airflow connections {', '.join(definitions)}: "
            f"{result.stderr.strip()[-500:]}"
        )


def _save_customer(
    customer_id: str,
    name: str,
    conn_id: str,
    environment: str,
    tenant_group: str | None | warehouse.Keep,
    enabled: bool | None,
) -> None:
    """Write what the command was given; an existing customer keeps its tenant group and its
    enabled flag unless told otherwise (re-running add-customer to rotate a secret changes
    neither)."""
    with warehouse_connection() as conn:
        warehouse.apply_migrations(conn)
        try:
            warehouse.upsert_customer(
                conn,
                customer_id=customer_id,
                name=name,
                zuora_conn_id=conn_id,
                environment=environment,
                tenant_group=tenant_group,
                enabled=enabled,
            )
        except ValueError as exc:
            raise SystemExit(f"refused: {exc}") from None


def set_allowance(customer_id: str, allowance: int | None) -> str:
    """Set (or, with None, remove) the customer's monthly Workflow task allowance."""
    from zuora.warehouse.usage import set_task_allowance

    with warehouse_connection() as conn:
        warehouse.apply_migrations(conn)
        try:
            set_task_allowance(conn, customer_id, allowance)
        except (LookupError, ValueError) as exc:
            raise SystemExit(f"refused: {exc.args[0]}") from None
    if allowance is None:
        return f"customer {customer_id}: no task allowance"
    return f"customer {customer_id}: task allowance {allowance:,} tasks a month"


def _allowance(text: str) -> int | None:
    """A number of tasks a month (at least 1), or "none"."""
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"a task allowance is a whole number of tasks a month >= 1, or none: {text!r}"
        )
    return value


def restore(args: argparse.Namespace) -> str:
    from zuora.restore import RestoreOutcomeUnknown, RestoreRefused, run

    try:
        text, _ = run(
            args.customer_id,
            args.zuora_id,
            version=args.version,
            as_of=args.as_of,
            to=args.to,
            as_new_workflow=args.as_new_workflow,
            activate=args.activate,
            into_another_company=args.into_another_company,
            apply_it=args.apply,
            confirm_production=args.confirm_production,
            requested_by=getpass.getuser(),
        )
    except RestoreRefused as exc:
        raise SystemExit(f"refused: {exc}") from None
    except ZuoraError as exc:
        raise SystemExit(f"failed: {exc}") from None
    except RestoreOutcomeUnknown as exc:
        print(f"outcome unknown: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_OUTCOME_UNKNOWN) from None
    return text


def _timestamp(text: str) -> datetime:
    """ISO 8601 with a time zone, parsed as the restore DAG parses its as_of param."""
    from zuora.restore import RestoreRefused, parse_as_of

    try:
        return parse_as_of(text)
    except RestoreRefused as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m zuora.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-customer", help="test a customer's credentials, then save them")
    add.add_argument("customer_id")
    add.add_argument("--name", required=True)
    add.add_argument("--environment", required=True, choices=["production", "sandbox"])
    add.add_argument("--base-url", help="the tenant's REST base URL, e.g. https://rest.zuora.com")
    add.add_argument("--client-id")
    add.add_argument("--extra", help="JSON options for the connection extra")
    add.add_argument("--conn-id", help="Airflow connection id (default zuora_<customer_id>)")
    add.add_argument(
        "--no-airflow-connection",
        action="store_true",
        help="the connection exists already; only test it and write the customer row",
    )
    group = add.add_mutually_exclusive_group()
    group.add_argument(
        "--tenant-group", help="pairs this customer with its other environment (drift, promotion)"
    )
    group.add_argument(
        "--no-tenant-group", action="store_true", help="unpair the customer (default: keep its group)"
    )
    enabled = add.add_mutually_exclusive_group()
    enabled.add_argument(
        "--enable", dest="enabled", action="store_const", const=True, help="sync it (new customers are)"
    )
    enabled.add_argument(
        "--disable", dest="enabled", action="store_const", const=False, help="stop syncing it, keep its data"
    )
    add.add_argument(
        "--task-allowance",
        type=_allowance,
        metavar="N",
        help="its Workflow tasks a month (default: an existing customer keeps its allowance)",
    )

    allowance_cmd = commands.add_parser(
        "set-allowance", help="set or remove a customer's monthly Workflow task allowance"
    )
    allowance_cmd.add_argument("customer_id")
    allowance_cmd.add_argument("tasks", type=_allowance, help='tasks a month, or "none" to remove it')

    restore_cmd = commands.add_parser(
        "restore", help="restore or promote a stored workflow version (a dry run unless --apply)"
    )
    restore_cmd.add_argument("customer_id", help="the customer the version was synced from")
    restore_cmd.add_argument("zuora_id", type=int, help="the workflow's Zuora id in that customer")
    which = restore_cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", help="the version number, e.g. 0.0.2")
    which.add_argument(
        "--as-of",
        type=_timestamp,
        metavar="TIMESTAMP",
        help="the newest version created by then (ISO 8601 with its zone, e.g. 2026-03-01T09:00Z)",
    )
    restore_cmd.add_argument(
        "--to", metavar="CUSTOMER", help="promote into this customer's tenant (same tenant group)"
    )
    restore_cmd.add_argument(
        "--into-another-company",
        action="store_true",
        help="allow --to a customer outside the source's tenant group (a copy, e.g. of a template)",
    )
    restore_cmd.add_argument(
        "--as-new-workflow",
        action="store_true",
        help="import as a new workflow, not a new version of an existing one",
    )
    restore_cmd.add_argument("--activate", action="store_true", help="make the import the active version")
    restore_cmd.add_argument("--apply", action="store_true", help="import it (after a dry run)")
    restore_cmd.add_argument(
        "--confirm-production", action="store_true", help="required to import into a production tenant"
    )

    drift_cmd = commands.add_parser("drift", help="compare a tenant group's sandbox and production")
    drift_cmd.add_argument("tenant_group", nargs="?", help="one group (default: an overview of all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "restore":
        print(restore(args))
        return 0
    if args.command == "drift":
        from zuora import drift

        print(drift.run(args.tenant_group))
        return 0
    if args.command == "set-allowance":
        print(set_allowance(args.customer_id, args.tasks))
        return 0
    secret = ""
    if not args.no_airflow_connection:
        if not (args.base_url and args.client_id):
            parser.error("--base-url and --client-id are required (or --no-airflow-connection)")
        secret = os.environ.get("ZUORA_CLIENT_SECRET") or getpass.getpass("Zuora client secret: ")
    print(add_customer(args, secret))
    return 0


if __name__ == "__main__":
    sys.exit(main())
