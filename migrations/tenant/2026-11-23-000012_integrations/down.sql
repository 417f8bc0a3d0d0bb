DROP INDEX IF EXISTS outbox_undelivered_idx;
DROP TABLE IF EXISTS integration_alerts;
DROP TABLE IF EXISTS connector_deliveries;
