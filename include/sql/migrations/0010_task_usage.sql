-- Beyond definitions (issue 31): each tenant's Workflow task usage per day against an optional
-- monthly allowance, and the status transitions of each workflow (the ones Zuora switched off).

-- The optional monthly task allowance of a customer (Zuora's API does not expose the
-- edition's limit): set with `zuora.cli add-customer --task-allowance N` or `set-allowance`.
ALTER TABLE zuora.customers ADD COLUMN task_allowance bigint CHECK (task_allowance > 0);
COMMENT ON COLUMN zuora.customers.task_allowance IS 'Workflow tasks a month the customer may run (its edition''s allowance, as the operator knows it); NULL: none set';

-- Tasks per day of the whole tenant, as GET /workflows/metrics.json answered them (zuora.usage).
CREATE TABLE zuora.task_usage (
    customer_id  text NOT NULL REFERENCES zuora.customers,
    day          date NOT NULL,
    task_count   bigint NOT NULL CHECK (task_count >= 0),
    read_at      timestamptz NOT NULL,
    run_id       text NOT NULL,
    PRIMARY KEY (customer_id, day)
);
COMMENT ON TABLE zuora.task_usage IS 'Workflow tasks the customer''s whole tenant ran per day (Zuora''s date), from GET /workflows/metrics.json; a day read again (today, yesterday, the day before until read after it ended everywhere) holds Zuora''s latest count';
COMMENT ON COLUMN zuora.task_usage.read_at IS 'when Zuora last answered this day''s count: a day read before read_at >= day + 2 days (UTC) may still change';

-- The last answered usage call of each customer: the once-a-day rule and "usage not available".
CREATE TABLE zuora.task_usage_reads (
    customer_id  text PRIMARY KEY REFERENCES zuora.customers,
    checked_at   timestamptz NOT NULL,
    available    boolean NOT NULL,
    first_day    date NOT NULL,
    last_day     date NOT NULL,
    days         integer NOT NULL,
    http_status  integer,
    message      text,
    run_id       text NOT NULL
);
COMMENT ON TABLE zuora.task_usage_reads IS 'per customer, the last usage call Zuora answered (counts, or 403/404 = usage not available); the next call is made on a later UTC day';
COMMENT ON COLUMN zuora.task_usage_reads.available IS 'false: Zuora answered 403 (no access) or 404 (an older tenant) and the customer is not asked again before the next UTC day';
COMMENT ON COLUMN zuora.task_usage_reads.days IS 'days stored from that answer (0 when not available)';

-- What the customer's run did about usage: read (days stored), not_needed (read already that
-- UTC day: no call), not_available (403/404 this run), failed (a dead letter says why).
ALTER TABLE zuora.sync_runs ADD COLUMN task_usage text
        CHECK (task_usage IN ('read', 'not_needed', 'not_available', 'failed')),
    ADD COLUMN task_usage_days integer;
COMMENT ON COLUMN zuora.sync_runs.task_usage IS 'the run''s task usage read: read, not_needed (already read that UTC day, no call), not_available (Zuora answered 403/404), failed (see the customer''s dead letter ''task_usage''); NULL: not read (runs before issue 31, or no list stage)';
COMMENT ON COLUMN zuora.sync_runs.task_usage_days IS 'days of task usage stored by this run';

-- Status transitions of workflows as the sync saw them (merge step 09_events): activated
-- (Inactive -> Active), deactivated (Active -> Inactive), version_changed (another active
-- version). One row per transition kind a merge saw; a change undone between two syncs is not
-- seen. made_by: 'restore' when this product's restore imported and activated that version,
-- else 'zuora' (in Zuora: by Zuora itself, or by a person in Zuora's UI or API). The product
-- never deactivates a workflow, so every deactivation is 'zuora'.
CREATE TABLE zuora.workflow_events (
    event_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id       text NOT NULL,
    zuora_id          bigint NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('activated', 'deactivated', 'version_changed')),
    workflow_name     text,
    seen_at           timestamptz NOT NULL,
    previous_seen_at  timestamptz,
    zuora_updated_at  timestamptz,
    old_status        text,
    new_status        text,
    old_version       text,
    new_version       text,
    old_version_id    bigint,
    new_version_id    bigint,
    made_by           text NOT NULL CHECK (made_by IN ('restore', 'zuora')),
    restore_id        bigint,
    run_id            text NOT NULL,
    recorded_from     text NOT NULL DEFAULT 'sync' CHECK (recorded_from IN ('sync', 'history')),
    alerted_at        timestamptz,
    UNIQUE (customer_id, zuora_id, run_id, kind)
);
COMMENT ON TABLE zuora.workflow_events IS 'status transitions of workflows (activated, deactivated, version_changed) with when the sync saw them; made_by zuora = not through this product (Zuora itself, or a person in Zuora)';
COMMENT ON COLUMN zuora.workflow_events.seen_at IS 'when the listing that showed the change was taken';
COMMENT ON COLUMN zuora.workflow_events.previous_seen_at IS 'when the customer''s previous successful sync started (NULL: no such run kept): the change happened between it and seen_at';
COMMENT ON COLUMN zuora.workflow_events.zuora_updated_at IS 'the workflow''s updatedAt in Zuora after the change (when Zuora moved it with the change, its time)';
COMMENT ON COLUMN zuora.workflow_events.made_by IS 'restore: this product''s restore imported and activated the new active version (restore_id); zuora: anything else, by Zuora itself or a person in Zuora (UI or API)';
COMMENT ON COLUMN zuora.workflow_events.recorded_from IS 'sync: seen by a merge; history: derived once from zuora.workflow_history when this table was created';
COMMENT ON COLUMN zuora.workflow_events.alerted_at IS 'when an alert about this event was sent (NULL: none yet)';
CREATE INDEX workflow_events_seen_idx ON zuora.workflow_events (customer_id, seen_at);
CREATE INDEX workflow_events_not_alerted_idx ON zuora.workflow_events (seen_at)
    WHERE alerted_at IS NULL AND recorded_from = 'sync';

-- The transitions the history kept so far (each history row against the one before it).
INSERT INTO zuora.workflow_events (customer_id, zuora_id, kind, workflow_name, seen_at,
                                   previous_seen_at, zuora_updated_at, old_status, new_status,
                                   old_version, new_version, old_version_id, new_version_id,
                                   made_by, restore_id, run_id, recorded_from)
SELECT h.customer_id, h.zuora_id, k.kind, h.snapshot ->> 'name', h.changed_at,
       (SELECT max(s.started_at) FROM zuora.sync_runs s
         WHERE s.customer_id = h.customer_id AND s.status = 'success'
           AND s.run_id <> h.run_id AND s.started_at < h.changed_at),
       h.zuora_updated_at, h.old_status, h.new_status, h.old_version, h.new_version,
       h.old_version_id, h.new_version_id,
       CASE WHEN r.restore_id IS NULL THEN 'zuora' ELSE 'restore' END, r.restore_id, h.run_id, 'history'
  FROM (SELECT hh.*,
               lag(hh.snapshot ->> 'status') OVER w                        AS old_status,
               hh.snapshot ->> 'status'                                    AS new_status,
               lag(hh.snapshot ->> 'active_version') OVER w                AS old_version,
               hh.snapshot ->> 'active_version'                            AS new_version,
               lag((hh.snapshot ->> 'active_version_id')::bigint) OVER w   AS old_version_id,
               (hh.snapshot ->> 'active_version_id')::bigint               AS new_version_id,
               lag(hh.history_id) OVER w                                   AS previous_history_id
          FROM zuora.workflow_history hh
        WINDOW w AS (PARTITION BY hh.customer_id, hh.zuora_id ORDER BY hh.changed_at, hh.history_id)) h
 CROSS JOIN LATERAL (VALUES ('activated'), ('deactivated'), ('version_changed')) k(kind)
  LEFT JOIN LATERAL (
        SELECT rr.restore_id FROM zuora.restores rr
         WHERE k.kind IN ('activated', 'version_changed')
           AND rr.target_customer_id = h.customer_id AND rr.target_zuora_id = h.zuora_id
           AND rr.applied AND rr.activate AND rr.mode = 'new_version'
           AND rr.status IN ('imported', 'unknown') AND rr.new_version = h.new_version
           AND rr.requested_at <= h.changed_at
         ORDER BY rr.requested_at DESC LIMIT 1) r ON true
 WHERE h.previous_history_id IS NOT NULL AND h.change_kind IN ('update', 'restore')
   AND CASE k.kind
         WHEN 'activated' THEN h.old_status = 'Inactive' AND h.new_status = 'Active'
         WHEN 'deactivated' THEN h.old_status = 'Active' AND h.new_status = 'Inactive'
         ELSE h.old_version_id <> h.new_version_id
       END
 ORDER BY h.changed_at, h.history_id, k.kind
    ON CONFLICT DO NOTHING;
