-- Review flags found while merging: same Zuora updated_at but different content (kept),
-- and records older than what is stored (ignored).
INSERT INTO zuora.validation_issues (customer_id, zuora_id, run_id, rule, severity, field, detail)
SELECT customer_id, zuora_id, %(run_id)s, 'same_updated_at_different_content', 'warning', 'updatedAt',
       'content changed but updatedAt did not (' || coalesce(zuora_updated_at::text, 'null')
       || '); the newer listing was kept'
  FROM merge_plan WHERE kind = 'update' AND same_time_conflict
UNION ALL
SELECT customer_id, zuora_id, %(run_id)s, 'stale_record', 'info', 'updatedAt',
       'listed updatedAt ' || coalesce(zuora_updated_at::text, 'null')
       || ' is older than the stored one; not applied'
  FROM merge_plan WHERE kind = 'stale';
