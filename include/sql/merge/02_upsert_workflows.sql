-- Write new, changed and returning workflows; unchanged ones are not touched (the WHERE on
-- DO UPDATE), and an older record never overwrites a newer one.
INSERT INTO zuora.workflows AS w (
       customer_id, zuora_id, name, description, status, type, ondemand_trigger, callout_trigger,
       scheduled_trigger, interval, timezone, timezone_iana, priority, active_version_id,
       active_version, zuora_created_at, zuora_updated_at, content_hash, first_seen_at,
       last_seen_at, last_changed_at, deleted_at, validation_status, list_item, last_run_id)
SELECT customer_id, zuora_id, name, description, status, type, ondemand_trigger, callout_trigger,
       scheduled_trigger, interval, timezone, timezone_iana, priority, active_version_id,
       active_version, zuora_created_at, zuora_updated_at, item_hash, now(),
       now(), now(), NULL, validation_status, list_item, %(run_id)s
  FROM merge_plan
 WHERE kind IN ('insert', 'update', 'restore')
ON CONFLICT (customer_id, zuora_id) DO UPDATE
   SET name = excluded.name, description = excluded.description, status = excluded.status,
       type = excluded.type, ondemand_trigger = excluded.ondemand_trigger,
       callout_trigger = excluded.callout_trigger, scheduled_trigger = excluded.scheduled_trigger,
       interval = excluded.interval, timezone = excluded.timezone,
       timezone_iana = excluded.timezone_iana, priority = excluded.priority,
       active_version_id = excluded.active_version_id, active_version = excluded.active_version,
       zuora_created_at = excluded.zuora_created_at, zuora_updated_at = excluded.zuora_updated_at,
       content_hash = excluded.content_hash, last_seen_at = excluded.last_seen_at,
       last_changed_at = excluded.last_changed_at, deleted_at = NULL,
       validation_status = excluded.validation_status, list_item = excluded.list_item,
       last_run_id = excluded.last_run_id
 WHERE (w.content_hash IS DISTINCT FROM excluded.content_hash
        OR w.priority IS DISTINCT FROM excluded.priority
        OR w.validation_status IS DISTINCT FROM excluded.validation_status
        OR w.deleted_at IS NOT NULL)
   AND (w.deleted_at IS NOT NULL OR w.zuora_updated_at IS NULL
        OR excluded.zuora_updated_at >= w.zuora_updated_at);
