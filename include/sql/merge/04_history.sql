-- One history row per workflow inserted, updated (its row or its definition) or restored,
-- with the fields that changed and a snapshot of the row and its redacted definition.
INSERT INTO zuora.workflow_history (customer_id, zuora_id, run_id, change_kind, zuora_updated_at,
                                    old_hash, new_hash, changed_fields, snapshot)
SELECT p.customer_id, p.zuora_id, %(run_id)s,
       CASE p.kind WHEN 'unchanged' THEN 'update' ELSE p.kind END,
       w.zuora_updated_at, p.old_hash, w.content_hash,
       ARRAY(SELECT key
               FROM jsonb_each(to_jsonb(w) - %(bookkeeping)s::text[]) n
               FULL JOIN jsonb_each(coalesce(p.old_row, '{}'::jsonb) - %(bookkeeping)s::text[]) o USING (key)
              WHERE n.value IS DISTINCT FROM o.value
              ORDER BY key)
         || CASE WHEN p.has_export AND p.new_definition_hash IS DISTINCT FROM p.old_definition_hash
                 THEN ARRAY['definition'] ELSE ARRAY[]::text[] END,
       (to_jsonb(w) - %(bookkeeping)s::text[])
         || jsonb_build_object('definition', d.definition, 'definition_hash', d.definition_hash,
                               'definition_version', d.version)
  FROM merge_plan p
  JOIN zuora.workflows w ON w.customer_id = p.customer_id AND w.zuora_id = p.zuora_id
  LEFT JOIN zuora.workflow_definitions d ON d.customer_id = p.customer_id AND d.zuora_id = p.zuora_id
 WHERE p.kind IN ('insert', 'update', 'restore')
    OR (p.kind = 'unchanged' AND p.has_export
        AND p.new_definition_hash IS DISTINCT FROM p.old_definition_hash);
