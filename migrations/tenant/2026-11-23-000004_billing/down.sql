DROP TABLE account_credits, invoice_lines, invoice_links, invoices, number_series, bill_runs, usage_records,
    subscription_amendments, subscription_items, subscriptions, price_versions, prices, products CASCADE;
DROP SEQUENCE subscription_number_seq;
DROP FUNCTION invoices_immutable(), invoice_lines_immutable();
