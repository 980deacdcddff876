-- The task that synced the customer in its run of zuora_workflow_sync, with map_index: NULL for
-- the customer_sync group (one mapped group per customer, the default), 'sync_customers' when
-- customers are synced in batches ($ZUORA_SYNC_CUSTOMERS_PER_TASK > 1; map_index is then the
-- batch's). The Zuora sync page links a customer's sync to its task in the grid from here.
ALTER TABLE zuora.sync_runs ADD COLUMN task_id text;
COMMENT ON COLUMN zuora.sync_runs.task_id IS 'the mapped task that synced the customer, at map_index (NULL: the customer_sync group''s tasks)';
COMMENT ON COLUMN zuora.sync_runs.map_index IS 'the map index of the customer''s task in the run: its customer_sync group, or its batch of task_id (NULL: not synced by the DAG)';
