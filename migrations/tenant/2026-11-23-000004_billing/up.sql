-- Catalog, subscriptions, usage, invoices, credit notes and bill runs.
-- Money is NUMERIC(19,4); rounding to the currency's minor unit happens per line in the app.

-- Products: what is sold. GL account and tax category travel to every invoice line.
CREATE TABLE products (
    id                   BIGSERIAL PRIMARY KEY,
    sku                  TEXT NOT NULL UNIQUE CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$'),
    name                 TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description          TEXT NOT NULL DEFAULT '',
    gl_revenue_account   TEXT NOT NULL CHECK (length(gl_revenue_account) BETWEEN 1 AND 40),
    tax_category         TEXT NOT NULL DEFAULT 'standard'
                         CHECK (tax_category IN ('standard', 'reduced', 'zero', 'exempt')),
    revenue_recognition  TEXT NOT NULL DEFAULT 'ratable'
                         CHECK (revenue_recognition IN ('ratable', 'point_in_time')),
    status               TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    version              INT NOT NULL DEFAULT 1,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A price of a product in one currency. Its terms live in versions: a change adds a version,
-- and subscription items keep pointing at the version they were sold at.
CREATE TABLE prices (
    id            BIGSERIAL PRIMARY KEY,
    product_id    BIGINT NOT NULL REFERENCES products (id),
    nickname      TEXT NOT NULL CHECK (length(nickname) BETWEEN 1 AND 80),
    currency      TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    current_version_id BIGINT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX prices_product_idx ON prices (product_id);

CREATE TABLE price_versions (
    id               BIGSERIAL PRIMARY KEY,
    price_id         BIGINT NOT NULL REFERENCES prices (id),
    version          INT NOT NULL CHECK (version >= 1),
    model_kind       TEXT NOT NULL CHECK (model_kind IN ('flat', 'per_unit', 'tiered', 'volume', 'usage')),
    -- catalog::pricing::PriceModel as JSON (amounts as strings).
    model            JSONB NOT NULL,
    -- The amounts are quoted per this many months; a subscription billed on another cycle
    -- scales them (a 200/month price billed quarterly is 600 per quarter). Usage is not scaled.
    interval_months  INT NOT NULL DEFAULT 1 CHECK (interval_months BETWEEN 1 AND 36),
    minimum_commit   NUMERIC(19,4) CHECK (minimum_commit > 0),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by       BIGINT,
    UNIQUE (price_id, version)
);
ALTER TABLE prices ADD FOREIGN KEY (current_version_id) REFERENCES price_versions (id);

CREATE SEQUENCE subscription_number_seq;

CREATE TABLE subscriptions (
    id                 BIGSERIAL PRIMARY KEY,
    number             TEXT NOT NULL UNIQUE,
    account_id         BIGINT NOT NULL REFERENCES accounts (id),
    currency           TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'canceled')),
    start_date         DATE NOT NULL,
    -- Last day of service (inclusive); NULL runs until canceled.
    end_date           DATE CHECK (end_date >= start_date),
    -- First day after the trial; nothing before it is charged.
    trial_end          DATE CHECK (trial_end > start_date),
    interval_months    INT NOT NULL CHECK (interval_months BETWEEN 1 AND 36),
    anchor_day         INT NOT NULL CHECK (anchor_day BETWEEN 1 AND 31),
    timing             TEXT NOT NULL DEFAULT 'advance' CHECK (timing IN ('advance', 'arrears')),
    term_months        INT NOT NULL DEFAULT 12 CHECK (term_months BETWEEN 1 AND 120),
    auto_renew         BOOLEAN NOT NULL DEFAULT true,
    po_number          TEXT,
    collection_method  TEXT NOT NULL DEFAULT 'send_invoice'
                       CHECK (collection_method IN ('send_invoice', 'auto_charge')),
    -- NULL: the account's terms at invoice time.
    terms_kind         TEXT CHECK (terms_kind IN ('net', 'due_on_receipt', 'eom')),
    terms_days         INT CHECK (terms_days BETWEEN 0 AND 365),
    -- Every period starting before this date has been invoiced (the bill run's cursor).
    billed_through     DATE NOT NULL,
    cancel_reason      TEXT,
    canceled_at        TIMESTAMPTZ,
    external_ref       TEXT UNIQUE,
    notes              TEXT NOT NULL DEFAULT '',
    version            INT NOT NULL DEFAULT 1,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((terms_kind IS NULL) = (terms_days IS NULL))
);
CREATE INDEX subscriptions_account_idx ON subscriptions (account_id);
CREATE INDEX subscriptions_due_idx ON subscriptions (billed_through) WHERE status = 'active';

-- An item is valid from start_date to end_date (inclusive). Amendments and ramps end one row
-- and start the next, so every billed amount maps to exactly one row and price version.
CREATE TABLE subscription_items (
    id                BIGSERIAL PRIMARY KEY,
    subscription_id   BIGINT NOT NULL REFERENCES subscriptions (id),
    product_id        BIGINT NOT NULL REFERENCES products (id),
    price_id          BIGINT NOT NULL REFERENCES prices (id),
    price_version_id  BIGINT NOT NULL REFERENCES price_versions (id),
    quantity          NUMERIC(19,4) NOT NULL DEFAULT 1 CHECK (quantity >= 0),
    discount_percent  NUMERIC(7,4) CHECK (discount_percent > 0 AND discount_percent <= 100),
    discount_amount   NUMERIC(19,4) CHECK (discount_amount > 0),
    start_date        DATE NOT NULL,
    -- A row replaced on its first day ends the day before it starts: it covers no day.
    end_date          DATE CHECK (end_date >= start_date - 1),
    replaces_id       BIGINT REFERENCES subscription_items (id),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (discount_percent IS NULL OR discount_amount IS NULL)
);
CREATE INDEX subscription_items_sub_idx ON subscription_items (subscription_id);

-- The visible history of changes to a subscription, with what they cost or credited.
CREATE TABLE subscription_amendments (
    id               BIGSERIAL PRIMARY KEY,
    subscription_id  BIGINT NOT NULL REFERENCES subscriptions (id),
    kind             TEXT NOT NULL CHECK (kind IN ('created', 'quantity', 'price', 'plan', 'add_item', 'remove_item', 'cancel_now', 'cancel_at_term_end', 'terms', 'reactivate')),
    effective_date   DATE NOT NULL,
    summary          TEXT NOT NULL,
    credit           NUMERIC(19,4) NOT NULL DEFAULT 0,
    charge           NUMERIC(19,4) NOT NULL DEFAULT 0,
    invoice_id       BIGINT,
    actor_user_id    BIGINT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX subscription_amendments_sub_idx ON subscription_amendments (subscription_id, id);

-- Metered quantities. external_id makes a retried submission a no-op.
CREATE TABLE usage_records (
    id               BIGSERIAL PRIMARY KEY,
    subscription_id  BIGINT NOT NULL REFERENCES subscriptions (id),
    product_id       BIGINT NOT NULL REFERENCES products (id),
    usage_date       DATE NOT NULL,
    quantity         NUMERIC(19,4) NOT NULL CHECK (quantity >= 0),
    external_id      TEXT NOT NULL UNIQUE CHECK (length(external_id) BETWEEN 1 AND 200),
    source           TEXT NOT NULL CHECK (source IN ('manual', 'csv', 'api')),
    created_by       BIGINT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX usage_records_sub_idx ON usage_records (subscription_id, product_id, usage_date);

CREATE TABLE bill_runs (
    id            BIGSERIAL PRIMARY KEY,
    run_date      DATE NOT NULL,
    trigger       TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual', 'bench')),
    status        TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    total         INT NOT NULL DEFAULT 0,
    processed     INT NOT NULL DEFAULT 0,
    created       INT NOT NULL DEFAULT 0,
    skipped       INT NOT NULL DEFAULT 0,
    failed        INT NOT NULL DEFAULT 0,
    failures      JSONB NOT NULL DEFAULT '[]',
    requested_by  BIGINT,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One scheduled run per day, however many schedulers ask.
CREATE UNIQUE INDEX bill_runs_scheduled_uq ON bill_runs (run_date) WHERE trigger = 'schedule';

-- Gapless numbering: one counter row per series, locked by the finalizing transaction.
CREATE TABLE number_series (
    series      TEXT PRIMARY KEY CHECK (series IN ('invoice', 'credit_note')),
    prefix      TEXT NOT NULL CHECK (prefix ~ '^[A-Za-z0-9-]{0,12}$'),
    next_value  BIGINT NOT NULL DEFAULT 1 CHECK (next_value >= 1)
);
INSERT INTO number_series (series, prefix) VALUES ('invoice', 'INV-'), ('credit_note', 'CN-');

-- Invoices and credit notes. A credit note has kind 'credit_note' and positive amounts that
-- reduce what the account owes.
CREATE TABLE invoices (
    id                   BIGSERIAL PRIMARY KEY,
    kind                 TEXT NOT NULL DEFAULT 'invoice' CHECK (kind IN ('invoice', 'credit_note')),
    number               TEXT UNIQUE,
    status               TEXT NOT NULL DEFAULT 'draft'
                         CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    -- The customer the charges are for, and the account that pays (its parent under bill-to-parent).
    account_id           BIGINT NOT NULL REFERENCES accounts (id),
    bill_to_account_id   BIGINT NOT NULL REFERENCES accounts (id),
    subscription_id      BIGINT REFERENCES subscriptions (id),
    source               TEXT NOT NULL CHECK (source IN ('bill_run', 'manual', 'amendment', 'credit')),
    period_start         DATE,
    period_end           DATE,
    bill_run_id          BIGINT REFERENCES bill_runs (id),
    related_invoice_id   BIGINT REFERENCES invoices (id),
    currency             TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    issue_date           DATE NOT NULL,
    due_date             DATE,
    terms_kind           TEXT NOT NULL CHECK (terms_kind IN ('net', 'due_on_receipt', 'eom')),
    terms_days           INT NOT NULL,
    po_number            TEXT,
    notes                TEXT NOT NULL DEFAULT '',
    -- Snapshots taken at finalization: name, address, tax id of the payer; email recipients.
    bill_to              JSONB NOT NULL DEFAULT '{}',
    recipients           TEXT[] NOT NULL DEFAULT '{}',
    subtotal             NUMERIC(19,4) NOT NULL DEFAULT 0,
    tax_total            NUMERIC(19,4) NOT NULL DEFAULT 0,
    total                NUMERIC(19,4) NOT NULL DEFAULT 0,
    credit_applied       NUMERIC(19,4) NOT NULL DEFAULT 0,
    amount_credited      NUMERIC(19,4) NOT NULL DEFAULT 0,
    amount_paid          NUMERIC(19,4) NOT NULL DEFAULT 0,
    amount_due           NUMERIC(19,4) NOT NULL DEFAULT 0,
    void_reason          TEXT,
    version              INT NOT NULL DEFAULT 1,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    finalized_at         TIMESTAMPTZ,
    CHECK ((number IS NULL) = (status = 'draft')),
    CHECK (kind = 'invoice' OR related_invoice_id IS NOT NULL OR source = 'credit'),
    CHECK (amount_due >= 0)
);
-- One invoice per subscription period, however many bill runs or workers get there.
CREATE UNIQUE INDEX invoices_subscription_period_uq ON invoices (subscription_id, period_start)
    WHERE source = 'bill_run';
CREATE INDEX invoices_account_idx ON invoices (account_id);
CREATE INDEX invoices_bill_to_idx ON invoices (bill_to_account_id, status);
CREATE INDEX invoices_status_idx ON invoices (status, issue_date DESC, id DESC);

-- The hosted link of an invoice is an HMAC over this random nonce; deleting the row revokes
-- the link, a new nonce issues a new one.
CREATE TABLE invoice_links (
    invoice_id  BIGINT PRIMARY KEY REFERENCES invoices (id),
    nonce       BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Each line keeps its source so every amount traces back to the contract.
CREATE TABLE invoice_lines (
    id                    BIGSERIAL PRIMARY KEY,
    invoice_id            BIGINT NOT NULL REFERENCES invoices (id),
    position              INT NOT NULL,
    kind                  TEXT NOT NULL CHECK (kind IN ('recurring', 'usage', 'minimum_commit', 'proration_credit', 'proration_charge', 'one_off', 'credit')),
    description           TEXT NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
    product_id            BIGINT REFERENCES products (id),
    subscription_item_id  BIGINT REFERENCES subscription_items (id),
    price_version_id      BIGINT REFERENCES price_versions (id),
    credited_line_id      BIGINT REFERENCES invoice_lines (id),
    period_start          DATE,
    period_end            DATE,
    quantity              NUMERIC(19,4) NOT NULL,
    unit_price            NUMERIC(19,4) NOT NULL,
    amount                NUMERIC(19,4) NOT NULL,
    discount              NUMERIC(19,4) NOT NULL DEFAULT 0,
    net                   NUMERIC(19,4) NOT NULL,
    tax_category          TEXT NOT NULL DEFAULT 'standard',
    tax_rate              NUMERIC(7,4) NOT NULL DEFAULT 0,
    tax                   NUMERIC(19,4) NOT NULL DEFAULT 0,
    gl_account            TEXT,
    UNIQUE (invoice_id, position)
);
CREATE INDEX invoice_lines_invoice_idx ON invoice_lines (invoice_id);

-- Account credit: credit notes add to it, finalized invoices draw from it. Balance = sum.
CREATE TABLE account_credits (
    id           BIGSERIAL PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    currency     TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount       NUMERIC(19,4) NOT NULL CHECK (amount <> 0),
    invoice_id   BIGINT NOT NULL REFERENCES invoices (id),
    memo         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX account_credits_account_idx ON account_credits (account_id, currency);

-- Finalized documents cannot change except for settlement columns and the account references
-- an account merge moves (the bill_to snapshot keeps what the customer was sent).
CREATE FUNCTION invoices_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'draft' AND (
        NEW.number IS DISTINCT FROM OLD.number OR NEW.total <> OLD.total
        OR NEW.subtotal <> OLD.subtotal OR NEW.tax_total <> OLD.tax_total
        OR NEW.currency <> OLD.currency OR NEW.issue_date <> OLD.issue_date
        OR NEW.due_date IS DISTINCT FROM OLD.due_date OR NEW.bill_to <> OLD.bill_to
        OR NEW.kind <> OLD.kind OR NEW.credit_applied <> OLD.credit_applied) THEN
        RAISE EXCEPTION 'invoice % is finalized and cannot be changed', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'invoices_immutable';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER invoices_immutable BEFORE UPDATE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_immutable();

-- Lines of a finalized document cannot be added, changed or removed. Checked once per
-- statement over its transition table, so a bill run inserting thousands of lines pays for
-- one join, not one lookup per row. search_path is fixed to this tenant's schema when the
-- function is created (migrations run scoped).
CREATE FUNCTION invoice_lines_immutable() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed_rows r JOIN invoices i ON i.id = r.invoice_id
               WHERE i.status <> 'draft') THEN
        RAISE EXCEPTION 'lines of a finalized invoice cannot be changed'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'invoice_lines_immutable';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER invoice_lines_immutable_ins AFTER INSERT ON invoice_lines
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION invoice_lines_immutable();
CREATE TRIGGER invoice_lines_immutable_upd_new AFTER UPDATE ON invoice_lines
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION invoice_lines_immutable();
CREATE TRIGGER invoice_lines_immutable_upd_old AFTER UPDATE ON invoice_lines
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION invoice_lines_immutable();
CREATE TRIGGER invoice_lines_immutable_del AFTER DELETE ON invoice_lines
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION invoice_lines_immutable();
