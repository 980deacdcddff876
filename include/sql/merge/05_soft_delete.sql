-- After a complete listing: workflows no longer listed are soft-deleted, with a history row.
-- A workflow written after this listing was taken (by a newer run) is left alone.
WITH gone AS (
    UPDATE zuora.workflows w
       SET deleted_at = now(), last_changed_at = now(), last_run_id = %(run_id)s
     WHERE w.customer_id = %(customer_id)s AND w.deleted_at IS NULL
       AND w.last_seen_at < %(listed_at)s
       AND NOT EXISTS (SELECT 1 FROM zuora.staging_list_items i
                        WHERE i.run_id = %(run_id)s AND i.customer_id = %(customer_id)s
                          AND i.zuora_id = w.zuora_id)
    RETURNING w.*
)
INSERT INTO zuora.workflow_history (customer_id, zuora_id, run_id, change_kind, zuora_updated_at,
                                    old_hash, new_hash, changed_fields, snapshot)
SELECT g.customer_id, g.zuora_id, %(run_id)s, 'delete', g.zuora_updated_at, g.content_hash, NULL,
       ARRAY['deleted_at'],
       (to_jsonb(g) - %(bookkeeping)s::text[])
         || jsonb_build_object('definition', d.definition, 'definition_hash', d.definition_hash,
                               'definition_version', d.version)
  FROM gone g
  LEFT JOIN zuora.workflow_definitions d ON d.customer_id = g.customer_id AND d.zuora_id = g.zuora_id;
