-- List items that cannot be stored and exports that failed become (or repeat) dead letters.
INSERT INTO zuora.dead_letters AS dl (customer_id, run_id, stage, zuora_id, item_key, error_type,
                                      message, payload)
SELECT customer_id, run_id, 'validate', zuora_id,
       -- identical items listed more than once get one letter per copy (":2", ":3", ...)
       item_key || CASE WHEN copy > 1 THEN ':' || copy ELSE '' END, reason,
       'list item cannot be stored: ' || reason, item
  FROM (SELECT s.customer_id, s.run_id, s.zuora_id, s.reason, i.item, k.item_key,
               row_number() OVER (PARTITION BY k.item_key ORDER BY s.position) AS copy
          FROM zuora.staging_workflows s
          JOIN zuora.staging_list_items i USING (run_id, customer_id, position)
         CROSS JOIN LATERAL (SELECT CASE
                 WHEN s.reason = 'duplicate_id' THEN 'duplicate:' || s.zuora_id || ':' || i.item_hash
                 WHEN s.zuora_id IS NOT NULL THEN s.zuora_id::text
                 ELSE 'item:' || i.item_hash END AS item_key) k
         WHERE s.run_id = %(run_id)s AND s.customer_id = %(customer_id)s
           AND s.disposition = 'dead_letter') dead
UNION ALL
SELECT DISTINCT ON (e.zuora_id)
       e.customer_id, e.run_id, 'export', e.zuora_id, e.zuora_id::text,
       coalesce(e.error_type, 'ExportFailed'), coalesce(e.error_message, 'export failed'), e.payload
  FROM zuora.staging_exports e
 WHERE e.run_id = %(run_id)s AND e.customer_id = %(customer_id)s AND NOT e.ok
   AND NOT EXISTS (SELECT 1 FROM zuora.staging_exports ok
                    WHERE ok.run_id = e.run_id AND ok.customer_id = e.customer_id
                      AND ok.zuora_id = e.zuora_id AND ok.ok)
ON CONFLICT (customer_id, stage, item_key) WHERE resolved_at IS NULL DO UPDATE
   SET attempts = dl.attempts + 1, last_failed_at = now(), run_id = excluded.run_id,
       error_type = excluded.error_type, message = excluded.message, payload = excluded.payload;
