"""
### Zuora workflow restore

Puts a stored version of a workflow back into Zuora (as a new version of that workflow), or
promotes it into the other environment of the same company (its tenant group), e.g. sandbox
to production. The same as `python -m zuora.cli restore`; every attempt is audited in
`zuora.restores`. One run at a time; a failed or refused restore is alerted.

An import is sent once. If its answer is lost (Zuora may have imported it), the task fails
with the outcome `unknown`: trigger the same **dry run** again (`apply` off); it reads Zuora,
records whether the import is there, and says so in its log before the new plan.

**Trigger form (params):**
- `customer_id`, `zuora_id`: the workflow, as synced (see `zuora.workflow_version_changes`)
- `version` (e.g. `0.0.2`) **or** `as_of` (the newest version created by then)
- `to_customer`: promote into this customer's tenant (empty: restore in place)
- `into_another_company`: allow a `to_customer` outside the source's tenant group (a copy)
- `as_new_workflow`: import as a new workflow; `activate`: make the import active
- `apply`: off = a **dry run** (the task log shows what would change, task by task); on =
  import, only after an unused dry run of the same restore (at most 24 hours old) whose
  target and source have not changed since: one dry run, one apply
- `confirm_production`: required to import into a production tenant
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, task

from zuora.notifications.alerts import ZuoraAlertNotifier


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
            description="Promote into this customer's tenant (the same tenant group); empty: restore in place.",
        ),
        "into_another_company": Param(
            False,
            type="boolean",
            description="Allow to_customer outside the source's tenant group: a copy into another "
            "company's tenant (e.g. a template workflow), named so in the dry run and the audit.",
        ),
        "as_new_workflow": Param(False, type="boolean", description="Import as a new workflow."),
        "activate": Param(False, type="boolean", description="Make the imported version active."),
        "apply": Param(False, type="boolean", description="Import it; off: a dry run."),
        "confirm_production": Param(
            False, type="boolean", description="Required to import into a production tenant."
        ),
    },
    max_active_runs=1,  # one restore at a time: each apply sees what the previous one imported
    # a refused or failed restore is for its requester to read, and alerted
    default_args={"retries": 0, "on_failure_callback": ZuoraAlertNotifier()},
)
def zuora_workflow_restore():
    @task
    def restore(params=None, dag_run=None):
        from zuora import restore

        return restore.run_from_params(params, requested_by=dag_run.triggering_user_name or "airflow")

    restore()


zuora_workflow_restore()
