-- Reverts 0021_customers_by_status.
DROP INDEX customers_by_status;
