DROP TABLE IF EXISTS journal_lines;
DROP TABLE IF EXISTS journal_entries;
DROP FUNCTION IF EXISTS journal_reject_change();
DROP FUNCTION IF EXISTS journal_entry_balanced();
DROP TABLE IF EXISTS gl_mapping_rules;
DROP TABLE IF EXISTS gl_accounts;
