"""The real zuora_workflow_sync Airflow DAG in batches, under its own dag_id, for benchmarks/fleet_run.py:
the same file (dags/zuora_workflow_sync.py) executed with $ZUORA_SYNC_CUSTOMERS_PER_TASK set to
$ZWS_BENCH_CUSTOMERS_PER_TASK (default 50) and the dag_id ``zuora_workflow_sync_batched``, so
one cluster runs both shapes, the real DAG (one group per customer) beside this one.

The value is set in os.environ while this file is parsed: by the dag-processor (its parse of
each file is a process of its own, so the real DAG's parse never sees it) and by every task
process of this DAG, which parses this file again; the batch task and its ``execution_timeout``
read the same value. Not a DAG of the product: the cluster of the benchmark alone loads it.
"""

from __future__ import annotations

import os
from pathlib import Path

DAG_ID = "zuora_workflow_sync_batched"
SOURCE = Path(__file__).resolve().parents[1] / "dags" / "zuora_workflow_sync.py"
PER_TASK = os.environ.get("ZWS_BENCH_CUSTOMERS_PER_TASK", "50")

os.environ["ZUORA_SYNC_CUSTOMERS_PER_TASK"] = PER_TASK
_text = SOURCE.read_text()
_original = 'dag_id="zuora_workflow_sync"'
if _text.count(_original) != 1:
    raise RuntimeError(f"{SOURCE} no longer names its DAG with {_original}: update {__file__}")
# compiled under the real file's name, so tracebacks point at its lines; the DAG (auto-registered
# with the module being parsed: this one) gets this file as its fileloc
exec(compile(_text.replace(_original, f'dag_id="{DAG_ID}"'), str(SOURCE), "exec"))
