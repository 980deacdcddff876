"""The real zuora_workflow_sync Airflow DAG with its shape forced, under a dag_id of its own, so one
cluster runs the default (auto) beside forced shapes: linked into a cluster's DAG folder as
``zuora_workflow_sync_per_task_<N>.py`` (``_cluster.shape_dags``), this file executes
dags/zuora_workflow_sync.py with $ZUORA_SYNC_CUSTOMERS_PER_TASK=N and the dag_id
``zuora_workflow_sync_per_task_<N>``: the name it is linked under says which.

The value is set in os.environ while the file is parsed: by the dag-processor (its parse of
each file is a process of its own, so the real DAG's parse never sees it) and by every task
process of this DAG, which parses this file again before its task runs; the run's
list_customers and the batch task's ``execution_timeout`` read it there. Not a DAG of the
product: the benchmarks' clusters alone load it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "dags" / "zuora_workflow_sync.py"
NAME = re.fullmatch(r"zuora_workflow_sync_per_task_(\d+)", Path(__file__).stem)
if NAME is None:
    raise RuntimeError(f"{__file__}: link this file as zuora_workflow_sync_per_task_<N>.py")

os.environ["ZUORA_SYNC_CUSTOMERS_PER_TASK"] = NAME.group(1)
_text = SOURCE.read_text()
_original = 'dag_id="zuora_workflow_sync"'
if _text.count(_original) != 1:
    raise RuntimeError(f"{SOURCE} no longer names its DAG with {_original}: update {__file__}")
# compiled under the real file's name, so tracebacks point at its lines
exec(compile(_text.replace(_original, f'dag_id="{NAME.group(0)}"'), str(SOURCE), "exec"))
