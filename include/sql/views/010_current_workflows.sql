-- Workflows that exist in Zuora now (not soft-deleted), with their definition's summary.
-- last_seen_at: rows are not rewritten when unchanged, so a workflow still present is also
-- "seen" by every later complete listing of its customer.
CREATE OR REPLACE VIEW zuora.current_workflows AS
SELECT w.customer_id,
       w.zuora_id,
       w.name,
       w.description,
       w.status,
       w.type,
       w.ondemand_trigger,
       w.callout_trigger,
       w.scheduled_trigger,
       w.interval,
       w.timezone,
       w.timezone_iana,
       w.priority,
       w.active_version_id,
       w.active_version,
       w.zuora_created_at,
       w.zuora_updated_at,
       w.validation_status,
       w.first_seen_at,
       greatest(w.last_seen_at, listing.last_complete_listing_at) AS last_seen_at,
       w.last_changed_at,
       d.version        AS definition_version,
       d.task_count,
       d.linkage_count,
       d.size_bytes     AS definition_size_bytes,
       d.exported_at    AS definition_exported_at
  FROM zuora.workflows w
  LEFT JOIN zuora.workflow_definitions d USING (customer_id, zuora_id)
  LEFT JOIN LATERAL (
        SELECT max(r.started_at) AS last_complete_listing_at
          FROM zuora.sync_runs r
         WHERE r.customer_id = w.customer_id AND r.status = 'success' AND r.listing_complete
       ) listing ON true
 WHERE w.deleted_at IS NULL;
