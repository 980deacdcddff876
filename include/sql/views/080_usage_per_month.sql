-- Workflow task usage per customer and month (zuora.task_usage, days as Zuora dates them),
-- against the customer's monthly allowance (zuora.customers.task_allowance, NULL: none):
--   tasks            the month's tasks so far (today's count as last read)
--   elapsed_days     days of the month gone at the month's last read (fractional; the days in
--                    the month once a read came after the month's end)
--   projected_tasks  tasks / elapsed_days x days_in_month: the month's projection; the month's
--                    tasks once it is over; NULL before a whole day of it has gone
--   used_share / projected_share   tasks / allowance, projected_tasks / allowance
-- For this month per customer (month-to-date, allowance, projection):
--   SELECT * FROM zuora.usage_per_month WHERE current_month
CREATE OR REPLACE VIEW zuora.usage_per_month AS
WITH months AS (
    SELECT u.customer_id,
           date_trunc('month', u.day)::date                                      AS month,
           sum(u.task_count)                                                     AS tasks,
           count(*)                                                              AS days_read,
           max(u.day)                                                            AS last_day,
           max(u.read_at)                                                        AS last_read_at
      FROM zuora.task_usage u
     GROUP BY u.customer_id, date_trunc('month', u.day)
), measured AS (
    SELECT m.*,
           extract(day FROM (m.month + interval '1 month' - interval '1 day'))::integer AS days_in_month,
           extract(epoch FROM m.last_read_at - (m.month::timestamp AT TIME ZONE 'UTC')) / 86400 AS read_days
      FROM months m
)
SELECT m.customer_id,
       c.name                                                                    AS customer_name,
       m.month,
       m.days_in_month,
       m.tasks,
       m.days_read,
       m.last_day,
       m.last_read_at,
       round(least(m.read_days, m.days_in_month)::numeric, 3)                   AS elapsed_days,
       CASE WHEN m.read_days >= m.days_in_month THEN m.tasks
            WHEN m.read_days >= 1 THEN round(m.tasks / m.read_days::numeric * m.days_in_month)
       END                                                                       AS projected_tasks,
       c.task_allowance,
       round(m.tasks / c.task_allowance::numeric, 4)                             AS used_share,
       round(CASE WHEN m.read_days >= m.days_in_month THEN m.tasks
                  WHEN m.read_days >= 1 THEN m.tasks / m.read_days::numeric * m.days_in_month
             END / c.task_allowance::numeric, 4)                                AS projected_share,
       m.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date            AS current_month,
       r.available                                                               AS usage_available,
       r.checked_at                                                              AS usage_checked_at
  FROM measured m
  JOIN zuora.customers c USING (customer_id)
  LEFT JOIN zuora.task_usage_reads r USING (customer_id);
