"""A StatsD sink standing in for prom/statsd-exporter in compose-check (no statsd_exporter
binary is in any registry this machine reaches). It is NOT an exporter: it applies no
mapping (monitoring/statsd-exporter/mapping.yml is checked by parsing it instead).

It takes statsd_exporter's flags (--statsd.listen-udp, --web.listen-address,
--statsd.mapping-config, which must name a readable file), counts the datagrams it receives on
UDP by metric name and serves the counts on /metrics in Prometheus's text format:

    compose_check_statsd_datagrams_total{name="airflow.zuora_sync.customer_sync.count",type="c"} 3

so Prometheus, scraping it as it would scrape the exporter, shows which StatsD series the
Airflow containers sent to `statsd-exporter:9125`.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS: Counter[tuple[str, str]] = Counter()
LOCK = threading.Lock()


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "0.0.0.0", int(port)


def receive(sock: socket.socket) -> None:
    while True:
        data, _ = sock.recvfrom(65535)
        for line in data.decode("utf-8", "replace").splitlines():
            # name[,tag=value...]:value|type[|@rate][|#tags]
            name, _, rest = line.partition(":")
            kind = rest.split("|")[1] if rest.count("|") else "?"
            name = name.split(",")[0].strip()
            if name:
                with LOCK:
                    COUNTS[(name, kind)] += 1


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        with LOCK:
            rows = sorted(COUNTS.items())
        lines = [
            "# HELP compose_check_statsd_datagrams_total StatsD lines received, by metric name.",
            "# TYPE compose_check_statsd_datagrams_total counter",
        ]
        lines += [
            f'compose_check_statsd_datagrams_total{{name="{escape(name)}",type="{escape(kind)}"}} {count}'
            for (name, kind), count in rows
        ]
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="statsd-sink")
    parser.add_argument("--statsd.listen-udp", dest="udp", default=":9125")
    parser.add_argument("--web.listen-address", dest="web", default=":9102")
    parser.add_argument("--statsd.mapping-config", dest="mapping")
    args, ignored = parser.parse_known_args(argv)
    if args.mapping:
        with open(args.mapping, encoding="utf-8") as mapping:  # present and readable, as the exporter needs
            mapping.read()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(address(args.udp))
    threading.Thread(target=receive, args=(udp,), daemon=True).start()
    print(
        f"statsd sink (compose-check stand-in, no mapping applied): udp {args.udp}, http {args.web}"
        + (f"; ignored flags {ignored}" if ignored else ""),
        flush=True,
    )
    ThreadingHTTPServer(address(args.web), Metrics).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
