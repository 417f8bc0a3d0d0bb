DROP TABLE audit_log;
DROP FUNCTION audit_log_chain();
DROP FUNCTION audit_log_reject_change();
DROP FUNCTION audit_digest(BYTEA, audit_log);
