-- What could not be synced and is still waiting for a successful run.
CREATE OR REPLACE VIEW zuora.open_dead_letters AS
SELECT dl.dead_letter_id,
       dl.customer_id,
       dl.stage,
       dl.zuora_id,
       w.name          AS workflow_name,
       dl.error_type,
       dl.message,
       dl.attempts,
       dl.first_failed_at,
       dl.last_failed_at,
       now() - dl.first_failed_at AS open_for,
       dl.run_id       AS last_run_id
  FROM zuora.dead_letters dl
  LEFT JOIN zuora.workflows w
         ON w.customer_id = dl.customer_id AND w.zuora_id = dl.zuora_id
 WHERE dl.resolved_at IS NULL;
