DROP TRIGGER IF EXISTS ar_settlements_follow ON invoices;
DROP TRIGGER IF EXISTS ar_settlements_truncate ON payment_applications;
DROP TRIGGER IF EXISTS ar_settlements_del ON payment_applications;
DROP TRIGGER IF EXISTS ar_settlements_upd ON payment_applications;
DROP TRIGGER IF EXISTS ar_settlements_ins ON payment_applications;
DROP FUNCTION IF EXISTS ar_settlements_follow();
DROP FUNCTION IF EXISTS ar_settlements_truncate();
DROP FUNCTION IF EXISTS ar_settlements_sync();
DROP TABLE IF EXISTS ar_settlements;
