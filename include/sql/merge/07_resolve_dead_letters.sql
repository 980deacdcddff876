-- Open dead letters of the customer that this run fixed (it did not fail them again).
UPDATE zuora.dead_letters dl
   SET resolved_at = now(), resolved_run_id = %(run_id)s
 WHERE dl.customer_id = %(customer_id)s AND dl.resolved_at IS NULL AND dl.run_id <> %(run_id)s
   AND (   dl.item_key = ''                           -- a whole stage failed; this run got through
        OR (dl.zuora_id IS NULL AND %(complete)s)     -- an id-less list item not listed again
        OR (dl.stage = 'export' AND EXISTS (
                SELECT 1 FROM zuora.staging_exports e
                 WHERE e.run_id = %(run_id)s AND e.customer_id = %(customer_id)s
                   AND e.zuora_id = dl.zuora_id AND e.ok))
        OR (dl.zuora_id IS NOT NULL AND dl.stage IN ('validate', 'upsert')
            AND EXISTS (SELECT 1 FROM merge_plan p WHERE p.zuora_id = dl.zuora_id))
        OR (dl.zuora_id IS NOT NULL AND %(complete)s AND NOT EXISTS (
                SELECT 1 FROM zuora.staging_list_items i
                 WHERE i.run_id = %(run_id)s AND i.customer_id = %(customer_id)s
                   AND i.zuora_id = dl.zuora_id)));
