-- Workflow task usage per customer and day, next to the day before and the workflows' status
-- transitions (zuora.workflow_events) of that day:
--   previous_task_count  the day before's count (NULL when that day is not stored)
--   complete             read at or after the end of the day after it (UTC): final
--   events               the day's transitions, e.g. "'Late fees' 0.0.7 version_changed", in
--                        the order seen; an event's day is its Zuora updatedAt's when that lies
--                        between the two syncs around the change, else the day the sync saw it
CREATE OR REPLACE VIEW zuora.usage_per_day AS
SELECT u.customer_id,
       u.day,
       u.task_count,
       p.task_count                                                   AS previous_task_count,
       u.task_count - p.task_count                                    AS change,
       round(u.task_count / nullif(p.task_count, 0)::numeric, 3)      AS ratio,
       u.read_at >= ((u.day + 2)::timestamp AT TIME ZONE 'UTC')       AS complete,
       u.read_at,
       coalesce(ev.events, '{}')                                      AS events
  FROM zuora.task_usage u
  LEFT JOIN zuora.task_usage p ON p.customer_id = u.customer_id AND p.day = u.day - 1
  LEFT JOIN LATERAL (
        SELECT array_agg(concat_ws(' ', quote_literal(e.workflow_name), e.new_version, e.kind)
                         ORDER BY e.seen_at, e.event_id) AS events
          FROM zuora.workflow_events e
         WHERE e.customer_id = u.customer_id
           AND ((CASE WHEN e.zuora_updated_at <= e.seen_at
                       AND e.zuora_updated_at > coalesce(e.previous_seen_at, '-infinity')
                      THEN e.zuora_updated_at ELSE e.seen_at END) AT TIME ZONE 'UTC')::date = u.day
       ) ev ON true;
