-- AR aging (reports::aging_repo). The report reads today's open invoices and adds back what
-- settled them after the as-of date, so it needs: the open receivables without a table scan
-- (covering, for an index-only scan), and the settlements dated after a day.
CREATE INDEX invoices_open_ar_idx ON invoices (issue_date)
    INCLUDE (id, bill_to_account_id, currency, due_date, amount_due, status, number)
    WHERE kind = 'invoice' AND status IN ('open', 'uncollectible') AND amount_due > 0;
-- Applications created after a day, with what the report sums (index-only).
CREATE INDEX payment_applications_created_idx ON payment_applications (created_at)
    INCLUDE (invoice_id, amount);
-- Payments received after a day but created by it, and created after a day but received by
-- it: the report filters on the other date inside the index, so only the few such payments
-- are looked up.
CREATE INDEX payments_received_idx ON payments (received_on, created_at);
CREATE INDEX payments_created_idx ON payments (created_at, received_on);
CREATE INDEX invoices_credit_notes_idx ON invoices (issue_date) INCLUDE (related_invoice_id)
    WHERE kind = 'credit_note';
CREATE INDEX invoices_related_idx ON invoices (related_invoice_id) WHERE related_invoice_id IS NOT NULL;
-- Status and "has a balance" are strongly correlated (paid invoices owe nothing); without
-- joint statistics the planner multiplies the two selectivities, expects a fifth of the open
-- receivables and sorts where hashing is cheaper.
CREATE STATISTICS invoices_open_ar_stats (mcv) ON status, kind, (amount_due > 0) FROM invoices;
