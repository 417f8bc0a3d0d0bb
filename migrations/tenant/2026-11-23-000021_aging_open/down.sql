DROP AGGREGATE IF EXISTS ar_sum(int8);
DROP TRIGGER IF EXISTS ar_open_truncate ON invoices;
DROP TRIGGER IF EXISTS ar_open_del ON invoices;
DROP TRIGGER IF EXISTS ar_open_upd ON invoices;
DROP TRIGGER IF EXISTS ar_open_ins ON invoices;
DROP FUNCTION IF EXISTS ar_open_truncate();
DROP FUNCTION IF EXISTS ar_open_sync();
DROP TABLE IF EXISTS ar_open;
