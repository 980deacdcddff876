-- Indexes for the Zuora sync page (zuora.ui): the fleet's last 30 days of runs read by time,
-- and each customer's last successful run found without reading its failures.
CREATE INDEX sync_runs_started_idx ON zuora.sync_runs (started_at);
CREATE INDEX sync_runs_success_idx ON zuora.sync_runs (customer_id, started_at) WHERE status = 'success';
