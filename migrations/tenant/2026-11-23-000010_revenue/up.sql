-- Revenue recognition (#9 part 2): one row per ratable invoice line and month. A row is
-- recognized when `recognized_entry_id` names the journal entry that moved it from deferred
-- revenue to revenue; the accounts are resolved once, when the document posts. A void adds
-- negative rows, so (invoice, line, month) is not unique; rows are written once, when the
-- document posts in its own transaction.
CREATE TABLE revenue_schedules (
    id                   BIGSERIAL PRIMARY KEY,
    invoice_id           BIGINT NOT NULL REFERENCES invoices (id),
    line_id              BIGINT NOT NULL REFERENCES invoice_lines (id),
    month                DATE NOT NULL CHECK (extract(day FROM month) = 1),
    amount               NUMERIC(19,4) NOT NULL,
    currency             TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    revenue_account      TEXT NOT NULL REFERENCES gl_accounts (code),
    deferred_account     TEXT NOT NULL REFERENCES gl_accounts (code),
    recognized_entry_id  BIGINT REFERENCES journal_entries (id)
);
CREATE INDEX revenue_schedules_invoice_idx ON revenue_schedules (invoice_id, line_id, month);
CREATE INDEX revenue_schedules_open_idx ON revenue_schedules (month) WHERE recognized_entry_id IS NULL;
CREATE INDEX revenue_schedules_line_idx ON revenue_schedules (line_id);

-- A closed month takes no entries; `insert_entry` moves them to the first open month.
CREATE TABLE ledger_periods (
    month      DATE PRIMARY KEY CHECK (extract(day FROM month) = 1),
    closed_at  TIMESTAMPTZ,
    closed_by  BIGINT
);

ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_source_type_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_source_type_check
    CHECK (source_type IN ('invoice', 'credit_note', 'payment', 'payment_application', 'refund',
        'payment_reversal', 'write_off', 'void', 'revenue_recognition'));
