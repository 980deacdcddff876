-- Per customer: last success, success rate and figures over the last 30 days.
CREATE OR REPLACE VIEW zuora.sync_health AS
SELECT c.customer_id,
       c.name,
       c.enabled,
       c.environment,
       last_run.status                                         AS last_status,
       last_run.started_at                                     AS last_run_at,
       last_run.error                                          AS last_error,
       (SELECT max(r.finished_at) FROM zuora.sync_runs r
         WHERE r.customer_id = c.customer_id AND r.status = 'success') AS last_success_at,
       recent.runs                                             AS runs_30d,
       recent.successes                                        AS successes_30d,
       round(recent.successes::numeric / nullif(recent.finished, 0), 3) AS success_rate_30d,
       recent.avg_duration_seconds,
       recent.max_duration_seconds,
       recent.api_requests                                     AS api_requests_30d,
       recent.rate_limited                                     AS rate_limited_30d,
       recent.retries                                          AS retries_30d,
       (SELECT count(*) FROM zuora.dead_letters dl
         WHERE dl.customer_id = c.customer_id AND dl.resolved_at IS NULL) AS open_dead_letters
  FROM zuora.customers c
  LEFT JOIN LATERAL (
        SELECT r.status, r.started_at, r.error FROM zuora.sync_runs r
         WHERE r.customer_id = c.customer_id ORDER BY r.started_at DESC LIMIT 1) last_run ON true
  LEFT JOIN LATERAL (
        SELECT count(*)                                        AS runs,
               count(*) FILTER (WHERE r.status = 'success')    AS successes,
               count(*) FILTER (WHERE r.status <> 'running')   AS finished,
               round(avg(r.duration_seconds)::numeric, 1)      AS avg_duration_seconds,
               round(max(r.duration_seconds)::numeric, 1)      AS max_duration_seconds,
               coalesce(sum(r.api_requests), 0)                AS api_requests,
               coalesce(sum(r.rate_limited), 0)                AS rate_limited,
               coalesce(sum(r.retries), 0)                     AS retries
          FROM zuora.sync_runs r
         WHERE r.customer_id = c.customer_id AND r.started_at > now() - interval '30 days') recent ON true;
