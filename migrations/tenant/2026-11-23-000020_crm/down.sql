DROP TABLE IF EXISTS webhook_endpoints;
DROP TABLE IF EXISTS crm_links;
DROP TABLE IF EXISTS crm_inbox;
DROP TABLE IF EXISTS crm_connectors;
