-- Reverts 0017_crm.
DROP TABLE tasks, projects, customers, customer_fields;
DROP FUNCTION app.custom_fields_problem(uuid, jsonb), app.check_custom_fields(), app.keep_used_custom_fields(), app.project_completion(),
              app.stamp_task_creator(), app.refuse_task_cycle(), app.sync_task_weights();
DROP EXTENSION IF EXISTS btree_gin;
DROP EXTENSION IF EXISTS pg_trgm;
