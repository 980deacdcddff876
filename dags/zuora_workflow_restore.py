"""
### Zuora workflow restore

Puts a stored version of a workflow back into Zuora (as a new version of that workflow), or
promotes it into another customer's tenant, e.g. sandbox to production. The same as
`python -m zuora.cli restore`; every attempt is audited in `zuora.restores`.

**Trigger form (params):**
- `customer_id`, `zuora_id`: the workflow, as synced (see `zuora.workflow_version_changes`)
- `version` (e.g. `0.0.2`) **or** `as_of` (the newest version created by then)
- `to_customer`: promote into this customer's tenant (empty: restore in place)
- `as_new_workflow`: import as a new workflow; `activate`: make the import active
- `apply`: off = a **dry run** (the task log shows what would change, task by task); on =
  import, only after a dry run of the same restore whose target has not changed since
- `confirm_production`: required to import into a production tenant
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, task


@dag(
    dag_id="zuora_workflow_restore",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["zuora", "restore"],
    doc_md=__doc__,
    params={
        "customer_id": Param(
            "", type="string", minLength=1, description="Customer the version was synced from."
        ),
        "zuora_id": Param(
            0, type="integer", minimum=1, description="The workflow's Zuora id in that customer."
        ),
        "version": Param(None, type=["string", "null"], description="Version number, e.g. 0.0.2."),
        "as_of": Param(
            None,
            type=["string", "null"],
            format="date-time",
            description="Or: the newest version created by then.",
        ),
        "to_customer": Param(
            None,
            type=["string", "null"],
            description="Promote into this customer's tenant; empty: restore in place.",
        ),
        "as_new_workflow": Param(False, type="boolean", description="Import as a new workflow."),
        "activate": Param(False, type="boolean", description="Make the imported version active."),
        "apply": Param(False, type="boolean", description="Import it; off: a dry run."),
        "confirm_production": Param(
            False, type="boolean", description="Required to import into a production tenant."
        ),
    },
    default_args={"retries": 0},  # a refused or failed restore is for its requester to read
)
def zuora_workflow_restore():
    @task
    def restore(params=None, dag_run=None):
        from zuora import restore

        return restore.run_from_params(params, requested_by=dag_run.triggering_user_name or "airflow")

    restore()


zuora_workflow_restore()
