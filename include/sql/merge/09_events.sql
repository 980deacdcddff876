-- Status transitions this merge applied (zuora.workflow_events): activated (Inactive -> Active),
-- deactivated (Active -> Inactive), version_changed (another active version id), each compared
-- with the row as it was stored before this run. made_by 'restore' when this product's restore
-- imported and activated the new active version into this workflow; anything else is 'zuora'
-- (Zuora itself, or a person in Zuora's UI or API: the product never deactivates a workflow).
INSERT INTO zuora.workflow_events AS e (customer_id, zuora_id, kind, workflow_name, seen_at,
                                        previous_seen_at, zuora_updated_at, old_status, new_status,
                                        old_version, new_version, old_version_id, new_version_id,
                                        made_by, restore_id, run_id)
SELECT p.customer_id, p.zuora_id, k.kind, w.name, %(listed_at)s,
       (SELECT max(s.started_at) FROM zuora.sync_runs s      -- the customer's previous sync
         WHERE s.customer_id = p.customer_id AND s.status = 'success'
           AND s.run_id <> %(run_id)s AND s.started_at < %(listed_at)s),
       w.zuora_updated_at, p.old_row ->> 'status', w.status,
       p.old_row ->> 'active_version', w.active_version,
       (p.old_row ->> 'active_version_id')::bigint, w.active_version_id,
       CASE WHEN r.restore_id IS NULL THEN 'zuora' ELSE 'restore' END, r.restore_id, %(run_id)s
  FROM merge_plan p
  JOIN zuora.workflows w ON w.customer_id = p.customer_id AND w.zuora_id = p.zuora_id
 CROSS JOIN LATERAL (VALUES ('activated'), ('deactivated'), ('version_changed')) k(kind)
  LEFT JOIN LATERAL (
        SELECT rr.restore_id FROM zuora.restores rr
         WHERE k.kind IN ('activated', 'version_changed')
           AND rr.target_customer_id = p.customer_id AND rr.target_zuora_id = p.zuora_id
           AND rr.applied AND rr.activate AND rr.mode = 'new_version'
           AND rr.status IN ('imported', 'unknown') AND rr.new_version = w.active_version
           AND rr.requested_at <= %(listed_at)s
         ORDER BY rr.requested_at DESC LIMIT 1) r ON true
 WHERE p.kind IN ('update', 'restore')
   AND CASE k.kind
         WHEN 'activated' THEN p.old_row ->> 'status' = 'Inactive' AND w.status = 'Active'
         WHEN 'deactivated' THEN p.old_row ->> 'status' = 'Active' AND w.status = 'Inactive'
         ELSE (p.old_row ->> 'active_version_id')::bigint <> w.active_version_id
       END
ON CONFLICT (customer_id, zuora_id, run_id, kind) DO NOTHING;
