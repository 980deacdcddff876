"""The comparison both the dag.test() and the cluster tests make: a run's series, customer by
customer and with tags, against its zuora.sync_runs rows."""

from __future__ import annotations

import psycopg

LEDGER = """
SELECT customer_id, status, c.environment, api_requests, token_mints, rate_limited, retries,
       listed, exported, inserted + updated + restored, deleted, invalid, round(duration_seconds * 1000)
  FROM zuora.sync_runs JOIN zuora.customers c USING (customer_id)
 WHERE run_id = %s ORDER BY customer_id"""
COUNTERS = (  # sync_runs column (in LEDGER's order, from api_requests; the duration last) -> series
    "zuora_sync.zuora.requests",
    "zuora_sync.zuora.token_mints",
    "zuora_sync.zuora.rate_limited",
    "zuora_sync.zuora.retries",
    "zuora_sync.workflows.listed",
    "zuora_sync.workflows.exported",
    "zuora_sync.workflows.changed",
    "zuora_sync.workflows.deleted",
    "zuora_sync.workflows.invalid",
)


def ledger(uri, run_id):
    with psycopg.connect(uri) as conn:
        return conn.execute(LEDGER, (run_id,)).fetchall()


def assert_series_match_the_ledger(samples, rows, failed_customer: str = "globex"):
    """``rows`` from ``ledger``: one customer failed at its list stage, the others succeeded.
    A customer's series are tagged with the environment it is registered as."""
    for customer, status, environment, *figures, milliseconds in rows:
        tags = {"customer": customer, "environment": environment}
        succeeded = samples.total("zuora_sync.customer_sync.succeeded", **tags)
        failed = samples.total("zuora_sync.customer_sync.failed", **tags)
        assert (succeeded, failed) == ((1, 0) if status == "success" else (0, 1)), customer
        assert milliseconds > 0  # the sync's duration, added up: equal to the ms (rounding aside)
        assert abs(samples.total("zuora_sync.customer_sync.milliseconds", **tags) - float(milliseconds)) <= 1
        for name, figure in zip(COUNTERS, figures, strict=True):
            assert samples.total(name, **tags) == figure, (customer, name)
        assert samples.of("zuora_sync.customer_sync.duration", environment=environment)[0].kind == "timer"
    assert samples.total("zuora_sync.zuora.requests") > 0  # the ledger was not all zeros
    assert samples.total("zuora_sync.customer_sync.failed", customer=failed_customer) == 1
    if not samples.last_export_per_process:  # fleet-wide series many processes emit (see Samples)
        # the failed customer's stage, and its dead letter, by the stage that failed
        assert samples.total("zuora_sync.stage.failed", stage="list") == 1
        assert samples.total("zuora_sync.dead_letters.written", stage="list") == 1
        assert samples.total("zuora_sync.stage.failed") == 1  # zeros at the other stages
    assert samples.of("zuora_sync.run.customers")[-1].value == len(rows)
    assert samples.of("zuora_sync.run.failed_customers")[-1].value == 1
    assert samples.total("zuora_sync.run.finished", outcome="failed") == 1
    assert samples.total("zuora_sync.run.finished", outcome="success") == 0
    [run_duration] = samples.of("zuora_sync.run.duration")
    assert run_duration.value > 0
