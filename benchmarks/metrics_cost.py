"""Metrics cost: what emitting the sync's metrics costs per customer sync, in CPU and wall,
against the same syncs with metrics off, in one run.

Run: .venv/bin/python benchmarks/metrics_cost.py [--customers 20] [--workflows 50] [--rounds 5]
Starts its own simulator and embedded Postgres, and the receivers in a process of their own
(their CPU is not counted as the sync's). Each round syncs every customer once per mode,
the modes interleaved (off, StatsD with tags to a UDP receiver, OpenTelemetry to an OTLP/HTTP
receiver, flushed at the end of its round as a task process does at
exit), with the library's stages in this process (``sync.run_customer``; an unchanged customer
is finished by its list stage, the daily case). Airflow's Stats is set up from ``[metrics]`` as
the task runner does. Two readings: the difference of the per-customer means (CPU of this
process, wall), and the cost of ``zuora.metrics.customer_sync_ended`` itself (the call a
customer's sync makes: read its sync_runs row, emit 12 series), timed on its own.
Writes the "Metrics cost" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import _common  # noqa: F401  (paths and Airflow environment first)
import psycopg

from devstack.postgres import EmbeddedPostgres
from tests.metrics.receivers import OtlpReceiver, StatsdReceiver
from zuora import metrics, sync, warehouse
from zuora_simulator.client import running_simulator

MODES = ("off", "statsd", "otel")


def _receive(ready, stop, counts) -> None:
    """The receivers, in a process of their own: their CPU is not the sync's."""
    statsd, otlp = StatsdReceiver(), OtlpReceiver()
    ready.put((statsd.port, otlp.endpoint))
    stop.wait()
    counts.put((len(statsd.lines), len(otlp.requests)))
    statsd.close()
    otlp.close()


class Receivers:
    def __init__(self):
        self.ready, self.counts, self.stop = (
            multiprocessing.Queue(),
            multiprocessing.Queue(),
            multiprocessing.Event(),
        )
        self.process = multiprocessing.Process(target=_receive, args=(self.ready, self.stop, self.counts))
        self.process.start()
        self.port, self.endpoint = self.ready.get(timeout=30)

    def close(self) -> tuple[int, int]:
        time.sleep(1)  # the last datagrams
        self.stop.set()
        counts = self.counts.get(timeout=30)
        self.process.join(timeout=30)
        return counts


def configure(mode: str, receivers: Receivers) -> None:
    import os

    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    for key in ("AIRFLOW__METRICS__STATSD_ON", "AIRFLOW__METRICS__OTEL_ON"):
        os.environ[key] = "False"
    if mode == "statsd":
        os.environ |= {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(receivers.port),
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
        }
    elif mode == "otel":
        os.environ |= {
            "AIRFLOW__METRICS__OTEL_ON": "True",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": receivers.endpoint,
        }
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=True)


def flush() -> None:
    from opentelemetry import metrics as otel_metrics

    provider = otel_metrics.get_meter_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--workflows", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    _common.quiet_logs()
    started_at, machine = _common.utc_date(), _common.machine()
    receivers = Receivers()
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    wall: dict[str, list[float]] = {m: [] for m in MODES}
    own: dict[str, list[float]] = {m: [] for m in MODES}
    exports: list[tuple[float, float]] = []
    with running_simulator() as sim, EmbeddedPostgres() as pg:
        import os

        os.environ["AIRFLOW_CONN_ZUORA_WAREHOUSE"] = pg.uri
        os.environ["ZUORA_SYNC_HISTORY_CALLS"] = "0"
        with psycopg.connect(pg.uri) as conn:
            warehouse.apply_migrations(conn)
            customers = [
                _common.register_customer(
                    conn, f"c{i:03d}", sim.admin.add_tenant(f"bench-c{i:03d}", workflows=args.workflows)
                )
                for i in range(args.customers)
            ]
        for customer in customers:  # the first sync stores everything: not what is measured
            sync.run_customer(customer, "warm-up")
        with psycopg.connect(pg.uri, autocommit=True) as conn:
            for round_ in range(args.rounds):
                for mode in MODES:
                    configure(mode, receivers)
                    run_id = f"round-{round_}-{mode}"
                    for customer in customers:
                        c0, w0 = time.process_time(), time.perf_counter()
                        reports = sync.run_customer(customer, run_id)
                        cpu[mode].append(time.process_time() - c0)
                        wall[mode].append(time.perf_counter() - w0)
                        assert reports["upsert"], reports
                        c0 = time.perf_counter()
                        metrics.customer_sync_ended(conn, run_id, customer["customer_id"])
                        own[mode].append(time.perf_counter() - c0)
                    if mode == "otel":  # a task process exports at exit: one export per round here
                        c0, w0 = time.process_time(), time.perf_counter()
                        flush()
                        exports.append((time.process_time() - c0, time.perf_counter() - w0))
    received_statsd, received_otlp = receivers.close()

    def ms(values):
        return statistics.mean(values) * 1000

    rows = []
    for mode in MODES:
        rows.append(
            f"| {mode} | {len(cpu[mode])} | {ms(cpu[mode]):.2f} | {ms(wall[mode]):.2f} | "
            f"{ms(cpu[mode]) - ms(cpu['off']):+.2f} | {ms(wall[mode]) - ms(wall['off']):+.2f} | "
            f"{statistics.median(own[mode]) * 1000:.2f} / {max(own[mode]) * 1000:.2f} |"
        )

    def se(values):
        return statistics.stdev(values) * 1000 / len(values) ** 0.5

    export_cpu = statistics.mean(e[0] for e in exports) * 1000
    export_wall = statistics.mean(e[1] for e in exports) * 1000
    body = f"""
{started_at}; `{_common.command("metrics_cost.py")}`; {machine}.

{args.customers} customers x {args.workflows} workflows on the simulator, {args.rounds} rounds, each
syncing every customer once per mode, modes interleaved (after a first sync that stored
everything: these are unchanged customers, finished by their list stage, the daily case).
Received: {received_statsd} StatsD datagrams, {received_otlp} OTLP export requests.

| metrics | customer syncs | CPU ms per customer sync | wall ms per customer sync | CPU vs off, ms | wall vs off, ms | `customer_sync_ended` alone, ms (median / max) |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

**Two readings of the cost per customer sync.** The call a customer's sync makes, timed alone
(last column): with a backend, one indexed read of the customer's `sync_runs` row and 12 series
(13 with dead letters), a UDP datagram each or an in-memory OpenTelemetry update; with metrics
off it returns at once (Airflow's no-op logger: nothing read or computed). And the whole
syncs' means against "off" (columns 5 and 6), which hold everything the backend costs in this
process (OpenTelemetry's instruments and reader thread too), with this machine's noise:
standard errors of the "off" means {se(cpu["off"]):.2f} ms CPU, {se(wall["off"]):.2f} ms wall (a
difference within about two of them is noise). OpenTelemetry's export (what a task process does at exit, timed
apart, once per round of {args.customers} customer syncs): {export_cpu:.1f} ms CPU, {export_wall:.1f} ms
wall. Not counted: making the backend once per task process (Airflow does it for its own
`ti.start` before our code runs).
"""
    _common.write_section("Metrics cost", body)
    print(body)


if __name__ == "__main__":
    main()
