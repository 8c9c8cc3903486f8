-- Reverts 0004_kpis. Their audit events stay in audit.events until 0001 is reverted.
DROP TABLE goal_kpis, goals, kpi_data_points, kpis;
DROP FUNCTION app.sync_current_value(), app.goal_completion();
