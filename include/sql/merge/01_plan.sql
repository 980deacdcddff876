-- What the merge will do with each stored list item of (run_id, customer_id):
-- insert, update, restore, unchanged or stale (older than what is stored, or than its deletion).
CREATE TEMP TABLE merge_plan ON COMMIT DROP AS
WITH staged AS (
    SELECT s.*, i.item AS list_item, i.item_hash
      FROM zuora.staging_workflows s
      JOIN zuora.staging_list_items i USING (run_id, customer_id, position)
     WHERE s.run_id = %(run_id)s AND s.customer_id = %(customer_id)s AND s.disposition = 'store'
), exported AS (
    SELECT DISTINCT ON (zuora_id) zuora_id, priority, definition_hash, exported_at
      FROM zuora.staging_exports
     WHERE run_id = %(run_id)s AND customer_id = %(customer_id)s AND ok
     ORDER BY zuora_id, exported_at DESC
)
SELECT st.*,
       coalesce(e.priority, w.priority)            AS priority,
       -- an export older than the stored definition (a replayed run's) is not applied
       e.zuora_id IS NOT NULL AND (d.exported_at IS NULL OR e.exported_at >= d.exported_at)
                                                    AS has_export,
       e.definition_hash                            AS new_definition_hash,
       d.definition_hash                            AS old_definition_hash,
       w.content_hash                               AS old_hash,
       to_jsonb(w)                                  AS old_row,
       CASE
         WHEN w.zuora_id IS NULL THEN 'insert'
         -- deleted by a run that merged after this listing was taken: this listing is older
         WHEN w.deleted_at IS NOT NULL AND w.deleted_at >= %(listed_at)s THEN 'stale'
         WHEN w.deleted_at IS NOT NULL THEN 'restore'
         WHEN w.content_hash = st.item_hash
              AND w.priority IS NOT DISTINCT FROM coalesce(e.priority, w.priority)
              AND w.validation_status = st.validation_status THEN 'unchanged'
         WHEN w.zuora_updated_at > st.zuora_updated_at
              OR (st.zuora_updated_at IS NULL AND w.zuora_updated_at IS NOT NULL)
              -- same updatedAt, other content: the newer listing wins; the stored row's run
              -- started listing after this listing was taken
              OR (w.zuora_updated_at IS NOT DISTINCT FROM st.zuora_updated_at
                  AND (SELECT r.started_at FROM zuora.sync_runs r WHERE r.run_id = w.last_run_id
                          AND r.customer_id = w.customer_id) > %(listed_at)s) THEN 'stale'
         ELSE 'update'
       END                                          AS kind,
       (w.zuora_updated_at = st.zuora_updated_at AND w.content_hash <> st.item_hash) AS same_time_conflict
  FROM staged st
  LEFT JOIN zuora.workflows w
         ON w.customer_id = st.customer_id AND w.zuora_id = st.zuora_id
  LEFT JOIN zuora.workflow_definitions d
         ON d.customer_id = st.customer_id AND d.zuora_id = st.zuora_id
  LEFT JOIN exported e ON e.zuora_id = st.zuora_id;
