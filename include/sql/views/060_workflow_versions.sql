-- Every version of each workflow Zuora lists, oldest first, with what changed from the one
-- before it (by task name; ids, version numbers and timestamps ignored): tasks added,
-- removed and changed, and whether the workflow's settings changed. The change columns are
-- NULL while either version's definition is not exported yet (the history backfill).
CREATE OR REPLACE VIEW zuora.workflow_version_changes AS
SELECT v.customer_id,
       v.zuora_id,
       v.name,
       v.version,
       v.version_id,
       v.version_order,
       v.status,
       v.zuora_created_at,
       v.zuora_updated_at,
       v.definition IS NOT NULL                                   AS exported,
       v.task_count,
       p.version                                                  AS previous_version,
       CASE WHEN v.task_hashes IS NOT NULL AND (p.version_id IS NULL OR p.task_hashes IS NOT NULL) THEN
           ARRAY(SELECT k FROM jsonb_object_keys(v.task_hashes) k
                  WHERE NOT coalesce(p.task_hashes, '{}') ? k ORDER BY k COLLATE "C") END AS tasks_added,
       CASE WHEN v.task_hashes IS NOT NULL AND (p.version_id IS NULL OR p.task_hashes IS NOT NULL) THEN
           ARRAY(SELECT k FROM jsonb_object_keys(coalesce(p.task_hashes, '{}')) k
                  WHERE NOT v.task_hashes ? k ORDER BY k COLLATE "C") END AS tasks_removed,
       CASE WHEN v.task_hashes IS NOT NULL AND (p.version_id IS NULL OR p.task_hashes IS NOT NULL) THEN
           ARRAY(SELECT t.key FROM jsonb_each_text(v.task_hashes) t
                  WHERE coalesce(p.task_hashes, '{}') ->> t.key <> t.value ORDER BY t.key COLLATE "C") END AS tasks_changed,
       CASE WHEN v.settings_hash IS NOT NULL AND (p.version_id IS NULL OR p.settings_hash IS NOT NULL)
            THEN v.settings_hash IS DISTINCT FROM p.settings_hash END AS settings_changed,
       v.fingerprint
  FROM (SELECT w.*, lag(w.version_id) OVER (PARTITION BY w.customer_id, w.zuora_id
                                             ORDER BY w.version_order) AS previous_version_id
          FROM zuora.workflow_versions w) v
  LEFT JOIN zuora.workflow_versions p
         ON p.customer_id = v.customer_id AND p.zuora_id = v.zuora_id
        AND p.version_id = v.previous_version_id;

-- One row per task of any exported version (zuora.workflow_tasks has the current ones).
CREATE OR REPLACE VIEW zuora.workflow_version_tasks AS
SELECT v.customer_id,
       v.zuora_id,
       v.name                              AS workflow_name,
       v.version,
       v.version_id,
       task.position::integer              AS position,
       (task.value ->> 'id')               AS task_id,
       task.value ->> 'name'               AS task_name,
       task.value ->> 'action_type'        AS action_type,
       task.value ->> 'priority'           AS priority,
       task.value -> 'parameters'          AS parameters
  FROM zuora.workflow_versions v
 CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(v.definition -> 'tasks') = 'array' THEN v.definition -> 'tasks'
             ELSE '[]'::jsonb END) WITH ORDINALITY AS task(value, position)
 WHERE v.definition IS NOT NULL;
