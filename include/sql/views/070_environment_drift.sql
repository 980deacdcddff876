-- Drift between a company's environments: for each tenant group with a sandbox and a
-- production customer, one row per workflow name found among either side's current (not
-- deleted) workflows. Workflows are matched by name (ids differ per tenant) and compared by
-- their id-free summaries (zuora.warehouse.fingerprint, stored by the sync):
--   same / different        one workflow of that name on each side, equal / unequal fingerprints
--   only_sandbox / only_production
--   unknown                 one on each side, but a side has no fingerprint yet (not
--                           exported yet, or stored before fingerprints were filled)
--   duplicate_name          more than one current workflow of that name in a tenant: which
--                           pairs with which is not guessed, nothing is compared; the ids of
--                           all of them are in sandbox_zuora_ids / production_zuora_ids
-- Task columns (task keys as in workflow_definitions.task_hashes, byte-sorted; '{}' for
-- same) and settings_different are set for same and different, NULL otherwise; newer says which side's
-- Zuora updatedAt is later (NULL when they are equal or one is missing, and unless there is
-- one workflow of the name on each side). Per-side ids, versions, timestamps and
-- fingerprints are those of the side's one workflow of the name (NULL for none or several).
-- Workflows without a name are matched with the other side's workflows without a name.
CREATE OR REPLACE VIEW zuora.environment_drift AS
WITH pairs AS (
    SELECT s.tenant_group,
           s.customer_id AS sandbox_customer_id,
           p.customer_id AS production_customer_id
      FROM zuora.customers s
      JOIN zuora.customers p ON p.tenant_group = s.tenant_group AND p.environment = 'production'
     WHERE s.environment = 'sandbox'
),
by_name AS (   -- both sides' workflows of one name, in one pass over the two customers
    SELECT pr.tenant_group, pr.sandbox_customer_id, pr.production_customer_id,
           w.name,
           count(*) FILTER (WHERE w.customer_id = pr.sandbox_customer_id)    AS sandbox_count,
           count(*) FILTER (WHERE w.customer_id = pr.production_customer_id) AS production_count,
           coalesce(array_agg(w.zuora_id ORDER BY w.zuora_id)
                    FILTER (WHERE w.customer_id = pr.sandbox_customer_id), '{}')    AS sandbox_zuora_ids,
           coalesce(array_agg(w.zuora_id ORDER BY w.zuora_id)
                    FILTER (WHERE w.customer_id = pr.production_customer_id), '{}') AS production_zuora_ids,
           -- the side's values when it has one workflow of this name (first of several otherwise)
           (array_agg(w.active_version) FILTER (WHERE w.customer_id = pr.sandbox_customer_id))[1]       AS sandbox_version,
           (array_agg(w.active_version) FILTER (WHERE w.customer_id = pr.production_customer_id))[1]    AS production_version,
           (array_agg(w.zuora_updated_at) FILTER (WHERE w.customer_id = pr.sandbox_customer_id))[1]     AS sandbox_updated_at,
           (array_agg(w.zuora_updated_at) FILTER (WHERE w.customer_id = pr.production_customer_id))[1]  AS production_updated_at,
           (array_agg(d.fingerprint) FILTER (WHERE w.customer_id = pr.sandbox_customer_id))[1]          AS sandbox_fingerprint,
           (array_agg(d.fingerprint) FILTER (WHERE w.customer_id = pr.production_customer_id))[1]       AS production_fingerprint,
           (array_agg(d.settings_hash) FILTER (WHERE w.customer_id = pr.sandbox_customer_id))[1]        AS sandbox_settings_hash,
           (array_agg(d.settings_hash) FILTER (WHERE w.customer_id = pr.production_customer_id))[1]     AS production_settings_hash,
           (array_agg(d.task_hashes) FILTER (WHERE w.customer_id = pr.sandbox_customer_id))[1]          AS sandbox_task_hashes,
           (array_agg(d.task_hashes) FILTER (WHERE w.customer_id = pr.production_customer_id))[1]       AS production_task_hashes
      FROM pairs pr
      JOIN zuora.workflows w
        ON w.customer_id IN (pr.sandbox_customer_id, pr.production_customer_id)
       AND w.deleted_at IS NULL
      LEFT JOIN zuora.workflow_definitions d
        ON d.customer_id = w.customer_id AND d.zuora_id = w.zuora_id
     GROUP BY pr.tenant_group, pr.sandbox_customer_id, pr.production_customer_id, w.name
),
classified AS (
    SELECT b.*,
           CASE WHEN b.sandbox_count > 1 OR b.production_count > 1 THEN 'duplicate_name'
                WHEN b.production_count = 0 THEN 'only_sandbox'
                WHEN b.sandbox_count = 0 THEN 'only_production'
                WHEN b.sandbox_fingerprint IS NULL OR b.production_fingerprint IS NULL THEN 'unknown'
                WHEN b.sandbox_fingerprint = b.production_fingerprint THEN 'same'
                ELSE 'different'
           END AS state
      FROM by_name b
)
SELECT c.tenant_group,
       c.name                                        AS workflow_name,
       c.state,
       c.sandbox_customer_id,
       CASE WHEN c.sandbox_count = 1 THEN c.sandbox_zuora_ids[1] END       AS sandbox_zuora_id,
       c.production_customer_id,
       CASE WHEN c.production_count = 1 THEN c.production_zuora_ids[1] END AS production_zuora_id,
       CASE WHEN c.state = 'same' THEN '{}'::text[]
            WHEN c.state = 'different' THEN ARRAY(
                SELECT k FROM jsonb_object_keys(coalesce(c.sandbox_task_hashes, '{}')) k
                 WHERE NOT coalesce(c.production_task_hashes, '{}') ? k
                 ORDER BY k COLLATE "C")
       END                                           AS tasks_only_in_sandbox,
       CASE WHEN c.state = 'same' THEN '{}'::text[]
            WHEN c.state = 'different' THEN ARRAY(
                SELECT k FROM jsonb_object_keys(coalesce(c.production_task_hashes, '{}')) k
                 WHERE NOT coalesce(c.sandbox_task_hashes, '{}') ? k
                 ORDER BY k COLLATE "C")
       END                                           AS tasks_only_in_production,
       CASE WHEN c.state = 'same' THEN '{}'::text[]
            WHEN c.state = 'different' THEN ARRAY(
                SELECT s.key FROM jsonb_each_text(coalesce(c.sandbox_task_hashes, '{}')) s
                  JOIN jsonb_each_text(coalesce(c.production_task_hashes, '{}')) p USING (key)
                 WHERE s.value <> p.value
                 ORDER BY s.key COLLATE "C")
       END                                           AS tasks_different,
       CASE WHEN c.state IN ('same', 'different')
            THEN c.sandbox_settings_hash IS DISTINCT FROM c.production_settings_hash
       END                                           AS settings_different,
       CASE WHEN c.sandbox_count = 1 THEN c.sandbox_updated_at END       AS sandbox_updated_at,
       CASE WHEN c.production_count = 1 THEN c.production_updated_at END AS production_updated_at,
       CASE WHEN c.sandbox_count = 1 AND c.production_count = 1 THEN
            CASE WHEN c.sandbox_updated_at > c.production_updated_at THEN 'sandbox'
                 WHEN c.production_updated_at > c.sandbox_updated_at THEN 'production'
            END
       END                                           AS newer,
       CASE WHEN c.sandbox_count = 1 THEN c.sandbox_version END          AS sandbox_version,
       CASE WHEN c.production_count = 1 THEN c.production_version END    AS production_version,
       CASE WHEN c.sandbox_count = 1 THEN c.sandbox_fingerprint END      AS sandbox_fingerprint,
       CASE WHEN c.production_count = 1 THEN c.production_fingerprint END AS production_fingerprint,
       c.sandbox_zuora_ids,
       c.production_zuora_ids
  FROM classified c;
