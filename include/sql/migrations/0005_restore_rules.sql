-- Restore and promotion rules the database holds (zuora.restore), and fingerprints of
-- workflows with duplicate task names computed again.
-- - scope: a restore into the same customer, a promotion within one tenant group, or a copy
--   into another company's tenant (only when asked for by name);
-- - an apply claims the dry run it used (dry_run_id) before it calls Zuora: one dry run, one apply;
-- - an apply's row is 'applying' until Zuora answered;
-- - at most one 'imported' row per Idempotency-Key (rows from before this migration are kept
--   as they were audited).
ALTER TABLE zuora.restores ADD COLUMN scope text NOT NULL DEFAULT 'restore'
    CHECK (scope IN ('restore', 'promotion', 'cross_company_copy'));
UPDATE zuora.restores r SET scope = CASE
        WHEN r.target_customer_id = r.source_customer_id THEN 'restore'
        WHEN (SELECT s.tenant_group FROM zuora.customers s WHERE s.customer_id = r.source_customer_id)
           = (SELECT t.tenant_group FROM zuora.customers t WHERE t.customer_id = r.target_customer_id)
        THEN 'promotion'
        ELSE 'cross_company_copy' END;
ALTER TABLE zuora.restores ALTER COLUMN scope DROP DEFAULT;

ALTER TABLE zuora.restores ADD COLUMN dry_run_id bigint REFERENCES zuora.restores (restore_id);
CREATE UNIQUE INDEX restores_one_apply_per_dry_run ON zuora.restores (dry_run_id)
    WHERE dry_run_id IS NOT NULL;

ALTER TABLE zuora.restores DROP CONSTRAINT restores_status_check;
ALTER TABLE zuora.restores ADD CONSTRAINT restores_status_check
    CHECK (status IN ('planned', 'refused', 'applying', 'imported', 'failed'));

DO $$
BEGIN
    EXECUTE format('CREATE UNIQUE INDEX restores_one_import_per_key ON zuora.restores (idempotency_key) '
                   'WHERE status = %L AND restore_id > %s', 'imported',
                   (SELECT coalesce(max(restore_id), 0) FROM zuora.restores));
END $$;

-- Tasks sharing a name are now keyed in the order of their content, not of their place in
-- the export (zuora.warehouse.fingerprint): such summaries are computed again on migrate().
UPDATE zuora.workflow_definitions SET fingerprint = NULL
 WHERE EXISTS (SELECT FROM jsonb_object_keys(task_hashes) k WHERE k ~ ' #[0-9]+$');
UPDATE zuora.workflow_versions SET fingerprint = NULL
 WHERE EXISTS (SELECT FROM jsonb_object_keys(task_hashes) k WHERE k ~ ' #[0-9]+$');
