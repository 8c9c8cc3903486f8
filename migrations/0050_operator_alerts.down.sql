-- Reverts 0050_operator_alerts.
DROP TABLE queue.alerts;
