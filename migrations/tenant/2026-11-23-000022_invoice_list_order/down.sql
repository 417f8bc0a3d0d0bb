DROP INDEX invoices_issue_order_idx;
