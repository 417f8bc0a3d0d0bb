-- General ledger: chart of accounts, GL mapping rules and balanced journal entries, written in
-- the same transaction as the billing event they record (see src/ledger).

-- One row per GL account. `role` marks the accounts the posting rules need (AR, cash, ...);
-- each role is held by exactly one account.
CREATE TABLE gl_accounts (
    code        TEXT PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$'),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 80 AND name !~ '[:;"\\]|  '),
    kind        TEXT NOT NULL CHECK (kind IN ('asset', 'liability', 'equity', 'income', 'expense')),
    role        TEXT UNIQUE CHECK (role IN ('cash', 'receivable', 'unapplied_cash', 'customer_credit',
                    'deferred_revenue', 'tax_payable', 'discounts', 'late_fees', 'bad_debt')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO gl_accounts (code, name, kind, role) VALUES
    ('1000', 'Cash', 'asset', 'cash'),
    ('1200', 'Accounts receivable', 'asset', 'receivable'),
    ('2100', 'Unapplied cash', 'liability', 'unapplied_cash'),
    ('2150', 'Customer credit', 'liability', 'customer_credit'),
    ('2200', 'Deferred revenue', 'liability', 'deferred_revenue'),
    ('2300', 'Sales tax payable', 'liability', 'tax_payable'),
    ('4000', 'Subscription revenue', 'income', NULL),
    ('4010', 'Usage revenue', 'income', NULL),
    ('4020', 'Professional services revenue', 'income', NULL),
    ('4100', 'Other revenue', 'income', NULL),
    ('4800', 'Late fee income', 'income', 'late_fees'),
    ('4900', 'Discounts', 'income', 'discounts'),
    ('6100', 'Bad debt expense', 'expense', 'bad_debt');

-- Where a revenue line goes, by product, customer entity (account number) and currency; a
-- NULL matches anything. The most specific active rule wins; the all-NULL rule is the
-- fallback. Rules are never edited in place: a change retires the row and adds the next
-- version, so the mapping used on any date can be read back.
CREATE TABLE gl_mapping_rules (
    id                BIGSERIAL PRIMARY KEY,
    product_id        BIGINT REFERENCES products (id),
    entity            TEXT CHECK (entity IS NULL OR length(entity) BETWEEN 1 AND 40),
    currency          TEXT CHECK (currency ~ '^[A-Z]{3}$'),
    revenue_account   TEXT NOT NULL REFERENCES gl_accounts (code),
    deferred_account  TEXT NOT NULL REFERENCES gl_accounts (code),
    version           INT NOT NULL DEFAULT 1 CHECK (version >= 1),
    replaces_id       BIGINT REFERENCES gl_mapping_rules (id),
    active            BOOLEAN NOT NULL DEFAULT true,
    created_by        BIGINT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at        TIMESTAMPTZ,
    CHECK (active = (retired_at IS NULL))
);
CREATE UNIQUE INDEX gl_mapping_rules_key_uq ON gl_mapping_rules
    (coalesce(product_id, 0), coalesce(entity, ''), coalesce(currency, '')) WHERE active;

INSERT INTO gl_mapping_rules (revenue_account, deferred_account) VALUES ('4000', '2200');

-- A journal entry records one billing event; `source_type`/`source_id` name the document
-- (invoice, credit note, payment, application, refund, write-off) and `document` its label.
CREATE TABLE journal_entries (
    id           BIGSERIAL PRIMARY KEY,
    entry_date   DATE NOT NULL,
    source_type  TEXT NOT NULL CHECK (source_type IN ('invoice', 'credit_note', 'payment',
                     'payment_application', 'refund', 'payment_reversal', 'write_off', 'void')),
    source_id    BIGINT NOT NULL,
    document     TEXT NOT NULL,
    memo         TEXT NOT NULL,
    currency     TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX journal_entries_date_idx ON journal_entries (entry_date, id);
CREATE INDEX journal_entries_source_idx ON journal_entries (source_type, source_id);

-- Signed amounts: debit positive, credit negative. `source_line` is the invoice line a
-- revenue, discount or tax posting comes from.
CREATE TABLE journal_lines (
    id            BIGSERIAL PRIMARY KEY,
    entry_id      BIGINT NOT NULL REFERENCES journal_entries (id),
    position      INT NOT NULL,
    account_code  TEXT NOT NULL REFERENCES gl_accounts (code),
    amount        NUMERIC(19,4) NOT NULL CHECK (amount <> 0),
    currency      TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    source_line   BIGINT,
    memo          TEXT NOT NULL DEFAULT '',
    UNIQUE (entry_id, position)
);
CREATE INDEX journal_lines_account_idx ON journal_lines (account_code, entry_id);

-- Debits equal credits per currency for every entry touched, checked at commit so an entry
-- can be written line by line inside its transaction.
CREATE FUNCTION journal_entry_balanced() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    bad RECORD;
BEGIN
    SELECT currency, sum(amount) AS off INTO bad FROM journal_lines
        WHERE entry_id = NEW.entry_id GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance: debits minus credits = % %',
            NEW.entry_id, bad.off, bad.currency
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_entry_balanced';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER journal_entry_balanced AFTER INSERT ON journal_lines
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_balanced();

-- The journal is append-only: corrections are new (reversing) entries.
CREATE FUNCTION journal_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_append_only';
END
$$;
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION journal_reject_change();
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH ROW EXECUTE FUNCTION journal_reject_change();
