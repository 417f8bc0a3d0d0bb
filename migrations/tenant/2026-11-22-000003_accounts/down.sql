DROP TABLE imports;
DROP TABLE contacts;
DROP TABLE custom_field_defs;
DROP TABLE account_external_ids;
DROP TABLE accounts;
DROP FUNCTION accounts_no_cycle();
DROP SEQUENCE account_number_seq;
