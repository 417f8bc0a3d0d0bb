-- The invoice list's default order (newest issue date first, then newest id): its first page
-- is read from this index in order instead of sorting every invoice of the tenant per view.
CREATE INDEX invoices_issue_order_idx ON invoices (issue_date DESC, id DESC);
