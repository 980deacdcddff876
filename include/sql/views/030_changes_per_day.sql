-- How many workflows were inserted, updated, deleted or restored per customer per day (UTC).
CREATE OR REPLACE VIEW zuora.changes_per_day AS
SELECT customer_id,
       (changed_at AT TIME ZONE 'UTC')::date             AS day,
       count(*) FILTER (WHERE change_kind = 'insert')   AS inserted,
       count(*) FILTER (WHERE change_kind = 'update')   AS updated,
       count(*) FILTER (WHERE change_kind = 'delete')   AS deleted,
       count(*) FILTER (WHERE change_kind = 'restore')  AS restored,
       count(*)                                         AS changes
  FROM zuora.workflow_history
 GROUP BY customer_id, (changed_at AT TIME ZONE 'UTC')::date;
