-- The customer's map index in its run of zuora_workflow_sync (recorded by its list task): the
-- grid shows a customer as a map index, and the Zuora sync page links to it from here, without
-- reading Airflow's metadata database.
ALTER TABLE zuora.sync_runs ADD COLUMN map_index integer;
COMMENT ON COLUMN zuora.sync_runs.map_index IS 'the customer''s map index in the run''s customer_sync group (NULL: not synced by the DAG)';
