-- Alerts on task usage and on workflows switched off in Zuora (issue 31, phase 2), and what the
-- sync page reads of usage and events.
--
-- An alert about one customer names it in its details (details ->> 'customer_id'); the
-- monitor raises an allowance alert once per customer and month (details ->> 'month') and a
-- deactivation alert once per event (details ->> 'event_id'), looking up the alerts raised
-- before by kind and customer.
CREATE INDEX alerts_kind_customer_idx ON zuora.alerts (kind, (details ->> 'customer_id'));

-- The sync page's top consumers: this month's days of every customer, read from the index.
CREATE INDEX task_usage_day_idx ON zuora.task_usage (day) INCLUDE (customer_id, task_count);

-- The sync page's recent switch-offs across the fleet, newest first.
CREATE INDEX workflow_events_kind_seen_idx ON zuora.workflow_events (kind, seen_at);

COMMENT ON COLUMN zuora.workflow_events.alerted_at IS 'when the monitor''s workflow_deactivated alert about this event went out (NULL: none; only deactivations made_by zuora, recorded_from sync and seen within a day of a monitor run are alerted)';
