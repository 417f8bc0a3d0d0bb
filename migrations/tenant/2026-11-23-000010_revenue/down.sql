DROP TABLE IF EXISTS ledger_periods;
DROP TABLE IF EXISTS revenue_schedules;
-- The journal is append-only, so recognition entries stay: the narrower check applies to new rows.
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_source_type_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_source_type_check
    CHECK (source_type IN ('invoice', 'credit_note', 'payment', 'payment_application', 'refund',
        'payment_reversal', 'write_off', 'void')) NOT VALID;
