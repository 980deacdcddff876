"""Command line: ``python -m zuora_simulator --port P [--host H] [--tenants FILE | --demo]
[--tls-dir DIR --tls-hostname NAME]``.

Prints ``zuora-simulator listening on http(s)://H:P`` once the socket accepts connections.
With ``--tls-dir`` it serves https with a new throwaway CA and certificate written to DIR
(see :mod:`zuora_simulator.tls`).
``--port 0`` picks a free port; ``--port-file F`` writes the chosen port to F (used by
:func:`zuora_simulator.running_simulator`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import uvicorn

from .app import create_app
from .demo import demo_tenants
from .state import Registry


class _Server(uvicorn.Server):
    """A uvicorn server that announces its real address once it is listening."""

    def __init__(self, config: uvicorn.Config, port_file: str | None):
        super().__init__(config)
        self.port_file = port_file

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        if self.port_file:
            tmp = Path(self.port_file + ".tmp")
            tmp.write_text(str(port))
            tmp.replace(self.port_file)
        scheme = "https" if self.config.ssl_certfile else "http"
        print(f"zuora-simulator listening on {scheme}://{self.config.host}:{port}", flush=True)


def load_tenants(path: str) -> list[dict]:
    raw = json.loads(Path(path).read_text())
    return raw["tenants"] if isinstance(raw, dict) else raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zuora_simulator", description="Local Zuora Workflow REST API simulator"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--tenants", metavar="FILE", help="JSON list of tenant configs")
    source.add_argument("--demo", action="store_true", help="the acme/globex/initech demo tenants")
    parser.add_argument("--port-file", help="write the bound port to this file when ready")
    parser.add_argument("--tls-dir", help="serve https; write a new CA (ca.pem) and certificate here")
    parser.add_argument(
        "--tls-hostname", action="append", default=[], help="a name the certificate is valid for"
    )
    parser.add_argument("--export-cache-mb", type=int, default=64)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)

    registry = Registry(export_cache_mb=args.export_cache_mb)
    tenants = demo_tenants() if args.demo else load_tenants(args.tenants) if args.tenants else []
    for config in tenants:
        registry.add_tenant(config)
    tls = {}
    if args.tls_dir:
        from .tls import write_certificates

        _, cert, key = write_certificates(Path(args.tls_dir), args.tls_hostname)
        tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    config = uvicorn.Config(
        create_app(registry),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_keep_alive=30,
        backlog=2048,
        lifespan="off",
        timeout_graceful_shutdown=2,
        **tls,
    )
    _Server(config, args.port_file).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
