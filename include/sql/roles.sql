-- The analysts' read-only role, applied after every migration run (idempotent).
-- Created only when the connecting user may create roles; several databases on one server
-- may run this at once, so "already exists" is not an error.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'zuora_reader')
       AND EXISTS (SELECT FROM pg_roles WHERE rolname = current_user AND (rolcreaterole OR rolsuper)) THEN
        BEGIN
            CREATE ROLE zuora_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database's migration created it meanwhile
        END;
    END IF;

    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'zuora_reader') THEN
        GRANT USAGE ON SCHEMA zuora TO zuora_reader;
        GRANT SELECT ON zuora.customers, zuora.workflows, zuora.workflow_history, zuora.sync_runs,
                        zuora.dead_letters, zuora.validation_issues, zuora.schema_migrations,
                        zuora.alerts
              TO zuora_reader;
        -- Column list: everything except the encrypted original and its hash.
        REVOKE SELECT ON zuora.workflow_definitions FROM zuora_reader;
        GRANT SELECT (customer_id, zuora_id, version, definition, definition_hash, task_count,
                      linkage_count, size_bytes, exported_at, run_id, fingerprint, settings_hash,
                      task_hashes)
              ON zuora.workflow_definitions TO zuora_reader;
        REVOKE SELECT ON zuora.workflow_versions FROM zuora_reader;
        GRANT SELECT (customer_id, zuora_id, version_id, version, version_order, name, status,
                      zuora_created_at, zuora_updated_at, listed_at, run_id, definition,
                      definition_hash, fingerprint, settings_hash, task_hashes, task_count,
                      size_bytes, exported_at, export_error)
              ON zuora.workflow_versions TO zuora_reader;
        GRANT SELECT ON zuora.workflow_version_listings, zuora.restores TO zuora_reader;
        GRANT SELECT ON zuora.task_usage, zuora.task_usage_reads, zuora.workflow_events,
                        zuora.usage_per_month, zuora.usage_per_day
              TO zuora_reader;
        GRANT SELECT ON zuora.current_workflows, zuora.workflow_tasks, zuora.changes_per_day,
                        zuora.sync_health, zuora.open_dead_letters, zuora.workflow_version_changes,
                        zuora.workflow_version_tasks, zuora.environment_drift
              TO zuora_reader;
    END IF;
END
$$;
