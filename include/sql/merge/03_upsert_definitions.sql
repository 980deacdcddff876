-- The latest export of each workflow exported this run (stale records excluded). A changed
-- original replaces the row; an identical re-export only records when it was confirmed,
-- keeping the stored (TOASTed) values as they are.
INSERT INTO zuora.workflow_definitions AS d (
       customer_id, zuora_id, version, definition, definition_hash, task_count, linkage_count,
       size_bytes, exported_at, run_id, original_hash, original_encrypted, fingerprint,
       settings_hash, task_hashes)
SELECT DISTINCT ON (e.zuora_id)
       e.customer_id, e.zuora_id, e.version, e.definition, e.definition_hash, e.task_count,
       e.linkage_count, e.size_bytes, e.exported_at, e.run_id, e.original_hash, e.original_encrypted,
       e.fingerprint, e.settings_hash, e.task_hashes
  FROM zuora.staging_exports e
  JOIN merge_plan p ON p.zuora_id = e.zuora_id AND p.kind <> 'stale'
 WHERE e.run_id = %(run_id)s AND e.customer_id = %(customer_id)s AND e.ok
 ORDER BY e.zuora_id, e.exported_at DESC
ON CONFLICT (customer_id, zuora_id) DO UPDATE
   SET version = excluded.version,
       definition = CASE WHEN d.original_hash = excluded.original_hash THEN d.definition
                         ELSE excluded.definition END,
       definition_hash = excluded.definition_hash,
       task_count = excluded.task_count, linkage_count = excluded.linkage_count,
       size_bytes = excluded.size_bytes, exported_at = excluded.exported_at,
       run_id = excluded.run_id, original_hash = excluded.original_hash,
       fingerprint = excluded.fingerprint, settings_hash = excluded.settings_hash,
       task_hashes = excluded.task_hashes,
       original_encrypted = CASE
             WHEN d.original_hash = excluded.original_hash AND d.original_encrypted IS NOT NULL
             THEN d.original_encrypted ELSE excluded.original_encrypted END
 WHERE d.exported_at <= excluded.exported_at           -- an older export never replaces a newer one
   AND (d.original_hash IS DISTINCT FROM excluded.original_hash
        OR d.exported_at < excluded.exported_at
        OR (d.original_encrypted IS NULL AND excluded.original_encrypted IS NOT NULL)
        OR d.fingerprint IS NULL);
