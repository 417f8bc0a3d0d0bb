ALTER TABLE invoices DROP CONSTRAINT invoices_source_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_source_check
    CHECK (source IN ('bill_run', 'manual', 'amendment', 'credit'));
DROP TABLE promises_to_pay, collections_notes, collections_tasks, dunning_actions,
    invoice_dunning, account_collections, dunning_policy_versions, dunning_policies,
    gateway_events, sandbox_charges, charge_attempts, payment_methods;
