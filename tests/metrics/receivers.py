"""Real metrics receivers for the tests: a UDP socket as a StatsD server and an OTLP/HTTP
endpoint decoding ``ExportMetricsServiceRequest`` (the OTLP exporter's own protobufs).
Also used by tests/deployment (the cluster's workers send to them). And an alert channel: an
HTTP webhook keeping the JSON bodies the ``zuora_alerts`` connection posts to it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Sample:
    name: str  # without the backend's prefix and without tags
    value: float
    kind: str  # counter, gauge, timer (StatsD c/g/ms; OTLP sum/gauge/histogram)
    tags: dict = field(default_factory=dict)


class Samples(list):
    """What a receiver got, with the sums the tests compare to zuora.sync_runs.

    ``last_export_per_process``: OTLP's samples are each series' last cumulative export, and
    Airflow's task processes export under one resource, so a series several processes emit
    (a fleet-wide one) holds only the last process's figure; StatsD's are every datagram."""

    last_export_per_process = False

    def names(self) -> set[str]:
        return {s.name for s in self}

    def total(self, name: str, **tags) -> float:
        return sum(s.value for s in self.of(name, **tags))

    def of(self, name: str, **tags) -> list[Sample]:
        return [s for s in self if s.name == name and all(s.tags.get(k) == v for k, v in tags.items())]

    def by_tag(self, name: str, tag: str) -> dict[str, float]:
        sums: dict[str, float] = defaultdict(float)
        for s in self.of(name):
            sums[s.tags.get(tag)] += s.value
        return dict(sums)


class StatsdReceiver:
    """A StatsD server on a UDP port of 127.0.0.1: every datagram parsed into Samples
    (``name[,k=v...]:value|type``, the InfluxDB-style tags of ``statsd_influxdb_enabled``)."""

    def __init__(self, prefix: str = "airflow."):
        self.prefix = prefix
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self._keep(data.decode().splitlines())

    def _keep(self, lines: list[str]) -> None:
        self.lines += lines

    def samples(self, settle: float = 0.3, since: int = 0) -> Samples:
        """What arrived (from line ``since`` on: ``len(receiver.lines)`` taken earlier)."""
        time.sleep(settle)  # UDP: let the last datagrams arrive
        out = Samples()
        for line in self.lines[since:]:
            stat, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            name, *tag_parts = stat.split(",")
            try:
                tags = dict(part.split("=", 1) for part in tag_parts)
                kind = {"c": "counter", "g": "gauge", "ms": "timer"}[kind.split("|")[0]]
                out.append(Sample(name.removeprefix(self.prefix), float(value), kind, tags))
            except (ValueError, KeyError):  # another component's line this parser does not know
                continue
        return out

    def close(self):
        self._stop.set()
        self.sock.close()


class _OtlpHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.hang:
            time.sleep(self.server.hang)
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        self.server.requests.append((self.path, request))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class OtlpReceiver:
    """An OTLP/HTTP metrics endpoint (``POST /v1/metrics``, protobuf); ``hang`` seconds of
    delay before answering simulates a collector that does not answer."""

    def __init__(self, prefix: str = "airflow.", hang: float = 0):
        self.prefix = prefix
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpHandler)
        self.server.requests = []
        self.server.hang = hang
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.endpoint = f"http://127.0.0.1:{self.port}/v1/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def requests(self):
        return self.server.requests

    def samples(self) -> Samples:
        """Data points of the last export per metric and attribute set (the SDK exports
        cumulative sums), as Samples: sums and gauges by value, histograms by their sum."""
        latest: dict = {}
        for _path, request in self.requests:
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            tags = {a.key: _value(a.value) for a in point.attributes}
                            key = (metric.name, tuple(sorted(tags.items())))
                            if kind == "sum":
                                value = point.as_int if point.HasField("as_int") else point.as_double
                                latest[key] = Sample(metric.name, value, "counter", tags)
                            elif kind == "gauge":
                                value = point.as_int if point.HasField("as_int") else point.as_double
                                latest[key] = Sample(metric.name, value, "gauge", tags)
                            else:  # histogram / exponential_histogram, in ms
                                sample = Sample(metric.name, point.sum, "timer", tags)
                                sample.count = point.count  # type: ignore[attr-defined]
                                sample.unit = metric.unit  # type: ignore[attr-defined]
                                latest[key] = sample
        out = Samples(latest.values())
        out.last_export_per_process = True
        for sample in out:
            sample.name = sample.name.removeprefix(self.prefix)
        return out

    def close(self):
        self.server.shutdown()


def _value(any_value):
    return getattr(any_value, any_value.WhichOneof("value"))


class _WebhookHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


class AlertWebhook:
    """An HTTP alert channel on 127.0.0.1: ``received`` holds the JSON bodies posted to it
    (``kind``, ``title``, ``severity``, ``details``); it answers ``status`` (204; a 4xx or 5xx
    refuses the alert). ``connection()`` is the ``zuora_alerts`` connection pointing at it."""

    def __init__(self, status: int = 204):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _WebhookHandler)
        self.server.received = []
        self.server.status = status
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def received(self) -> list[dict]:
        return self.server.received

    @property
    def status(self) -> int:
        return self.server.status

    @status.setter
    def status(self, value: int) -> None:
        self.server.status = value

    def connection(self) -> str:
        return json.dumps({"conn_type": "http", "host": self.url})

    def close(self):
        self.server.shutdown()
