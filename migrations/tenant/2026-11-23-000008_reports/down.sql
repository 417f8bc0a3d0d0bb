DROP STATISTICS IF EXISTS invoices_open_ar_stats;
DROP INDEX IF EXISTS invoices_related_idx;
DROP INDEX IF EXISTS invoices_credit_notes_idx;
DROP INDEX IF EXISTS payments_created_idx;
DROP INDEX IF EXISTS payments_received_idx;
DROP INDEX IF EXISTS payment_applications_created_idx;
DROP INDEX IF EXISTS invoices_open_ar_idx;
