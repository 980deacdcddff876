-- One row per task of each current workflow's latest definition, in export order.
CREATE OR REPLACE VIEW zuora.workflow_tasks AS
SELECT d.customer_id,
       d.zuora_id,
       w.name                              AS workflow_name,
       task.position::integer              AS position,
       (task.value ->> 'id')               AS task_id,
       task.value ->> 'name'               AS task_name,
       task.value ->> 'action_type'        AS action_type,
       task.value ->> 'priority'           AS priority,
       task.value -> 'parameters'          AS parameters
  FROM zuora.workflow_definitions d
  JOIN zuora.workflows w USING (customer_id, zuora_id)
 CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(d.definition -> 'tasks') = 'array' THEN d.definition -> 'tasks'
             ELSE '[]'::jsonb END) WITH ORDINALITY AS task(value, position)
 WHERE w.deleted_at IS NULL;
